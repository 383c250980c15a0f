"""Shallow learning: only the output layer learns (Lillicrap 2016's baseline)."""

from __future__ import annotations

from .direct_feedback import DirectFeedbackRule


class ShallowLearning(DirectFeedbackRule):
    """``δa_L = e``; hidden layers get no teaching signal: ``δa_l`` is none, ``ΔW_l = 0``.

    The taps cut the graph as for DFA, and no signal is injected at them, so only the layers
    above the last tap learn (from ``e``, as in BP); the hidden layers' ``.grad`` stays
    ``None`` (an optimizer leaves them as they are). No feedback is drawn and nothing of the
    forward weights is used.
    """

    name = "shallow"
    summary = "shallow learning: only the layers above the last hidden tap learn"
    defaults = {}

    @classmethod
    def floor_macs(cls, macs, tap_widths, outputs):
        """``ΣF + F_L``: the forward pass and the layers above the last tap's gradient."""
        return sum(macs) + macs[-1]

    def direct_shapes(self, shapes):
        return []

    def make_direct_state(self, root, shapes, num_outputs, generator, like):
        """Nothing to draw."""

    def injection_points(self, records):
        return []

    def hidden_signals(self, root, error, records, target):
        return []
