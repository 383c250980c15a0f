"""brSF: batchwise random-magnitude sign-concordant feedback."""

from __future__ import annotations

import math

import torch

from ..layers.swap import output_dim
from .sign_symmetry import SignSymmetryRule


class BatchRandomSignFeedback(SignSymmetryRule):
    """``B = sign(W)ᵀ ⊙ |R|`` with ``R ~ U(−s, s)`` (``s = 1/√n_{l+1}`` or ``feedback_scale``)
    redrawn after every step from torch's global generator (seeded by the run); the first
    magnitudes come from the rule's feedback generator."""

    name = "brsf"
    summary = "sign symmetry: forward signs, random magnitudes redrawn every step"

    scratch = frozenset({"feedback_draw"})

    def layer_state(self, layer):
        """``feedback_draw``: where each step's magnitudes are drawn (a working buffer,
        not saved)."""
        return {"feedback_draw": torch.zeros_like(layer.weight)}

    def magnitude(self, layer):
        scale = self.options["feedback_scale"]
        width = layer.weight.shape[output_dim(layer)]          # the layer's outputs
        s = scale if scale is not None else 1.0 / math.sqrt(width)
        return layer.feedback_draw.uniform_(0.0, s)      # = rand(W.shape) · s, in place

    def loaded_magnitude(self, layer):
        return layer.feedback.abs()    # no redraw on load: the run's random stream is kept
