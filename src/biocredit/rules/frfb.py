"""FRFB: Amit's name for fixed random feedback, i.e. FA."""

from __future__ import annotations

from .fa import FeedbackAlignment


class FixedRandomFeedback(FeedbackAlignment):
    """``δa_l = (R_{l+1} δa_{l+1}) ⊙ f'(a_l)``, ``R`` fixed random: FA under Amit's name
    (URFB with ``epsilon = 0``)."""

    name = "frfb"
    summary = "fixed random feedback (Amit): an alias of fa"
