"""IFA: indirect feedback alignment (Nøkland 2016)."""

from __future__ import annotations

import warnings

import torch
from torch.func import jvp

from ..models.network import BlockTrace
from .base import DirectFeedbackRule


class IndirectFeedbackAlignment(DirectFeedbackRule):
    """``δa_1 = (B_1 e) ⊙ f'(a_1)``; for ``l > 1``: ``δa_l = (W_l δa_{l-1}) ⊙ f'(a_l)``.

    The error enters the first hidden block through a fixed random ``B_1`` (``U(±1/√C)`` by
    default) and travels *forward* through the forward weights: ``W_l δa_{l-1}`` is the
    Jacobian-vector product of block ``l``'s weight layer. In conv nets the signal also
    passes forward through the pooling and dropout after a layer (their Jacobian at the
    current input: the max-pool's chosen units, the dropout's mask), and ``⊙ f'(a_l)`` is the
    backward of the steps between a layer and its activation (batch norm included).
    Residual (SUM) blocks are refused: their skip path has no forward-signal rule.
    """

    name = "ifa"
    summary = "indirect feedback alignment: error to the first layer, then forward"

    def direct_shapes(self, hidden_shapes):
        return hidden_shapes[:1]

    def prepare(self, net, generator):
        if any(block.residual for block in net.blocks):
            raise ValueError("IFA sends its signal forward through the weight layers; it is "
                             "not defined for residual (SUM) blocks")
        super().prepare(net, generator)

    def hidden_signals(self, net, error, traces, target):
        """Block 1 receives ``B_1 e`` at its injection point, block ``l > 1`` the forward
        signal ``W_l δa_{l-1}`` at its activation (so batch norm's parameters learn too)."""
        (signal,) = net.direct_feedback(error)
        first = traces[0]
        points, signals = [first.point], [signal]
        (delta,) = torch.autograd.grad(first.point, first.preactivation, signal,
                                       retain_graph=True)
        for below, block, trace in zip(traces, net.blocks[1:], traces[1:]):
            tangent = forward_through_after(below, delta)
            signal = layer_jvp(block, trace.input, tangent)      # W_l δa_{l-1}
            # δa_l = signal ⊙ f'(a_l): the backward of the steps up to the activation.
            (delta,) = torch.autograd.grad(trace.activation, trace.preactivation, signal,
                                           retain_graph=True)
            points.append(trace.activation)
            signals.append(signal)
        return points, signals


def forward_through_after(trace: BlockTrace, tangent: torch.Tensor) -> torch.Tensor:
    """``J · tangent`` for the Jacobian ``J`` of the block's steps after its activation
    (pooling, dropout) at this forward pass, from the recorded graph (the transpose of the
    transpose: two reverse-mode calls), so dropout keeps the mask it drew."""
    if trace.output is trace.activation:
        return tangent
    probe = torch.zeros_like(trace.output, requires_grad=True)
    (vjp,) = torch.autograd.grad(trace.output, trace.activation, probe, create_graph=True)
    (out,) = torch.autograd.grad(vjp, probe, tangent, retain_graph=True)
    return out


def layer_jvp(block, x: torch.Tensor, tangent: torch.Tensor) -> torch.Tensor:
    """``∂ layer(pre(x)) / ∂x · tangent`` (forward-mode AD; torch's first use of it loads
    decompositions through a deprecated torch.jit path, whose warning is not ours to show)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*",
                                category=DeprecationWarning)
        return jvp(lambda z: block.layer(block.pre(z)), (x,), (tangent,))[1]
