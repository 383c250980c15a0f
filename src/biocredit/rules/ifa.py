"""IFA: indirect feedback alignment (Nøkland 2016)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import project
from .dfa import DirectFeedbackAlignment


class IndirectFeedbackAlignment(DirectFeedbackAlignment):
    """``δa_1 = (B_1 e) ⊙ f'(a_1)``; for ``l > 1``: ``δa_l = (W_l δa_{l-1}) ⊙ f'(a_l)``.

    The error enters the first tap through a fixed random ``B_1`` (``U(±1/√C)`` by default)
    and travels *forward* through the forward weights: ``W_l δa_{l-1}`` is the Jacobian-vector
    product of the local graph from tap ``l−1`` to the weight layer's output ``a_l`` (in conv
    nets it also passes the pooling and dropout between them at this forward pass: the
    max-pool's chosen units, the dropout's mask), and ``⊙ f'(a_l)`` is the backward of the
    steps between the layer and its activation (batch norm included). Each later tap gets its
    signal at the activation. Taps with a residual sum between them are refused: the skip
    path has no forward-signal rule.
    """

    name = "ifa"
    summary = "indirect feedback alignment: error to the first layer, then forward"
    local_input_grad = True
    needs_preactivation = True

    def direct_shapes(self, shapes):
        return shapes[:1]

    def validate_taps(self, records):
        if any(r.skip for r in records):
            raise ValueError("IFA sends its signal forward through the weight layers; it is "
                             "not defined for residual (SUM) blocks")
        if any(r.preactivation is None for r in records):
            raise ValueError("IFA needs a weight layer before every tap")

    def input_grad_needed(self, records):
        """Only where a signal must go forward through something else than a weight layer
        fed by the previous tap (:func:`weight_times`); otherwise no layer computes an input
        gradient IFA would not use."""
        return not all(layer_on_previous_tap(r) for r in records[1:])

    def injection_points(self, records):
        return [records[0].point] + [r.activation for r in records[1:]]

    def hidden_signals(self, root, error, records, target):
        """Tap 1 receives ``B_1 e`` at its point, tap ``l > 1`` the forward signal
        ``W_l δa_{l-1}`` at its activation (so batch norm's parameters learn too)."""
        (signal,) = project(error, root.direct_feedback, [tuple(records[0].point.shape[1:])])
        signals = [signal]
        with torch.enable_grad():
            (delta,) = torch.autograd.grad(records[0].point, records[0].preactivation, signal,
                                           retain_graph=True)
            for below, record in zip(records, records[1:]):
                tangent = forward_jvp(below.point, below.activation, delta)
                signal = weight_times(record, tangent)                         # W_l δa_{l-1}
                # δa_l = signal ⊙ f'(a_l): the backward of the steps up to the activation.
                (delta,) = torch.autograd.grad(record.activation, record.preactivation, signal,
                                               retain_graph=True)
                signals.append(signal)
        return signals


def weight_times(record, tangent: torch.Tensor) -> torch.Tensor:
    """``W_l · tangent``: the Jacobian of the local graph from the previous tap to ``a_l``.
    When ``a_l`` is a linear layer's or a convolution's output on the previous tap's output
    itself, that is the layer's own map without its bias (one matmul, one convolution, with
    the layer's padding); otherwise :func:`forward_jvp`."""
    layer = layer_on_previous_tap(record)
    if layer is not None:
        weight = layer.effective_weight() if hasattr(layer, "effective_weight") else \
            layer.weight
        weight = weight.detach().to(tangent.dtype)
        if isinstance(layer, nn.Linear):
            return F.linear(tangent, weight)
        return layer._conv_forward(tangent, weight, None)     # nn.Conv*d's, padding modes too
    if not record.input.requires_grad:
        raise RuntimeError("IFA: the layers between two taps changed between training steps "
                           "(a linear layer on the previous tap's output before, something "
                           "else now); IFA needs the same structure at every step")
    return forward_jvp(record.preactivation, record.input, tangent)


def layer_on_previous_tap(record) -> nn.Module | None:
    """The linear layer or convolution whose output ``a_l`` is, when its input is the
    previous tap's output itself (``None`` otherwise)."""
    layer, layer_input = record.layer or (None, None)
    return layer if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)) and \
        layer_input is record.input else None


def forward_jvp(output: torch.Tensor, input: torch.Tensor, tangent: torch.Tensor) -> torch.Tensor:
    """``J · tangent`` for the Jacobian ``J = ∂output/∂input`` of the recorded graph at this
    forward pass (the transpose of the transpose: two reverse-mode calls), so dropout keeps
    the mask it drew."""
    if output is input:
        return tangent
    probe = torch.zeros_like(output, requires_grad=True)
    try:
        (vjp,) = torch.autograd.grad(output, input, probe, create_graph=True)
        (out,) = torch.autograd.grad(vjp, probe, tangent, retain_graph=True)
    except RuntimeError as err:
        raise ValueError("IFA carries its signal forward through the layers between taps and "
                         f"cannot through this model's ({str(err).splitlines()[0]})") from None
    return out
