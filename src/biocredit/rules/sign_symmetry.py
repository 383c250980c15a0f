"""Sign-symmetric feedback (Liao et al. 2016): the feedback has the forward weights' signs.

Shared by ``usf``, ``brsf`` and ``frsf``: ``B = sign(W) ⊙ m`` with magnitudes ``m`` that
each rule chooses, recomputed from the current ``W`` after every optimizer step.
"""

from __future__ import annotations

import torch

from .fa import FeedbackAlignment
from .layer_feedback import learned_layers


class SignSymmetryRule(FeedbackAlignment):
    """``δa_l = (B_{l+1} δa_{l+1}) ⊙ f'(a_l)`` with ``B_{l+1} = sign(W_{l+1})ᵀ ⊙ m``."""

    learns_feedback = True
    transports = "the sign of every forward weight (the feedback is sign(W) ⊙ m)"

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

    def after_step(self, net):
        for layer in learned_layers(net):
            self.refresh(layer, self.magnitude(layer))

    def after_load(self, net):
        """New weights, new signs (the magnitudes stay)."""
        for layer in learned_layers(net):
            self.refresh(layer, self.loaded_magnitude(layer))

    def loaded_magnitude(self, layer) -> torch.Tensor | float:
        """Magnitudes after ``load_state_dict`` (default: as after a step)."""
        return self.magnitude(layer)
