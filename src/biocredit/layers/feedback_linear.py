"""A linear layer whose backward pass sends the error through a feedback matrix.

Forward:  ``a = x Wᵀ + b``.
Backward: ``∂x = g B`` instead of ``g W`` (``B`` has ``W``'s layout, out × in, so in
ALGORITHMS.md's notation it is ``B_{l+1}ᵀ``); the parameter gradients are the usual
``∂W = gᵀ x`` and ``∂b = Σ g``. With ``B = W`` this is exactly back-propagation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class LinearFeedbackFunction(torch.autograd.Function):
    """``F.linear`` whose input gradient is ``grad_output @ feedback``."""

    @staticmethod
    def forward(input, weight, bias, feedback):
        return F.linear(input, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias, feedback = inputs
        ctx.save_for_backward(input, feedback)
        ctx.save_for_forward(input, weight)
        ctx.has_bias = bias is not None

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

    @staticmethod
    def backward(ctx, grad_output):
        input, feedback = ctx.saved_tensors
        need_input, need_weight, need_bias, _ = ctx.needs_input_grad
        grad_input = grad_weight = grad_bias = None
        if need_input:
            grad_input = grad_output @ feedback
        if need_weight or need_bias:
            g2 = grad_output.reshape(-1, grad_output.shape[-1])
            if need_weight:
                grad_weight = g2.t().mm(input.reshape(-1, input.shape[-1]))
            if need_bias and ctx.has_bias:
                grad_bias = g2.sum(0)
        return grad_input, grad_weight, grad_bias, None


class FeedbackLinear(nn.Linear):
    """``nn.Linear`` with a feedback matrix used in place of ``W`` in the backward pass.

    ``feedback`` is a buffer with the weight's shape (rules that learn it update it in
    place). ``feedback=None`` ties it to the weight: exact back-propagation. Inside
    :func:`exact_gradients` every layer uses its weight, so the same module computes the BP
    reference gradient.

    Sparse connectivity: an optional buffer ``weight_mask`` (0/1, the weight's shape) makes
    the effective weight ``W ⊙ M``, so masked connections are zero whatever the optimizer
    does; an optional ``feedback_mask`` is kept by rules that learn their feedback.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 feedback: torch.Tensor | None = None, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.exact = False
        self.register_buffer("feedback", None)
        self.register_buffer("weight_mask", None)
        self.register_buffer("feedback_mask", None)
        if feedback is not None:
            self.set_feedback(feedback)

    @classmethod
    def from_linear(cls, layer: nn.Linear, feedback: torch.Tensor | None) -> "FeedbackLinear":
        """A copy of ``layer`` (same weight and bias values) with the given feedback."""
        new = cls(layer.in_features, layer.out_features, bias=layer.bias is not None,
                  device=layer.weight.device, dtype=layer.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(layer.weight)
            if layer.bias is not None:
                new.bias.copy_(layer.bias)
        new.weight.requires_grad_(layer.weight.requires_grad)
        if layer.bias is not None:
            new.bias.requires_grad_(layer.bias.requires_grad)
        if getattr(layer, "weight_mask", None) is not None:
            new.set_weight_mask(layer.weight_mask)
        if feedback is not None:
            new.set_feedback(feedback)
        return new

    def set_weight_mask(self, mask: torch.Tensor) -> None:
        """Fix the connections where ``mask`` is 0 at zero (the stored weight too)."""
        mask = mask.detach().to(self.weight)
        self.weight_mask = mask
        with torch.no_grad():
            self.weight.mul_(mask)

    def effective_weight(self) -> torch.Tensor:
        """``W ⊙ M`` with a connectivity mask, else ``W``."""
        return self.weight if self.weight_mask is None else self.weight * self.weight_mask

    def set_feedback(self, feedback: torch.Tensor) -> None:
        if tuple(feedback.shape) != tuple(self.weight.shape):
            raise ValueError(f"feedback shape {tuple(feedback.shape)} does not match the "
                             f"weight shape {tuple(self.weight.shape)}")
        self.feedback = feedback.detach().to(self.weight)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        weight = self.effective_weight()
        feedback = weight if self.exact or self.feedback is None else self.feedback
        return LinearFeedbackFunction.apply(input, weight, self.bias, feedback)

    def extra_repr(self) -> str:
        kind = "tied (BP)" if self.feedback is None else "feedback"
        mask = "" if self.weight_mask is None else \
            f", density={self.weight_mask.mean().item():.2f}"
        return super().extra_repr() + f", backward={kind}{mask}"


@contextlib.contextmanager
def exact_gradients(model: nn.Module) -> Iterator[None]:
    """Within the block every feedback layer of ``model`` back-propagates through its
    forward weight, so a plain ``loss.backward()`` gives the true BP gradient."""
    layers = [m for m in model.modules() if isinstance(m, FeedbackLinear)]
    previous = [m.exact for m in layers]
    for m in layers:
        m.exact = True
    try:
        yield
    finally:
        for m, p in zip(layers, previous):
            m.exact = p
