"""Multilayer perceptrons from spec strings in the papers' notation: ``mlp:2x800:tanh``."""

from __future__ import annotations

import math

from torch import nn

from ..layers import SaturatedLinear
from .init import initialize, sparsify
from .network import Block, Network

ACTIVATIONS = {
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "relu": nn.ReLU,
    # Amit's saturated linearity: clip(h, -1, 1), derivative 1 inside, 0 outside.
    "hardtanh": SaturatedLinear,
    "linear": nn.Identity,   # linear networks (Lillicrap's and Amit's teacher tasks)
}


def parse_widths(text: str) -> list[int]:
    """``"2x800"`` -> ``[800, 800]``; ``"800,400"`` -> ``[800, 400]``."""
    try:
        if "x" in text:
            depth, width = text.split("x")
            widths = [int(width)] * int(depth)
        else:
            widths = [int(w) for w in text.split(",")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise ValueError(f"cannot read hidden layers from {text!r}: write DEPTHxWIDTH "
                         f"(e.g. 2x800) or comma-separated widths (e.g. 800,400)")
    return widths


MAX_LAYERS = 1000
MAX_PARAMETERS = 2_000_000_000


def check_size(widths: list[int], fan_in: int, num_classes: int) -> None:
    """Refuse, before allocating anything, an MLP deeper than :data:`MAX_LAYERS` or with more
    than :data:`MAX_PARAMETERS` weights (a typo such as ``mlp:100000x1`` or ``2x8000000``)."""
    sizes = [fan_in, *widths, num_classes]
    count = sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))
    if len(widths) > MAX_LAYERS or count > MAX_PARAMETERS:
        raise ValueError(f"an MLP with {len(widths):,} hidden layers and {count:,} parameters "
                         f"is beyond what biocredit builds (at most {MAX_LAYERS:,} layers and "
                         f"{MAX_PARAMETERS:,} parameters); check the model spec")


def build_mlp(args: list[str], input_shape: tuple[int, ...], num_classes: int, *,
              dropout_input: float = 0.0, dropout_hidden: float = 0.0,
              init: str = "uniform", bias: bool = True,
              forward_density: float = 1.0, init_scale: float | None = None) -> Network:
    """``mlp:DEPTHxWIDTH:ACTIVATION``, e.g. ``mlp:2x800:tanh``.

    Block ``l``: ``h_l = dropout(f(W_l h_{l-1} + b_l))``; the first block flattens its input
    and applies input dropout first. The output block is linear (logits).
    ``forward_density < 1`` keeps that fraction of every layer's connections (Amit's random
    sparse connectivity; fixed masks, see :func:`~biocredit.models.init.sparsify`).
    """
    if len(args) != 2:
        raise ValueError("an MLP spec is mlp:DEPTHxWIDTH:ACTIVATION, e.g. mlp:2x800:tanh")
    widths = parse_widths(args[0])
    activation = args[1]
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from "
                         f"{', '.join(sorted(ACTIVATIONS))}")
    if activation == "relu" and init == "zero":
        raise ValueError("a ReLU net cannot start from zero weights (no unit would ever "
                         "activate); use `init=uniform` or xavier")
    for name, p in (("dropout_input", dropout_input), ("dropout_hidden", dropout_hidden)):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{name} is the fraction of units dropped, in [0, 1); got {p}")

    fan_in = math.prod(input_shape)
    check_size(widths, fan_in, num_classes)
    blocks = []
    for i, width in enumerate(widths):
        pre: list[nn.Module] = []
        if i == 0:
            pre.append(nn.Flatten())
            if dropout_input > 0:
                pre.append(nn.Dropout(dropout_input))
        post: list[nn.Module] = [ACTIVATIONS[activation]()]
        if dropout_hidden > 0:
            post.append(nn.Dropout(dropout_hidden))
        blocks.append(Block(nn.Linear(fan_in, width, bias=bias), pre=pre, post=post))
        fan_in = width
    head = Block(nn.Linear(fan_in, num_classes, bias=bias))
    net = Network(blocks, head, input_shape)
    initialize(net, init, init_scale)
    if forward_density != 1.0:       # sparsify refuses densities outside (0, 1]
        sparsify(net, forward_density)
    return net
