"""Model registry: ``create("mlp:2x800:tanh", input_shape, num_classes)``.

A spec is ``FAMILY[:ARG...]``; each family has a builder taking the args after the family name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .init import INITS, initialize
from .mlp import ACTIVATIONS, build_mlp
from .network import Block, Network

_FAMILIES: dict[str, Callable[..., Network]] = {
    "mlp": build_mlp,
}


def available() -> list[str]:
    """Names of the model families (the part of a spec before the first ``:``)."""
    return sorted(_FAMILIES)


def create(spec: str, input_shape: Sequence[int], num_classes: int, **options) -> Network:
    """Build the model described by ``spec`` for inputs of ``input_shape`` (no batch dim).

    ``options`` go to the family's builder (MLP: ``dropout_input``, ``dropout_hidden``,
    ``init``, ``bias``).
    """
    family, *args = spec.split(":")
    if family not in _FAMILIES:
        raise ValueError(f"unknown model {family!r} in {spec!r}; available models: "
                         f"{', '.join(available())} (e.g. mlp:2x800:tanh)")
    net = _FAMILIES[family](args, tuple(input_shape), num_classes, **options)
    net.spec = spec
    return net


__all__ = ["ACTIVATIONS", "Block", "INITS", "Network", "available", "create", "initialize"]
