"""Sign-symmetric feedback (Liao et al. 2016): the feedback has the forward weights' signs.

Shared by ``usf``, ``brsf`` and ``frsf``: ``B = sign(W) ⊙ m`` with magnitudes ``m`` that
each rule chooses, recomputed from the current ``W`` after every optimizer step.
"""

from __future__ import annotations

import math

import torch

from . import fused_updates
from .fa import FeedbackAlignment
from .layer_feedback import (LAYER_FEEDBACK_OPTIONS, fan_out, learned_layers,
                             spread_like_weight)


class SignSymmetryRule(FeedbackAlignment):
    """``δa_l = (B_{l+1} δa_{l+1}) ⊙ f'(a_l)`` with ``B_{l+1} = sign(W_{l+1})ᵀ ⊙ m``.

    ``fused=True``: the update as one torch.compile'd pass over all layers (bit-identical to
    the eager one, brSF's redraw aside; see :mod:`~biocredit.rules.fused_updates`)."""

    defaults = {**LAYER_FEEDBACK_OPTIONS, "fused": False}
    learns_feedback = True
    # brSF: the fused update draws U(0, s) itself, s = fused_magnitude(layer)
    redraws_magnitude = False
    transports = "the sign of every forward weight (the feedback is sign(W) ⊙ m)"

    # the kind of random draw whose spread ``feedback_like_weight`` matches to W's std
    like_weight_kind = "uniform"

    def layer_state(self, layer):
        """``feedback_spread`` (with ``feedback_like_weight``): the spread ``s`` that gives the
        feedback the standard deviation of ``layer``'s weight at conversion."""
        if not self.options["feedback_like_weight"]:
            return {}
        return {"feedback_spread": torch.tensor(
            spread_like_weight(layer, self.like_weight_kind), dtype=layer.weight.dtype,
            device=layer.weight.device)}

    def spread(self, layer) -> torch.Tensor | float:
        """``s``: ``feedback_scale``, else the spread matched to the weight's std
        (``feedback_like_weight``), else ``1/√n_{l+1}`` (``n_{l+1}`` = :func:`fan_out`, the
        width the error comes from, as FA's draw)."""
        if self.options["feedback_scale"] is not None:
            return self.options["feedback_scale"]
        if self.options["feedback_like_weight"]:
            return layer.feedback_spread
        return 1.0 / math.sqrt(fan_out(layer))

    def prepare(self, net, generator):
        super().prepare(net, generator)  # random feedback from `generator`: magnitudes |B|
        for layer in learned_layers(net):
            self.refresh(layer, self.initial_magnitude(layer))

    def initial_magnitude(self, layer) -> torch.Tensor | float:
        """Magnitudes at the start: those of the random feedback just drawn."""
        return layer.feedback.abs()

    def magnitude(self, layer) -> torch.Tensor | float:
        """Magnitudes after an optimizer step."""
        raise NotImplementedError

    @torch.no_grad()
    def refresh(self, layer, magnitude) -> None:
        """``B ← sign(W) ⊙ m`` (⊙ the feedback mask), in place: no new tensor per step."""
        b = layer.feedback
        torch.sign(layer.effective_weight(), out=b)
        b.mul_(magnitude)
        if layer.feedback_mask is not None:
            b.mul_(layer.feedback_mask)

    def fused_magnitude(self, layer) -> torch.Tensor | float:
        """What the fused update multiplies ``sign(W)`` by (with :attr:`redraws_magnitude`:
        the spread ``s`` of the ``U(0, s)`` it draws). Default: :meth:`magnitude`."""
        return self.magnitude(layer)

    def after_step(self, net):
        if self.options["fused"] and fused_updates.sign_step(self, net):
            return
        for layer in learned_layers(net):
            self.refresh(layer, self.magnitude(layer))

    def after_load(self, net):
        """New weights, new signs (the magnitudes stay)."""
        for layer in learned_layers(net):
            self.refresh(layer, self.loaded_magnitude(layer))

    def loaded_magnitude(self, layer) -> torch.Tensor | float:
        """Magnitudes after ``load_state_dict`` (default: as after a step)."""
        return self.magnitude(layer)
