"""How the feedback weights relate to the forward weights they stand in for."""

from __future__ import annotations

import math

import torch

from ..layers import feedback_layers
from .alignment import angle_deg


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of the entries of ``a`` and ``b``; NaN if either is constant."""
    a, b = a.detach().flatten().double(), b.detach().flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denom = a.norm() * b.norm()
    return math.nan if denom == 0 else (a @ b / denom).item()


def norm_ratio(feedback: torch.Tensor, weight: torch.Tensor) -> float:
    """``‖B‖ / ‖W‖`` (Frobenius); NaN for a zero weight."""
    w = weight.detach().double().norm()
    return math.nan if w == 0 else (feedback.detach().double().norm() / w).item()


def feedback_alignment(net: torch.nn.Module) -> dict[str, list[float]]:
    """For every layer with its own feedback matrix (in the weight's layout, i.e. ``Bᵀ`` of
    docs/algorithms.md), in network order: ``wb_correlation`` = corr(W, Bᵀ) (Amit's plots),
    ``wb_angle_deg`` = the angle between them, ``feedback_norm_ratio`` = ‖B‖/‖W‖.
    Empty when the net has no such layer (BP, DFA)."""
    layers = feedback_layers(net)
    if not layers:
        return {}
    weights = [m.effective_weight() for m in layers]
    return {
        "wb_correlation": [correlation(w, m.feedback) for w, m in zip(weights, layers)],
        "wb_angle_deg": [angle_deg(w, m.feedback) for w, m in zip(weights, layers)],
        "feedback_norm_ratio": [norm_ratio(m.feedback, w) for w, m in zip(weights, layers)],
    }
