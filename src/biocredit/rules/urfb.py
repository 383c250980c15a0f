"""URFB: updated random feedback (Amit 2019)."""

from __future__ import annotations

from .kp import KolenPollack
from .layer_feedback import LAYER_FEEDBACK_OPTIONS


class UpdatedRandomFeedback(KolenPollack):
    """``δa_l = (R_{l+1} δa_{l+1}) ⊙ f'(a_l)`` with ``R`` random at the start and then
    ``ΔR_{l+1} = ε ΔW_{l+1}ᵀ``: the same Hebbian increment as the forward weight, no decay.

    ``epsilon = 1`` is URFB, ``epsilon = 0`` is FRFB (= FA); values between interpolate, as in
    Amit's linear analysis.
    """

    name = "urfb"
    summary = "updated random feedback (Amit): feedback gets epsilon x the forward update"
    defaults = {**LAYER_FEEDBACK_OPTIONS, "epsilon": 1.0, "fused": False}

    def __init__(self, **options):
        super().__init__(**options)
        self.options["decay"] = 0.0
