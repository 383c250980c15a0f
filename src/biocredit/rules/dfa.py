"""DFA: direct feedback alignment (Nøkland 2016)."""

from __future__ import annotations

from .base import DirectFeedbackRule


class DirectFeedbackAlignment(DirectFeedbackRule):
    """``δa_l = (B_l e) ⊙ f'(a_l)`` for every hidden layer, ``B_l`` fixed random ``n_l × C``.

    All ``B_l`` form one ``C × Σ n_l`` matrix, drawn ``U(−s, s)`` with
    ``s = feedback_scale`` or ``1/√C`` by default; one matmul feeds every block.
    """

    name = "dfa"
    summary = "direct feedback alignment: output error to every hidden layer"
