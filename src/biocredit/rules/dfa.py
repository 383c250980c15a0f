"""DFA: direct feedback alignment (Nøkland 2016)."""

from __future__ import annotations

from .base import FEEDBACK_OPTIONS, DirectFeedbackRule


class DirectFeedbackAlignment(DirectFeedbackRule):
    """``δa_l = (B_l e) ⊙ f'(a_l)`` for every hidden layer, ``B_l`` fixed random ``n_l × C``.

    All ``B_l`` form one ``C × Σ n_l`` matrix, drawn ``U(−s, s)`` with
    ``s = feedback_scale`` or ``1/√C`` by default; one matmul feeds every block.
    ``aux_errors=True`` replaces ``e`` by each layer's own auxiliary error (Flam-Shepherd's
    LAFS-style experiment): ``e_l = softmax(B_lᵀ h_l) − y``.
    """

    name = "dfa"
    summary = "direct feedback alignment: output error to every hidden layer"
    defaults = {**FEEDBACK_OPTIONS, "aux_errors": False}
