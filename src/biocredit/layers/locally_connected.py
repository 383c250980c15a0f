"""Locally connected ("untied") 2-D layers: a convolution's connectivity, separate weights
at every output location (Amit's untied layers), with a feedback pathway.

For input ``C_in × H × W``, kernel ``k × k``, stride ``s``, padding ``p`` and ``L = H_out·W_out``
output locations, location ``l`` computes ``a[:, l] = W_l x_l + b_l`` with ``x_l`` the
``C_in·k²`` input patch (``F.unfold``) and its own ``W_l`` (``C_out × C_in·k²``); all locations
run as one batched matmul.

Memory: the weight holds ``L · C_out · C_in · k²`` numbers, ``L`` times a convolution's
(``amit-simpnet-untied`` on 3×32×32: 1,024 × 32 × 75 ≈ 2.5 M instead of 2,400); the
unfolded input of a batch of ``N`` holds ``N · C_in · k² · L`` numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from .feedback_layer import FeedbackLayer


def _patches(x, kernel_size, padding, stride):
    """``L × N × C_in·k²``: every input patch, location-major, contiguous (a batched matmul
    on a strided view copies every location's matrix on its own: twice the time)."""
    return F.unfold(x, kernel_size, padding=padding, stride=stride).permute(2, 0, 1) \
        .contiguous()


def _untied(x, weight, bias, geometry):
    """``a[n, :, l] = W_l x_{n,l} + b_l`` with plain autograd (the BP fast path)."""
    kernel_size, padding, stride, out_size = geometry
    out = torch.bmm(_patches(x, kernel_size, padding, stride), weight.transpose(1, 2))
    out = out.permute(1, 2, 0).reshape(x.shape[0], weight.shape[1], *out_size)
    return out if bias is None else out + bias


class UntiedFeedbackFunction(torch.autograd.Function):
    """The locally connected forward; the backward sends ``∂x`` through ``feedback``."""

    @staticmethod
    def forward(ctx, input, weight, bias, feedback, geometry):
        ctx.save_for_backward(input, feedback)
        ctx.geometry = geometry
        ctx.has_bias = bias is not None
        return _untied(input, weight, bias, geometry)

    @staticmethod
    def backward(ctx, grad_output):
        input, feedback = ctx.saved_tensors
        input, feedback = input.to(grad_output.dtype), feedback.to(grad_output.dtype)  # autocast
        kernel_size, padding, stride, _ = ctx.geometry
        need_input, need_weight, need_bias = ctx.needs_input_grad[:3]
        n, c_out = grad_output.shape[:2]
        g = grad_output.reshape(n, c_out, -1).permute(2, 0, 1).contiguous()  # L × N × C_out
        grad_input = grad_weight = grad_bias = None
        if need_input:
            cols = torch.bmm(g, feedback).permute(1, 2, 0)              # N × C_in·k² × L
            grad_input = F.fold(cols, input.shape[-2:], kernel_size, padding=padding,
                                stride=stride)
        if need_weight:
            patches = _patches(input, kernel_size, padding, stride)     # recomputed, not saved
            grad_weight = patches.transpose(1, 2).bmm(g).transpose(1, 2)  # as autograd's
        if need_bias and ctx.has_bias:
            grad_bias = grad_output.sum(0)
        return grad_input, grad_weight, grad_bias, None, None


class LocallyConnected2d(FeedbackLayer, nn.Module):
    """The connectivity of ``nn.Conv2d(in_channels, out_channels, kernel_size, stride,
    padding)`` on inputs of spatial size ``input_size``, untied: ``weight`` is
    ``L × C_out × C_in·k²`` and ``bias`` ``C_out × H_out × W_out``. Layer feedback as in
    :class:`~biocredit.layers.feedback_layer.FeedbackLayer` (``feedback`` of the weight's
    shape); without feedback the backward is plain autograd (exact BP)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, input_size,
                 stride=1, padding=0, bias: bool = True, feedback=None, device=None,
                 dtype=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (_pair(kernel_size), _pair(stride),
                                                       _pair(padding))
        self.input_size = _pair(input_size)
        self.output_size = tuple(
            (size + 2 * p - k) // s + 1 for size, p, k, s in
            zip(self.input_size, self.padding, self.kernel_size, self.stride))
        if min(self.output_size) < 1:
            raise ValueError(f"kernel {self.kernel_size} does not fit input {self.input_size}")
        locations = math.prod(self.output_size)
        fan_in = in_channels * math.prod(self.kernel_size)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(locations, out_channels, fan_in, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, *self.output_size, **factory)) \
            if bias else None
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)
        self.init_feedback_state(feedback)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, input_size) -> "LocallyConnected2d":
        """The untied twin of ``conv``: its kernel (and bias) copied to every location."""
        if conv.groups != 1 or conv.dilation != (1, 1) or isinstance(conv.padding, str):
            raise ValueError("untying needs groups=1, dilation=1 and numeric padding")
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, input_size,
                  conv.stride, conv.padding, bias=conv.bias is not None,
                  device=conv.weight.device, dtype=conv.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(conv.weight.reshape(1, conv.out_channels, -1)
                             .expand_as(new.weight))
            if conv.bias is not None:
                new.bias.copy_(conv.bias.reshape(-1, 1, 1).expand_as(new.bias))
        return new

    @classmethod
    def from_layer(cls, layer: "LocallyConnected2d", feedback) -> "LocallyConnected2d":
        """A copy of ``layer`` (values, trainability, mask) with the given feedback."""
        new = cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.input_size,
                  layer.stride, layer.padding, bias=layer.bias is not None,
                  device=layer.weight.device, dtype=layer.weight.dtype)
        return new.copy_from(layer, feedback)

    @property
    def geometry(self):
        return self.kernel_size, self.padding, self.stride, self.output_size

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if tuple(input.shape[-2:]) != self.input_size:
            raise ValueError(f"this locally connected layer was built for "
                             f"{self.input_size} inputs; got {tuple(input.shape[-2:])}")
        weight = self.effective_weight()
        if self.feedback is None or self.exact:
            return _untied(input, weight, self.bias, self.geometry)
        return UntiedFeedbackFunction.apply(input, weight, self.bias, self.feedback,
                                            self.geometry)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"input_size={self.input_size}, stride={self.stride}, padding={self.padding}, "
                + super().extra_repr())
