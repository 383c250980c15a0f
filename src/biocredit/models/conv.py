"""Convolutional, locally connected and residual networks of the papers, from layer lists.

A model is a list of steps in the papers' notation; :func:`build_layers` turns it into a
:class:`Network` with one block per weight layer, tracking the shape as it goes:

- ``("conv", C, k[, stride[, padding]])``: a ``k × k`` convolution with "same" zero padding
  (or ``padding`` zeros on each side, e.g. 0 for a "valid" convolution; locally connected
  with ``untied=True``), then the activation;
- ``("norm",)``: batch norm of the last layer's output, before its activation;
- ``("sum",)``: the last block adds its input (Amit's parameter-free SUM of the two previous
  layers); later pooling and dropout of that block follow the sum;
- ``("maxpool", k, stride)``: Amit's max-pool, a ``k × k`` window centred on each pixel with
  zeros outside the grid (``ZeroPad2d(k // 2)`` then ``MaxPool2d(k, stride)``);
- ``("pool", k, stride[, padding])``: an ordinary ``MaxPool2d``;
- ``("drop", p)``: dropout of a fraction ``p`` of the units (Amit's "drop .8" drops 80%);
- ``("full", n)``: a fully connected layer of ``n`` units (the first one flattens).
The output layer is linear. Direct-feedback rules inject after every block, i.e. after the
pooling and dropout that follow a layer (where Nøkland injects: after each max-pool), or
with ``inject_at="activation"`` right after the activation (where the DKP authors inject).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..layers import LocallyConnected2d
from .init import initialize, sparsify
from .mlp import ACTIVATIONS
from .network import Block, Network


def build_layers(steps, input_shape, num_classes, *, activation: str,
                 untied: bool = False, inject_at: str = "output", init: str = "uniform",
                 dropout_input: float = 0.0, dropout_hidden: float = 0.0,
                 forward_density: float = 1.0) -> Network:
    """A :class:`Network` from ``steps`` (see the module docstring) for ``input_shape``
    (``C × H × W``). ``dropout_input`` adds input dropout; ``dropout_hidden`` is not used
    (the steps say where dropout goes)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from "
                         f"{', '.join(sorted(ACTIVATIONS))}")
    if len(input_shape) != 3:
        raise ValueError(f"convolutional models take C x H x W inputs; got {input_shape}")
    blocks: list[Block] = []
    shape = tuple(input_shape)
    flat = False
    for step in steps:
        kind, *args = step
        if kind in ("conv", "full"):
            pre: list[nn.Module] = []
            if not blocks and dropout_input > 0:
                pre.append(nn.Dropout(dropout_input))
            if kind == "full" and not flat:
                pre.append(nn.Flatten())
                flat = True
            layer = _weight_layer(kind, args, shape, pre, untied)
            blocks.append(Block(layer, pre=pre, post=[ACTIVATIONS[activation]()]))
        elif kind == "norm":
            norm = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            blocks[-1].post.insert(0, norm(shape[0]))
        elif kind == "sum":
            blocks[-1].residual = True
        elif kind in ("maxpool", "pool", "drop"):
            if kind == "maxpool":
                k, stride = args
                ops = [nn.ZeroPad2d(k // 2), nn.MaxPool2d(k, stride)]
            elif kind == "pool":
                ops = [nn.MaxPool2d(*args)]
            else:
                ops = [nn.Dropout(args[0])]
            for op in ops:
                blocks[-1].after.append(op)
        else:
            raise ValueError(f"unknown step {step!r}")
        shape = _output_shape(blocks, input_shape)
    head = Block(nn.Linear(math.prod(shape), num_classes),
                 pre=[] if flat else [nn.Flatten()])
    net = Network(blocks, head, input_shape, inject_at=inject_at)
    initialize(net, init)
    if forward_density != 1.0:       # sparsify refuses densities outside (0, 1]
        sparsify(net, forward_density)
    return net


def _weight_layer(kind: str, args, shape: tuple, pre: list[nn.Module],
                  untied: bool) -> nn.Module:
    """A ``conv`` step's convolution (or, ``untied``, its locally connected layer; an even
    kernel's "same" padding goes into ``pre``) or a ``full`` step's linear layer, for
    inputs of ``shape``."""
    if kind != "conv":
        return nn.Linear(math.prod(shape), args[0])
    channels, k, stride, padding = _conv_args(*args)
    size = shape[1:]
    if padding == "same":
        padding, right = (k - 1) // 2, k - 1 - (k - 1) // 2
        if padding != right:  # "same" for an even kernel: pad unevenly, first
            pre.append(nn.ZeroPad2d((padding, right, padding, right)))
            size, padding = tuple(s + k - 1 for s in size), 0
    conv = nn.Conv2d(shape[0], channels, k, stride=stride, padding=padding)
    return LocallyConnected2d.from_conv(conv, size) if untied else conv


def _conv_args(channels: int, k: int, stride: int = 1, padding: int | str = "same"):
    return channels, k, stride, padding


@torch.no_grad()
def _output_shape(blocks, input_shape):
    x = torch.zeros(1, *input_shape)
    for block in blocks:
        block.eval()
        x = block(x)
        block.train()
    return tuple(x.shape[1:])


# The papers' architectures. ``untied`` variants make every conv layer locally connected.
ARCHITECTURES = {
    # Srivastava et al.'s CIFAR net as Nøkland used it (tanh units).
    "nokland-conv": dict(activation="tanh", steps=[
        ("conv", 96, 5), ("pool", 3, 2, 1), ("conv", 128, 5), ("pool", 3, 2, 1),
        ("conv", 256, 5), ("pool", 3, 2, 1), ("full", 2048), ("full", 2048)]),
    # Amit 2019, with the saturated linearity.
    "amit-simpnet": dict(activation="hardtanh", steps=[
        ("conv", 32, 5), ("maxpool", 3, 2), ("drop", 0.8), ("full", 500), ("drop", 0.3)]),
    "amit-deepnet": dict(activation="hardtanh", steps=[
        ("conv", 32, 5), ("maxpool", 3, 2), ("conv", 32, 3), ("conv", 32, 3),
        ("maxpool", 3, 2), ("drop", 0.8), ("conv", 32, 3), ("conv", 32, 3),
        ("maxpool", 3, 2), ("drop", 0.3), ("full", 500)]),
    "amit-deepernet": dict(activation="hardtanh", steps=[
        ("conv", 16, 3), ("conv", 16, 3), ("sum",), ("conv", 32, 3), ("conv", 32, 3),
        ("sum",), ("maxpool", 3, 2), ("drop", 0.5), ("conv", 64, 3), ("conv", 64, 3),
        ("sum",), ("maxpool", 3, 2), ("conv", 128, 3), ("conv", 128, 3), ("sum",),
        ("maxpool", 3, 2), ("drop", 0.8), ("full", 500)]),
    "amit-deepnet-s": dict(activation="hardtanh", steps=[
        ("conv", 16, 3), ("conv", 16, 3), ("sum",), ("maxpool", 3, 3), ("drop", 0.5),
        ("conv", 64, 3), ("conv", 64, 3), ("sum",), ("maxpool", 2, 2),
        ("conv", 64, 2), ("conv", 64, 2), ("sum",), ("maxpool", 2, 2), ("drop", 0.5),
        ("full", 500)]),
    # The DKP authors' CIFAR-10 net (Webster et al.'s published code): two valid 3x3
    # convolutions of 32 channels with batch norm, 2x2 pooling, 128 hidden units.
    "dkp-convnet": dict(activation="relu", inject_at="activation", steps=[
        ("conv", 32, 3, 1, 0), ("norm",), ("conv", 32, 3, 1, 0), ("norm",), ("pool", 2, 2),
        ("full", 128)]),
    "lenet": dict(activation="tanh", steps=[
        ("conv", 6, 5), ("pool", 2, 2), ("conv", 16, 5), ("pool", 2, 2), ("full", 120),
        ("full", 84)]),
}
for _name in ("amit-simpnet", "amit-deepnet", "amit-deepernet", "amit-deepnet-s"):
    ARCHITECTURES[f"{_name}-untied"] = {**ARCHITECTURES[_name], "untied": True}


def builder(name: str):
    """The builder of architecture ``name``: ``NAME`` or ``NAME:ACTIVATION``."""
    def build(args, input_shape, num_classes, **options):
        arch = dict(ARCHITECTURES[name])
        if len(args) > 1:
            raise ValueError(f"{name} takes at most one argument, the activation "
                             f"(e.g. {name}:relu)")
        if args:
            arch["activation"] = args[0]
        steps = arch.pop("steps")
        return build_layers(steps, input_shape, num_classes, **arch, **options)
    return build
