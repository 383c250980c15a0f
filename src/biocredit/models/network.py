"""The model container every rule works on: hidden blocks, then an output block.

A block is ``h = after(post(layer(pre(x))))``: one weight layer (``layer``) with the steps
before it (flatten, input dropout), its activation (``post``) and the steps after that
(pooling, dropout), and a :class:`~biocredit.layers.Tap` where direct feedback enters: at the
block's output ``h`` or, with ``inject_at="activation"``, right after the activation (before
pooling). The network is plain PyTorch and converts like any other model
(:func:`biocredit.convert`): its taps and its input layer tell the converter what it would
otherwise be told.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..layers import SaturatedLinear, Tap


class Block(nn.Module):
    """``a = layer(pre(x))``, ``z = post(a) [+ x]``, ``h = after(z)``.

    ``residual=True`` adds the block's input to ``post(a)`` (Amit's parameter-free SUM of the
    two previous layers); ``after`` holds the steps that follow the activation and the sum
    (pooling, dropout). ``tap`` sits after the activation (``inject_at="activation"``) or at
    the output (``"output"``); ``None`` for the output block.
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
        self.tap = Tap()
        self.inject_at = "output"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.layer(self.pre(x))
        z = self.post(a)
        if self.residual:
            z = z + x
        if self.tap is None:
            return self.after(z)
        if self.inject_at == "activation":
            z = self.tap(z, preactivation=a, skip=self.residual, elementwise=self.elementwise)
            return self.after(z)
        return self.tap(self.after(z), preactivation=a, activation=z, skip=self.residual,
                        elementwise=self.elementwise)

    @property
    def elementwise(self) -> bool:
        """Whether ``h`` is an element-wise function of ``a`` (no sum, pooling, ...)."""
        return not self.residual and len(self.after) == 0 and all(
            isinstance(m, ELEMENTWISE) for m in self.post)


ELEMENTWISE = (nn.Tanh, nn.Sigmoid, nn.ReLU, nn.Hardtanh, SaturatedLinear, nn.Dropout,
               nn.Identity)


INJECTION_POINTS = ("output", "activation")


class Network(nn.Module):
    """Hidden ``blocks`` followed by the output block ``head`` (whose output are the logits).

    ``input_shape`` is the shape of one example (without the batch dimension); ``spec`` the
    model string it was built from; ``inject_at`` where direct feedback enters each block:
    ``"output"`` (after its pooling and dropout, where Nøkland injects) or ``"activation"``
    (after the activation, before pooling, where the DKP authors inject).
    """

    def __init__(self, blocks: Sequence[Block], head: Block, input_shape: Sequence[int],
                 spec: str = "", inject_at: str = "output"):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        head.tap = None  # the output block's output is the model's: no tap
        self.input_shape = tuple(input_shape)
        self.spec = spec
        self.inject_at = inject_at

    @property
    def inject_at(self) -> str:
        return self._inject_at

    @inject_at.setter
    def inject_at(self, point: str) -> None:
        if point not in INJECTION_POINTS:
            raise ValueError(f"unknown injection point {point!r}; choose from "
                             f"{', '.join(INJECTION_POINTS)}")
        self._inject_at = point
        for block in self.blocks:
            block.inject_at = point

    def input_layers(self) -> list[str]:
        """The weight layer that sees the data: its input gradient is never needed, so
        layer-feedback rules give it no feedback."""
        return ["blocks.0.layer"] if len(self.blocks) else ["head.layer"]

    def example_input(self) -> torch.Tensor:
        """One zero example (a batch of 1), to find the taps' shapes with."""
        param = next(self.parameters())
        return torch.zeros((1, *self.input_shape), dtype=param.dtype, device=param.device)

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
