"""The model container every rule works on: hidden blocks, then an output block.

A block is ``h = post(layer(pre(x)))``: one weight layer (``layer``) with the steps before it
(flatten, input dropout) and after it (activation, dropout). Rules that cut the graph cut it
between blocks; rules that replace the backward of a weight layer replace ``block.layer``.
The network itself is plain PyTorch: ``net(x)`` is an ordinary forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Block(nn.Module):
    """``a = layer(pre(x))``, ``h = after(post(a) [+ x])``.

    ``residual=True`` adds the block's input to ``post(a)`` (Amit's parameter-free SUM of the
    two previous layers); ``after`` holds steps that follow the sum (pooling, dropout).
    """

    def __init__(self, layer: nn.Module, pre: Sequence[nn.Module] = (),
                 post: Sequence[nn.Module] = (), residual: bool = False,
                 after: Sequence[nn.Module] = ()):
        super().__init__()
        self.pre = nn.Sequential(*pre)
        self.layer = layer
        self.post = nn.Sequential(*post)
        self.residual = residual
        self.after = nn.Sequential(*after)

    def trace(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight layer's output ``a`` and the block's output ``h``."""
        a = self.layer(self.pre(x))
        h = self.post(a)
        if self.residual:
            h = h + x
        return a, self.after(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trace(x)[1]

    @property
    def elementwise(self) -> bool:
        """Whether ``h`` is an element-wise function of ``a`` (no sum, pooling, ...)."""
        return not self.residual and len(self.after) == 0 and all(
            isinstance(m, ELEMENTWISE) for m in self.post)


ELEMENTWISE = (nn.Tanh, nn.Sigmoid, nn.ReLU, nn.Hardtanh, nn.Dropout, nn.Identity)


class Network(nn.Module):
    """Hidden ``blocks`` followed by the output block ``head`` (whose output are the logits).

    ``input_shape`` is the shape of one example (without the batch dimension); ``spec`` the
    model string it was built from.
    """

    def __init__(self, blocks: Sequence[Block], head: Block, input_shape: Sequence[int],
                 spec: str = ""):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.input_shape = tuple(input_shape)
        self.spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every hidden block for input ``x``."""
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    def weight_layers(self) -> list[nn.Module]:
        """The weight layer of every block, hidden blocks first, the output layer last."""
        return [block.layer for block in self.blocks] + [self.head.layer]

    @torch.no_grad()
    def hidden_shapes(self) -> list[tuple[int, ...]]:
        """Per-example output shape of every hidden block (found with one dummy forward)."""
        was_training = self.training
        self.eval()
        try:
            param = next(self.parameters())
            x = torch.zeros((1, *self.input_shape), dtype=param.dtype, device=param.device)
            return [tuple(h.shape[1:]) for h in self.features(x)]
        finally:
            self.train(was_training)
