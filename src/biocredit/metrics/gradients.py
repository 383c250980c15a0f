"""How large a rule's updates are."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def gradient_norms(grads: Sequence[torch.Tensor | None]) -> list[float]:
    """The Frobenius norm ``‖G‖ = √(Σ g²)`` of each gradient (computed in float64);
    NaN for a layer that got no gradient (``None``)."""
    return [math.nan if g is None else g.detach().double().norm().item() for g in grads]
