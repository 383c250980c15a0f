"""DFA: direct feedback alignment (Nøkland 2016)."""

from __future__ import annotations

import math

import torch

from .base import FEEDBACK_OPTIONS, DirectFeedbackRule, auxiliary_error
from ..layers import block_matrices, project


class DirectFeedbackAlignment(DirectFeedbackRule):
    """``δa_l = (B_l e) ⊙ f'(a_l)`` for every tap, ``B_l`` fixed random ``n_l × C``.

    Tap ``l`` receives ``δh_l = e B_lᵀ``; autograd turns it into ``δa_l = δh_l ⊙ f'(a_l)`` and
    the local weight gradients. All ``B_lᵀ`` form one root buffer ``direct_feedback``
    (``C × Σ n_l``, drawn ``U(−s, s)`` with ``s = feedback_scale`` or ``1/√C`` by default;
    ``direct_feedback_mask`` holds a sparse mask), so one matmul serves every tap.
    ``aux_errors=True`` replaces ``e`` by each tap's own auxiliary error (Flam-Shepherd's
    LAFS-style experiment): ``e_l = softmax(B_lᵀ h_l) − y``.
    """

    name = "dfa"
    summary = "direct feedback alignment: output error to every hidden layer"
    defaults = {**FEEDBACK_OPTIONS, "aux_errors": False}

    def make_direct_state(self, root, shapes, num_outputs, generator, like):
        """Draw ``B_lᵀ`` (``C × n_l``) for every tap in tap order, side by side."""
        parts = [self.make_feedback((num_outputs, math.prod(s)), num_outputs, generator, like)
                 for s in self.direct_shapes(shapes)]
        masks = [m for _, m in parts]
        root.register_buffer("direct_feedback", torch.cat([b for b, _ in parts], dim=1))
        root.register_buffer("direct_feedback_mask",
                             None if masks[0] is None else torch.cat(masks, dim=1))

    def hidden_signals(self, root, error, records, target):
        """``δh_l = e_l B_lᵀ`` at every tap, with ``e_l = e`` (one matmul for all taps) or,
        with ``aux_errors``, each tap's own auxiliary error."""
        return self.direct_signals(root, error, records, target)

    def direct_signals(self, root, error, records, target) -> list[torch.Tensor]:
        shapes = self.direct_shapes([tuple(r.point.shape[1:]) for r in records])
        if not self.options.get("aux_errors"):
            return project(error, root.direct_feedback, shapes)        # [e B_1ᵀ | … | e B_kᵀ]
        matrices = block_matrices(root.direct_feedback, shapes)
        matrices = [b.to(error.dtype) for b in matrices]
        return [(auxiliary_error(r.point.detach().flatten(1) @ b.t(), target) @ b)
                .reshape(r.point.shape) for r, b in zip(records, matrices)]
