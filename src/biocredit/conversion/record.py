"""What a conversion did: the :class:`Conversion` record a converted model carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..layers.direct import DirectEngine


@dataclass
class Conversion:
    """What :func:`~biocredit.convert` did. ``feedback``: weight layers whose backward uses
    the rule's feedback; ``tied``: weight layers that still send the error through their own
    weights (BP, ``exclude``, ``unsupported="bp"``); ``skipped``: input layers that need no
    feedback (nothing below them learns); ``taps``: where a direct rule's signals enter;
    ``engine``: what drives them; ``plain_keys``: the plain model's ``state_dict`` keys;
    ``embeddings``: lookup tables kept as they are (no error goes below them); ``shared``:
    parameters that several modules use (tied weights, kept tied), as ``"a = b"``."""

    rule: Any
    feedback: list[str] = field(default_factory=list)
    tied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    taps: list[str] = field(default_factory=list)
    engine: DirectEngine | None = None
    plain_keys: frozenset[str] = frozenset()
    embeddings: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"converted for {self.rule.name}"]
        for label, names in (("feedback", self.feedback), ("tied to their weights", self.tied),
                             ("input layers, no feedback needed", self.skipped),
                             ("taps", self.taps),
                             ("embeddings, kept as they are", self.embeddings),
                             ("tied parameters, kept tied", self.shared)):
            if names:
                lines.append(f"  {label} ({len(names)}): {', '.join(names)}")
        return "\n".join(lines)


def conversion_of(model: nn.Module) -> Conversion:
    """The :class:`Conversion` record of a converted model (a clear error otherwise)."""
    conversion = getattr(model, "biocredit_conversion", None)
    if conversion is None:
        raise ValueError(f"this {type(model).__name__} was not converted by biocredit: "
                         "call biocredit.convert(model, rule) first")
    return conversion
