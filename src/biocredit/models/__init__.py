"""Model registry: ``create("mlp:2x800:tanh", input_shape, num_classes)``.

A spec is ``FAMILY[:ARG...]``; each family has a builder taking the args after the family name.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch

from .conv import ARCHITECTURES, builder
from .init import INITS, initialize
from .mlp import ACTIVATIONS, build_mlp
from .network import INJECTION_POINTS, Block, Network
from .user import build_user_model, is_user_spec

_FAMILIES: dict[str, Callable[..., Network]] = {
    "mlp": build_mlp,
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
            raise ValueError("--inject-at places the built-in models' taps; in your own model "
                             "place biocredit.Tap() or use --taps")
        options = {k: v for k, v in options.items() if v not in (None, 0, 0.0, 1.0, "uniform")}
        return build_user_model(spec, input_shape, num_classes, **options)
    inject_at = options.pop("inject_at", None)
    family, *args = spec.split(":")
    if family not in _FAMILIES:
        raise ValueError(f"unknown model {family!r} in {spec!r}; available models: "
                         f"{', '.join(available())} (e.g. mlp:2x800:tanh)")
    if family != "mlp" and options.get("dropout_hidden"):
        raise ValueError(f"{family} places its own dropout; --dropout-hidden is for MLPs")
    net = _FAMILIES[family](args, tuple(input_shape), num_classes, **options)
    net.spec = spec
    if inject_at is not None:
        net.inject_at = inject_at
    return net


def check_taps(spec: str, taps: Sequence[str]) -> None:
    """``taps`` place direct rules' taps in a user's model; a built-in model places its own
    (where: ``inject_at``), and a second tap on the same layer would cut it twice."""
    if taps and not is_user_spec(spec):
        raise ValueError(f"--taps places taps in your own model (FILE.py:FUNCTION); {spec} "
                         "places its own (choose where with --inject-at)")


def parameter_count(spec: str, input_shape: Sequence[int], num_classes: int) -> int:
    """Trainable parameters of ``spec``, counted on the meta device (no memory, no init)."""
    with torch.device("meta"):
        net = create(spec, input_shape, num_classes)
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


__all__ = ["check_taps", "parameter_count", "ACTIVATIONS", "Block", "INITS", "INJECTION_POINTS", "Network", "available", "create", "initialize"]
