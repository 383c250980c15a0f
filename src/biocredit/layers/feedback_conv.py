"""1-D and 2-D convolutions whose backward sends the error through a feedback kernel.

Forward: ``a = W ⋆ x + b`` (``torch.nn.Conv1d``'s / ``torch.nn.Conv2d``'s stride, padding,
dilation, groups and padding mode). Backward: ``∂x`` is the transposed convolution with the
feedback kernel ``B`` (the forward kernel's shape) instead of ``W``; ``∂W`` and ``∂b`` are the
usual ones. ``B = W`` is BP.

Numeric zero padding goes straight to the convolution. A non-zero padding mode
(``'reflect'``, ``'replicate'``, ``'circular'``) and an asymmetric ``padding='same'`` pad the
input explicitly first, as ``torch.nn`` does; the padding's own backward is plain autograd
(it moves the error back to the positions it was copied from, no weight involved).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .feedback_layer import FeedbackLayer, fast_apply


_CONVOLUTIONS = {1: F.conv1d, 2: F.conv2d}
_CONVOLUTION_BACKWARD = torch.ops.aten.convolution_backward.default
_NO_OUTPUT_PADDING = {3: [0], 4: [0, 0]}        # by the kernel's number of dimensions


class TraceableConvFeedback(torch.autograd.Function):
    """``F.conv1d`` / ``F.conv2d`` (by the kernel's dimensions) whose input gradient uses
    ``feedback`` as the kernel, without forward mode: what ``torch.compile`` traces (see
    :class:`~.feedback_linear.TraceableLinearFeedback`)."""

    @staticmethod
    def forward(input, weight, bias, feedback, stride, padding, dilation, groups):
        conv = _CONVOLUTIONS[weight.dim() - 2]
        return conv(input, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, _, bias, feedback, stride, padding, dilation, groups = inputs
        ctx.save_for_backward(input, feedback)
        ctx.conv = (stride, padding, dilation, groups)
        ctx.bias_sizes = None if bias is None else [bias.shape[0]]

    @staticmethod
    def backward(ctx, grad_output):
        input, feedback = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        need_input, need_weight, need_bias = ctx.needs_input_grad[:3]
        # One ATen call, as autograd's own conv backward, with the feedback kernel in the
        # weight's place: ∂x uses B; ∂W depends only on x, ∂a and the kernel's shape.
        dtype = grad_output.dtype     # under autocast (bf16), the forward's compute dtype
        if input.dtype != dtype or feedback.dtype != dtype:
            input, feedback = input.to(dtype), feedback.to(dtype)
        grad_input, grad_weight, grad_bias = _CONVOLUTION_BACKWARD(
            grad_output, input, feedback, ctx.bias_sizes, stride, padding, dilation, False,
            _NO_OUTPUT_PADDING[feedback.dim()], groups, [need_input, need_weight, need_bias])
        return grad_input, grad_weight, grad_bias, None, None, None, None, None


class ConvFeedbackFunction(TraceableConvFeedback):
    """:class:`TraceableConvFeedback` with forward-mode AD (``torch.autograd.forward_ad``,
    ``torch.func.jvp``), run eagerly."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight = inputs[:2]
        ctx.save_for_forward(input, weight)
        TraceableConvFeedback.setup_context(ctx, inputs, output)

    @staticmethod
    def jvp(ctx, input_t, weight_t, bias_t, feedback_t, *_):
        input, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        conv = _CONVOLUTIONS[weight.dim() - 2]
        out = 0
        if input_t is not None:
            out = out + conv(input_t, weight, None, stride, padding, dilation, groups)
        if weight_t is not None:
            out = out + conv(input, weight_t, None, stride, padding, dilation, groups)
        if bias_t is not None:
            out = out + bias_t.reshape(1, -1, *([1] * (weight.dim() - 2)))
        return out


def _pad_for_conv(layer: nn.modules.conv._ConvNd,
                  input: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``input`` and the numeric zero padding to convolve it with, as ``torch.nn``'s own
    ``_conv_forward`` does: numeric zero padding is passed through untouched; a non-zero
    padding mode, or ``'same'`` with an odd total padding, pads ``input`` explicitly
    (``_reversed_padding_repeated_twice``: last dimension first, left then right)."""
    if layer.padding_mode == "zeros" and not isinstance(layer.padding, str):
        return input, layer.padding
    pads = list(layer._reversed_padding_repeated_twice)
    no_padding = (0,) * len(layer.kernel_size)
    if layer.padding_mode != "zeros":
        return F.pad(input, pads, mode=layer.padding_mode), no_padding
    left, right = pads[0::2], pads[1::2]
    if left == right:                    # 'valid', or 'same' with an even total: symmetric
        return input, tuple(reversed(left))
    return F.pad(input, pads), no_padding


class _FeedbackConv(FeedbackLayer):
    """What the 1-D and 2-D feedback convolutions share; ``batched_dim`` is the input's
    number of dimensions with a batch."""

    batched_dim = 0

    def __init__(self, *args, feedback: torch.Tensor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.init_feedback_state(feedback)

    @classmethod
    def from_layer(cls, layer, feedback: torch.Tensor | None):
        """A copy of ``layer`` (values, trainability, mask, every hyper-parameter) with the
        given feedback."""
        new = cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                  layer.padding, layer.dilation, layer.groups, bias=layer.bias is not None,
                  padding_mode=layer.padding_mode,
                  device=layer.weight.device, dtype=layer.weight.dtype)
        return new.copy_from(layer, feedback)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dim() == self.batched_dim - 1:     # unbatched, as torch.nn accepts
            return self.forward(input.unsqueeze(0)).squeeze(0)
        weight = self.effective_weight()
        input, padding = _pad_for_conv(self, input)
        return fast_apply(ConvFeedbackFunction, TraceableConvFeedback, input, weight,
                          self.bias, self.backward_matrix(weight), self.stride, padding,
                          self.dilation, self.groups)


class FeedbackConv2d(_FeedbackConv, nn.Conv2d):
    """``nn.Conv2d`` with a feedback kernel used in place of ``W`` in the backward pass
    (see :class:`~biocredit.layers.feedback_layer.FeedbackLayer`). Every padding of
    ``nn.Conv2d``: numbers, ``'valid'``/``'same'``, and every padding mode."""

    batched_dim = 4


class FeedbackConv1d(_FeedbackConv, nn.Conv1d):
    """``nn.Conv1d`` with a feedback kernel used in place of ``W`` in the backward pass
    (see :class:`~biocredit.layers.feedback_layer.FeedbackLayer`). Every padding of
    ``nn.Conv1d``: numbers, ``'valid'``/``'same'``, and every padding mode."""

    batched_dim = 3
