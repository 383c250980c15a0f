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


def output_feedback_angles(net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor,
                           loss_fn) -> dict[str, float]:
    """Lillicrap's Fig. 4 for the top hidden layer of a net whose output layer has its own
    feedback ``B`` (FA and kin): with the output error ``e`` on the batch ``(x, target)``,
    ``hidden_angle_deg`` is the angle between the hidden update ``Δh_FA = B e`` and
    backprop's ``Δh_BP = Wᵀ e``, ``pseudo_angle_deg`` the angle between ``Δh_FA`` and
    pseudo-backprop's ``Δh_PBP = W⁺ e`` (``W⁺`` the Moore-Penrose pseudo-inverse of the
    output weight). Empty for other nets."""
    from .alignment import weight_layers
    head = weight_layers(net)[-1]
    feedback = getattr(head, "feedback", None)
    if feedback is None or feedback.dim() != 2:
        return {}
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            logits = net(x)
        logits = logits.detach().double().requires_grad_(True)
        with torch.enable_grad():
            (error,) = torch.autograd.grad(loss_fn(logits, target), logits)
    finally:
        net.train(was_training)
    weight = head.effective_weight().detach().double()      # out × hidden
    fa = error @ feedback.detach().double()                  # rows: (B e)ᵀ
    return {"hidden_angle_deg": angle_deg(fa, error @ weight),
            "pseudo_angle_deg": angle_deg(fa, error @ torch.linalg.pinv(weight).t())}
