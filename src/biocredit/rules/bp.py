"""BP: back-propagation, the reference every other rule is measured against."""

from __future__ import annotations

from .layer_feedback import LayerFeedbackRule


class Backprop(LayerFeedbackRule):
    """``δa_l = (W_{l+1}ᵀ δa_{l+1}) ⊙ f'(a_l)``.

    By default the layers are left as they are and plain autograd does the work (the fast
    path). ``through_feedback=True`` routes it through the same feedback layers as FA with
    the feedback tied to the forward weight (``B = W``); both give identical gradients.
    """

    name = "bp"
    summary = "back-propagation (the reference)"
    defaults = {"through_feedback": False}

    @property
    def converts_layers(self) -> bool:
        return self.options["through_feedback"]

    def layer_feedback(self, layer, generator):
        return None, None   # tied: the backward uses the weight itself
