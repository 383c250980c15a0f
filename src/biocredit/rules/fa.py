"""FA: feedback alignment (Lillicrap et al. 2016)."""

from __future__ import annotations

from .base import LayerFeedbackRule


class FeedbackAlignment(LayerFeedbackRule):
    """``δa_l = (B_{l+1} δa_{l+1}) ⊙ f'(a_l)`` with ``B_{l+1}`` fixed and random.

    By default ``B ~ U(−s, s)`` with ``s = 1/√n_{l+1}`` (``n_{l+1}``: the width of the layer
    the error comes from); ``feedback_init`` picks another kind (Gaussian, orthogonal,
    Flam-Shepherd's B1–B7), ``feedback_density`` sparse feedback.
    """

    name = "fa"
    summary = "feedback alignment: fixed random feedback to the layer below"
