"""Model registry: ``create("mlp:2x800:tanh", input_shape, num_classes)``.

A spec is ``FAMILY[:ARG...]``; each family has a builder taking the args after the family name.
"""

from __future__ import annotations

import fnmatch
import numbers
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..layers.tap import Tap
from .conv import ARCHITECTURES, builder
from .gpt import build_gpt
from .init import INITS, initialize
from .mlp import ACTIVATIONS, build_mlp
from .network import INJECTION_POINTS, Block, Network
from .user import build_user_model, check_user_file, is_user_spec

_FAMILIES: dict[str, Callable[..., Network]] = {
    "mlp": build_mlp,
    "gpt": build_gpt,       # a causal Transformer for text (gpt:2x64:h4)
    **{name: builder(name) for name in ARCHITECTURES},
}


def available() -> list[str]:
    """Names of the model families (the part of a spec before the first ``:``)."""
    return sorted(_FAMILIES)


def create(spec: str, input_shape: Sequence[int], num_classes: int, **options) -> Network:
    """Build the model described by ``spec`` for inputs of ``input_shape`` (no batch dim).

    ``options`` go to the family's builder (``init``, ``dropout_input``; MLPs also
    ``dropout_hidden``, ``bias``, ``forward_density``), except ``inject_at``, where direct
    feedback enters each block (``"output"`` or ``"activation"``; default: the model's own).
    ``FILE.py:FUNCTION`` or ``package.module:FUNCTION`` builds a user's model
    (:mod:`biocredit.models.user`).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 1:
        raise ValueError(f"a model needs at least one output; got num_classes={num_classes!r}")
    if not len(input_shape) or any(int(d) < 1 for d in input_shape):
        raise ValueError(f"input_shape needs positive sizes; got {tuple(input_shape)}")
    if is_user_spec(spec):
        if options.pop("inject_at", None) is not None:
            raise ValueError("`inject_at` places the built-in models' taps; in your own model "
                             "place biocredit.Tap() or use `taps`")
        options = {k: v for k, v in options.items() if v not in (None, 0, 0.0, 1.0, "uniform")}
        return build_user_model(spec, input_shape, num_classes, **options)
    check_user_file(spec)
    inject_at = options.pop("inject_at", None)
    family, *args = spec.split(":")
    if family not in _FAMILIES:
        raise ValueError(f"unknown model {family!r} in {spec!r}; available models: "
                         f"{', '.join(available())} (e.g. mlp:2x800:tanh)")
    if family not in ("mlp", "gpt") and options.get("dropout_hidden"):
        raise ValueError(f"{family} places its own dropout; `dropout_hidden` is for MLPs")
    if family == "gpt" and inject_at is not None:
        raise ValueError("gpt's taps end its blocks; `inject_at` does not apply to it (`taps` "
                         "chooses the blocks)")
    net = _FAMILIES[family](args, tuple(input_shape), num_classes, **options)
    net.spec = spec
    if inject_at is not None:
        net.inject_at = inject_at
    return net


def check_taps(spec: str, taps: Sequence[str]) -> None:
    """``taps`` place direct rules' taps in a user's model; in a built-in model they choose
    which of its own taps drive the rule (the others pass their input through)."""
    if taps and not is_user_spec(spec):
        shape = (16,) if spec.split(":")[0] == "gpt" else (1, 28, 28)   # token ids / images
        with torch.device("meta"):
            select_taps(create(spec, shape, 10), taps)


def convert_taps(net: nn.Module, spec: str, taps: Sequence[str]) -> list[str] | None:
    """What ``convert(..., taps=)`` gets for a direct rule: a user model's ``taps``; for a
    built-in model ``None``, after :func:`select_taps` kept the named ones of its own."""
    if is_user_spec(spec):
        return list(taps) or None
    if taps:
        select_taps(net, taps)
    return None


def select_taps(net: nn.Module, taps: Sequence[str]) -> None:
    """Keep only the built-in taps named by ``taps`` (names or glob patterns of the tap or
    its block, e.g. ``blocks.0``): a direct rule then sends its signal to those layers and
    back-propagates from them to the layers below the next kept tap, as BP does above the
    last one (Nøkland's 3x50 experiment: DFA in the first layer only)."""
    found = {name: module for name, module in net.named_modules() if isinstance(module, Tap)}
    chosen = {name for name in found for t in taps
              if fnmatch.fnmatchcase(name, t) or fnmatch.fnmatchcase(name.rpartition(".")[0], t)}
    if not chosen:
        raise ValueError(f"`taps={','.join(taps)}` names none of this model's taps; its taps: "
                         f"{', '.join(n.rpartition('.')[0] or n for n in found)}")
    for name, module in found.items():
        module.enabled = name in chosen


def parameter_count(spec: str, input_shape: Sequence[int], num_classes: int) -> int:
    """Trainable parameters of ``spec``, counted on the meta device (no memory, no init)."""
    with torch.device("meta"):
        net = create(spec, input_shape, num_classes)
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


__all__ = ["check_taps", "convert_taps", "select_taps", "parameter_count", "ACTIVATIONS", "Block", "INITS", "INJECTION_POINTS", "Network", "available", "create", "initialize"]
