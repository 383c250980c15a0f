"""IFA: indirect feedback alignment (Nøkland 2016)."""

from __future__ import annotations

import warnings

import torch
from torch.func import jvp

from .base import DirectFeedbackRule


class IndirectFeedbackAlignment(DirectFeedbackRule):
    """``δa_1 = (B_1 e) ⊙ f'(a_1)``; for ``l > 1``: ``δa_l = (W_l δa_{l-1}) ⊙ f'(a_l)``.

    The error enters the first hidden block through a fixed random ``B_1`` (``U(±1/√C)`` by
    default) and travels *forward* through the forward weights: ``W_l δa_{l-1}`` is the
    Jacobian-vector product of block ``l``'s weight layer. The steps after a weight layer
    must be element-wise (activation, dropout), as in an MLP.
    """

    name = "ifa"
    summary = "indirect feedback alignment: error to the first layer, then forward"

    def direct_shapes(self, hidden_shapes):
        return hidden_shapes[:1]

    def hidden_signals(self, net, error, traces, target):
        (signal,) = net.direct_feedback(error)
        deltas = []
        for block, trace in zip(net.blocks, traces):
            if deltas:  # W_l δa_{l-1}: the weight layer's JVP at its input
                signal = layer_jvp(block, trace.input, deltas[-1].reshape(trace.input.shape))
            if not block.elementwise:
                raise ValueError("IFA needs element-wise steps after each weight layer "
                                 "(activation, dropout); this model pools or sums after "
                                 f"one: {block.post} {block.after}")
            # δa_l = signal ⊙ f'(a_l): the (diagonal) Jacobian of the block's post steps.
            (delta,) = torch.autograd.grad(trace.output, trace.preactivation, signal,
                                           retain_graph=True)
            deltas.append(delta)
        return [t.preactivation for t in traces], deltas


def layer_jvp(block, x: torch.Tensor, tangent: torch.Tensor) -> torch.Tensor:
    """``∂ layer(pre(x)) / ∂x · tangent`` (forward-mode AD; torch's first use of it loads
    decompositions through a deprecated torch.jit path, whose warning is not ours to show)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*",
                                category=DeprecationWarning)
        return jvp(lambda z: block.layer(block.pre(z)), (x,), (tangent,))[1]
