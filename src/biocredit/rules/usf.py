"""uSF: uniform sign-concordant feedback."""

from __future__ import annotations

from .sign_symmetry import SignSymmetryRule


class UniformSignFeedback(SignSymmetryRule):
    """``B = s · sign(W)ᵀ`` with ``s = feedback_scale`` or ``1/√n_{l+1}`` by default
    (``feedback_like_weight``: ``s = std(W)``)."""

    name = "usf"
    summary = "sign symmetry: feedback = scaled sign of the forward weights"

    like_weight_kind = "gaussian"      # |B| = s everywhere: std(B) = s

    def magnitude(self, layer):
        return self.spread(layer)

    initial_magnitude = magnitude
