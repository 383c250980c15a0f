"""A linear layer whose backward pass sends the error through a feedback matrix.

Forward:  ``a = x Wᵀ + b`` (:class:`FeedbackTransposedLinear`: ``a = x W + b``, the weight
stored ``in × out`` as transformers' ``Conv1D`` stores it).
Backward: ``∂x = g B`` instead of ``g W`` (``B`` has ``W``'s layout, out × in, so in
docs/algorithms.md's notation it is ``B_{l+1}ᵀ``); the parameter gradients are the usual
``∂W = gᵀ x`` and ``∂b = Σ g``. With ``B = W`` this is exactly back-propagation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .feedback_layer import FeedbackLayer, fast_apply


class TraceableLinearFeedback(torch.autograd.Function):
    """``F.linear`` whose input gradient is ``grad_output @ feedback``, without forward mode:
    what ``torch.compile`` traces (Dynamo refuses a Function with a custom ``jvp`` and would
    run every such layer eagerly, a graph break each)."""

    @staticmethod
    def forward(input, weight, bias, feedback):
        return F.linear(input, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        # (a separate setup_context, as torch.func's transforms require; fast_apply skips
        # the argument binding Function.apply does for it, ~0.1 ms a call)
        input, _, _, feedback = inputs
        ctx.save_for_backward(input, feedback)

    @staticmethod
    def backward(ctx, grad_output):
        # The same kernels as ever (``@`` of 2-D operands is ``mm``; reshaping or converting
        # to a tensor's own shape or dtype returns it), without the calls that change nothing.
        input, feedback = ctx.saved_tensors
        need_input, need_weight, need_bias, _ = ctx.needs_input_grad   # False for no bias
        grad_input = grad_weight = grad_bias = None
        dtype = grad_output.dtype     # under autocast (bf16), the forward's compute dtype
        flat = grad_output.dim() == 2
        if need_input:
            if feedback.dtype != dtype:
                feedback = feedback.to(dtype)
            grad_input = grad_output.mm(feedback) if flat else grad_output @ feedback
        if need_weight or need_bias:
            g2 = grad_output if flat else grad_output.reshape(-1, grad_output.shape[-1])
            if need_weight:
                x2 = input if input.dim() == 2 else input.reshape(-1, input.shape[-1])
                grad_weight = g2.t().mm(x2 if x2.dtype == dtype else x2.to(dtype))
            if need_bias:
                grad_bias = g2.sum(0)
        return grad_input, grad_weight, grad_bias, None


class LinearFeedbackFunction(TraceableLinearFeedback):
    """:class:`TraceableLinearFeedback` with forward-mode AD (``torch.autograd.forward_ad``,
    ``torch.func.jvp``), run eagerly; under ``torch.compile``
    :func:`~.feedback_layer.fast_apply` takes the traceable one."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, _, _ = inputs
        ctx.save_for_forward(input, weight)
        TraceableLinearFeedback.setup_context(ctx, inputs, output)

    @staticmethod
    def jvp(ctx, input_t, weight_t, bias_t, feedback_t):
        """Forward mode is the forward's own derivative: ``ẋ Wᵀ + x Ẇᵀ + ḃ``."""
        input, weight = ctx.saved_tensors
        out = 0
        if input_t is not None:
            out = out + F.linear(input_t, weight)
        if weight_t is not None:
            out = out + F.linear(input, weight_t)
        if bias_t is not None:
            out = out + bias_t
        return out


class FeedbackLinear(FeedbackLayer, nn.Linear):
    """``nn.Linear`` with a feedback matrix used in place of ``W`` in the backward pass
    (see :class:`~biocredit.layers.feedback_layer.FeedbackLayer`)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 feedback: torch.Tensor | None = None, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.init_feedback_state(feedback)

    @classmethod
    def from_layer(cls, layer: nn.Linear, feedback: torch.Tensor | None) -> "FeedbackLinear":
        """A copy of ``layer`` (values, trainability, mask) with the given feedback."""
        new = cls(layer.in_features, layer.out_features, bias=layer.bias is not None,
                  device=layer.weight.device, dtype=layer.weight.dtype)
        return new.copy_from(layer, feedback)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        weight = self.effective_weight()
        return fast_apply(LinearFeedbackFunction, TraceableLinearFeedback, input, weight,
                          self.bias, self.backward_matrix(weight))


class FeedbackTransposedLinear(FeedbackLayer, nn.Module):
    """A linear layer whose weight is stored ``in × out`` (transformers' ``Conv1D``, every
    projection of GPT-2: ``a = x W + b``) with a feedback matrix of the same layout used in
    place of ``W`` in the backward pass. Keeps ``Conv1D``'s names (``weight``, ``bias``,
    ``nx``, ``nf``), so the plain model's ``state_dict`` loads."""

    transposed = True       # the weight's output dimension is its last (see fan_out)

    def __init__(self, nx: int, nf: int, bias: bool = True,
                 feedback: torch.Tensor | None = None, device=None, dtype=None):
        super().__init__()
        self.nx, self.nf = nx, nf
        self.weight = nn.Parameter(torch.empty(nx, nf, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(nf, device=device, dtype=dtype)) if bias else None
        self.init_feedback_state(feedback)

    @classmethod
    def from_layer(cls, layer: nn.Module, feedback: torch.Tensor | None
                   ) -> "FeedbackTransposedLinear":
        """``layer`` (a ``Conv1D``: ``weight`` ``nx × nf``, ``bias`` or ``None``) with its
        parameters, mask and the given feedback."""
        nx, nf = layer.weight.shape
        new = cls(nx, nf, bias=getattr(layer, "bias", None) is not None,
                  device=layer.weight.device, dtype=layer.weight.dtype)
        return new.copy_from(layer, feedback)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        weight = self.effective_weight()
        return fast_apply(LinearFeedbackFunction, TraceableLinearFeedback, input,
                          weight.t(), self.bias, self.backward_matrix(weight).t())

    def extra_repr(self) -> str:
        return f"nx={self.nx}, nf={self.nf}" + FeedbackLayer.extra_repr(self)
