"""brSF: batchwise random-magnitude sign-concordant feedback."""

from __future__ import annotations

import math

import torch

from .sign_symmetry import SignSymmetryRule


class BatchRandomSignFeedback(SignSymmetryRule):
    """``B = sign(W)ᵀ ⊙ |R|`` with ``R ~ U(−s, s)`` (``s = 1/√n_{l+1}`` or ``feedback_scale``)
    redrawn after every step from torch's global generator (seeded by the run); the first
    magnitudes come from the rule's feedback generator."""

    name = "brsf"
    summary = "sign symmetry: forward signs, random magnitudes redrawn every step"

    def magnitude(self, layer):
        scale = self.options["feedback_scale"]
        s = scale if scale is not None else 1.0 / math.sqrt(layer.weight.shape[0])
        return torch.rand_like(layer.weight) * s

    def loaded_magnitude(self, layer):
        return layer.feedback.abs()    # no redraw on load: the run's random stream is kept
