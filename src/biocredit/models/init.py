"""Forward-weight initialisations used by the papers."""

from __future__ import annotations

import math

import torch
from torch import nn

INITS = ("uniform", "xavier", "zero", "flam-shepherd")


@torch.no_grad()
def initialize(model: nn.Module, scheme: str, scale: float | None = None) -> None:
    """Initialise every ``nn.Linear`` / ``nn.Conv*`` of ``model`` in place.

    - ``uniform``: ``W, b ~ U(-s, s)`` with ``s = scale`` or ``1/√fan_in`` (Nøkland's BP and
      ReLU nets; Lillicrap's small-weight experiment sets ``scale = ω``).
    - ``xavier``: Glorot-uniform ``W ~ U(±√(6/(fan_in+fan_out)))``, ``b = 0`` (Amit).
    - ``zero``: ``W = 0, b = 0`` (Nøkland's FA/DFA tanh nets).
    - ``flam-shepherd``: Glorot-uniform ``W``, ``b ~ N(0, 1)`` (Flam-Shepherd's experiments).
    Draws come from torch's global generator, so ``torch.manual_seed`` fixes them.
    """
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; choose from {', '.join(INITS)}")
    if scale is not None and (scheme != "uniform" or not scale > 0):
        raise ValueError(f"init_scale is the bound of the uniform init, > 0; got {scale} with "
                         f"init {scheme!r}")
    from ..layers import LocallyConnected2d

    for m in model.modules():
        if isinstance(m, LocallyConnected2d):  # weight: locations × out × in·k²
            fan_in, fan_out = m.weight.shape[2], m.weight.shape[1] * math.prod(m.kernel_size)
        elif isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            receptive = math.prod(m.weight.shape[2:])
            fan_in, fan_out = m.weight.shape[1] * receptive, m.weight.shape[0] * receptive
        else:
            continue
        if scheme == "uniform":
            bound = 1.0 / math.sqrt(fan_in) if scale is None else scale
            m.weight.uniform_(-bound, bound)
            if m.bias is not None:
                m.bias.uniform_(-bound, bound)
        elif scheme in ("xavier", "flam-shepherd"):
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            m.weight.uniform_(-bound, bound)
            if m.bias is not None:
                if scheme == "xavier":
                    m.bias.zero_()
                else:
                    m.bias.normal_()
        else:
            m.weight.zero_()
            if m.bias is not None:
                m.bias.zero_()


def sparsify(net, density: float) -> None:
    """Keep a random fraction ``density`` of every weight layer's connections, fixed at zero
    elsewhere (Amit's 50 % connectivity): each ``nn.Linear``/``nn.Conv2d`` becomes a
    :class:`~biocredit.layers.FeedbackLinear`/``FeedbackConv2d`` tied to its weight (exact BP),
    and it or a ``LocallyConnected2d`` gets a 0/1 ``weight_mask`` drawn from torch's global
    generator."""
    from ..layers import FeedbackConv2d, FeedbackLinear, LocallyConnected2d
    from ..layers.feedback_init import sparse_mask

    if not 0.0 < density <= 1.0:
        raise ValueError(f"forward_density is the fraction of connections kept, in (0, 1]; "
                         f"got {density}")
    for block in [*net.blocks, net.head]:
        if isinstance(block.layer, nn.Linear):
            layer = FeedbackLinear.from_layer(block.layer, None)
        elif isinstance(block.layer, nn.Conv2d):
            layer = FeedbackConv2d.from_layer(block.layer, None)
        elif isinstance(block.layer, LocallyConnected2d):
            layer = block.layer
        else:
            raise ValueError(f"sparse connectivity is implemented for linear, convolutional "
                             f"and locally connected layers, not {type(block.layer).__name__}")
        layer.set_weight_mask(sparse_mask(tuple(layer.weight.shape), density, None,
                                          layer.weight.dtype))
        block.layer = layer
