"""brSF: batchwise random-magnitude sign-concordant feedback."""

from __future__ import annotations

import torch

from .sign_symmetry import SignSymmetryRule


class BatchRandomSignFeedback(SignSymmetryRule):
    """``B = sign(W)ᵀ ⊙ |R|`` with ``R ~ U(−s, s)`` (``s = 1/√n_{l+1}``, ``feedback_scale``,
    or ``√3 std(W)`` with ``feedback_like_weight``)
    redrawn after every step from torch's global generator (seeded by the run); the first
    magnitudes come from the rule's feedback generator."""

    name = "brsf"
    summary = "sign symmetry: forward signs, random magnitudes redrawn every step"

    scratch = frozenset({"feedback_draw"})
    redraws_magnitude = True    # fused=True: U(0, s) drawn inside the compiled update

    def fused_magnitude(self, layer):
        """The spread ``s``: the fused update draws ``U(0, s)`` in its kernel (another
        stream than :meth:`magnitude`'s ``uniform_``, the same distribution)."""
        return self.spread(layer)

    def layer_state(self, layer):
        """``feedback_draw``: where each step's magnitudes are drawn (a working buffer,
        not saved)."""
        return {**super().layer_state(layer), "feedback_draw": torch.zeros_like(layer.weight)}

    def magnitude(self, layer):
        s = self.spread(layer)
        if isinstance(s, torch.Tensor):                  # matched to W's std
            return layer.feedback_draw.uniform_(0.0, 1.0).mul_(s)
        return layer.feedback_draw.uniform_(0.0, s)      # = rand(W.shape) · s, in place

    def loaded_magnitude(self, layer):
        return layer.feedback.abs()    # no redraw on load: the run's random stream is kept
