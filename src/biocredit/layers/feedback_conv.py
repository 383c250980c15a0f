"""A 2-D convolution whose backward sends the error through a feedback kernel.

Forward: ``a = W ⋆ x + b`` (``torch.nn.Conv2d``'s stride, padding, dilation and groups).
Backward: ``∂x`` is the transposed convolution with the feedback kernel ``B`` (the forward
kernel's shape) instead of ``W``; ``∂W`` and ``∂b`` are the usual ones. ``B = W`` is BP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .feedback_layer import FeedbackLayer


class Conv2dFeedbackFunction(torch.autograd.Function):
    """``F.conv2d`` whose input gradient uses ``feedback`` as the kernel."""

    @staticmethod
    def forward(input, weight, bias, feedback, stride, padding, dilation, groups):
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias, feedback, stride, padding, dilation, groups = inputs
        ctx.save_for_backward(input, feedback)
        ctx.save_for_forward(input, weight)
        ctx.conv = (stride, padding, dilation, groups)
        ctx.bias_sizes = None if bias is None else [bias.shape[0]]

    @staticmethod
    def backward(ctx, grad_output):
        input, feedback = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        need_input, need_weight, need_bias = ctx.needs_input_grad[:3]
        # One ATen call, as autograd's own conv backward, with the feedback kernel in the
        # weight's place: ∂x uses B; ∂W depends only on x, ∂a and the kernel's shape.
        grad_input, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad_output, input, feedback, ctx.bias_sizes, stride, padding, dilation, False,
            [0, 0], groups, [need_input, need_weight, need_bias and ctx.bias_sizes is not None])
        return grad_input, grad_weight, grad_bias, None, None, None, None, None

    @staticmethod
    def jvp(ctx, input_t, weight_t, bias_t, feedback_t, *_):
        input, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        out = 0
        if input_t is not None:
            out = out + F.conv2d(input_t, weight, None, stride, padding, dilation, groups)
        if weight_t is not None:
            out = out + F.conv2d(input, weight_t, None, stride, padding, dilation, groups)
        if bias_t is not None:
            out = out + bias_t.reshape(1, -1, 1, 1)
        return out


class FeedbackConv2d(FeedbackLayer, nn.Conv2d):
    """``nn.Conv2d`` with a feedback kernel used in place of ``W`` in the backward pass
    (see :class:`~biocredit.layers.feedback_layer.FeedbackLayer`). Zero padding only."""

    def __init__(self, *args, feedback: torch.Tensor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError("FeedbackConv2d supports numeric zero padding only")
        self.init_feedback_state(feedback)

    @classmethod
    def from_layer(cls, layer: nn.Conv2d, feedback: torch.Tensor | None) -> "FeedbackConv2d":
        """A copy of ``layer`` (values, trainability, mask) with the given feedback."""
        new = cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                  layer.padding, layer.dilation, layer.groups, bias=layer.bias is not None,
                  device=layer.weight.device, dtype=layer.weight.dtype)
        return new.copy_from(layer, feedback)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        weight = self.effective_weight()
        return Conv2dFeedbackFunction.apply(input, weight, self.bias,
                                            self.backward_matrix(weight), self.stride,
                                            self.padding, self.dilation, self.groups)
