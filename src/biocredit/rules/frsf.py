"""frSF: fixed random-magnitude sign-concordant feedback."""

from __future__ import annotations

from .sign_symmetry import SignSymmetryRule


class FixedRandomSignFeedback(SignSymmetryRule):
    """``B = sign(W)ᵀ ⊙ |R|`` with ``R`` drawn once (as ``feedback_init`` says) and kept in
    the buffer ``feedback_magnitude``; only the signs follow ``W``."""

    name = "frsf"
    summary = "sign symmetry: forward signs, random magnitudes drawn once"

    def layer_state(self, layer):
        """``feedback_magnitude``: ``|R|``, the magnitudes of the random feedback drawn."""
        return {"feedback_magnitude": layer.feedback.abs().clone()}

    def initial_magnitude(self, layer):
        return layer.feedback_magnitude

    def magnitude(self, layer):
        return layer.feedback_magnitude
