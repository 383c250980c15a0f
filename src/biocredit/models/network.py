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
from dataclasses import dataclass

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

    def trace(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The weight layer's output ``a``, the activation ``z`` and the block's output
        ``h`` (passed through the tap)."""
        a = self.layer(self.pre(x))
        z = self.post(a)
        if self.residual:
            z = z + x
        if self.tap is None:
            return a, z, self.after(z)
        if self.inject_at == "activation":
            z = self.tap(z, preactivation=a, skip=self.residual, elementwise=self.elementwise)
            return a, z, self.after(z)
        h = self.after(z)
        return a, z, self.tap(h, preactivation=a, activation=z, skip=self.residual,
                              elementwise=self.elementwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trace(x)[2]

    @property
    def elementwise(self) -> bool:
        """Whether ``h`` is an element-wise function of ``a`` (no sum, pooling, ...)."""
        return not self.residual and len(self.after) == 0 and all(
            isinstance(m, ELEMENTWISE) for m in self.post)


ELEMENTWISE = (nn.Tanh, nn.Sigmoid, nn.ReLU, nn.Hardtanh, SaturatedLinear, nn.Dropout,
               nn.Identity)


INJECTION_POINTS = ("output", "activation")


@dataclass
class BlockTrace:
    """One hidden block of a traced forward pass (see :meth:`Block.trace`): its ``input``,
    ``preactivation = layer(pre(input))``, ``activation = post(preactivation) [+ input]``,
    ``output = after(activation)``, and ``point``, where direct feedback enters (the output
    or the activation, as the network's ``inject_at`` says)."""

    input: torch.Tensor
    preactivation: torch.Tensor
    activation: torch.Tensor
    output: torch.Tensor
    point: torch.Tensor


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

    def trace(self, x: torch.Tensor) -> tuple[list[BlockTrace], torch.Tensor]:
        """Forward ``x``: a :class:`BlockTrace` per hidden block, and the logits."""
        traces = []
        for block in self.blocks:
            a, z, h = block.trace(x)
            traces.append(BlockTrace(x, a, z, h, z if self.inject_at == "activation" else h))
            x = h
        return traces, self.head(x)

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
        """Per-example shape of every hidden block's injection point (its output, or its
        activation with ``inject_at="activation"``), found with one dummy forward."""
        was_training = self.training
        self.eval()
        try:
            return [tuple(t.point.shape[1:]) for t in self.trace(self.example_input())[0]]
        finally:
            self.train(was_training)
