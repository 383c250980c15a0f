"""FA: feedback alignment (Lillicrap et al. 2016)."""

from __future__ import annotations

from .base import LayerFeedbackRule, uniform_feedback


class FeedbackAlignment(LayerFeedbackRule):
    """``δa_l = (B_{l+1} δa_{l+1}) ⊙ f'(a_l)`` with ``B_{l+1}`` fixed and random.

    ``B`` is drawn ``U(−s, s)`` with ``s = feedback_scale`` or, by default, ``1/√n_{l+1}``
    (``n_{l+1}``: the width of the layer the error comes from).
    """

    name = "fa"
    summary = "feedback alignment: fixed random feedback to the layer below"
    defaults = {"feedback_scale": None}

    def initial_feedback(self, layer, generator):
        w = layer.weight
        return uniform_feedback(tuple(w.shape), w.shape[0], self.options["feedback_scale"],
                                generator, w)
