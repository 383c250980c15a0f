"""uSF: uniform sign-concordant feedback."""

from __future__ import annotations

import math

from ..layers.swap import output_dim
from .sign_symmetry import SignSymmetryRule


class UniformSignFeedback(SignSymmetryRule):
    """``B = s · sign(W)ᵀ`` with ``s = feedback_scale`` or ``1/√n_{l+1}`` by default."""

    name = "usf"
    summary = "sign symmetry: feedback = scaled sign of the forward weights"

    def magnitude(self, layer):
        scale = self.options["feedback_scale"]
        width = layer.weight.shape[output_dim(layer)]          # the layer's outputs
        return scale if scale is not None else 1.0 / math.sqrt(width)

    initial_magnitude = magnitude
