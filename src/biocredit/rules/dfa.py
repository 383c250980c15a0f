"""DFA: direct feedback alignment (Nøkland 2016)."""

from __future__ import annotations

import math

import torch

from .base import FEEDBACK_OPTIONS, FEEDBACK_RANGES, auxiliary_error
from .direct_feedback import DirectFeedbackRule
from ..layers import block_matrices, project
from ..layers.direct import LAYOUTS, as_rows, positions_of

# The direct rules' layout option (see biocredit.layers.direct.position_dims).
LAYOUT_RANGE = {"layout": (lambda v: v in LAYOUTS,
                           "one of auto (position where the output (N, *P, C) and every tap "
                           "(N, *P, d) share their positions P), position, flat")}


class DirectFeedbackAlignment(DirectFeedbackRule):
    """``δa_l = (B_l e) ⊙ f'(a_l)`` for every tap, ``B_l`` fixed random ``n_l × C``.

    Tap ``l`` receives ``δh_l = e B_lᵀ``; autograd turns it into ``δa_l = δh_l ⊙ f'(a_l)`` and
    the local weight gradients. All ``B_lᵀ`` form one root buffer ``direct_feedback``
    (``C × Σ n_l``, drawn ``U(−s, s)`` with ``s = feedback_scale`` or ``1/√C`` by default;
    ``direct_feedback_mask`` holds a sparse mask), so one matmul serves every tap.
    ``aux_errors=True`` replaces ``e`` by each tap's own auxiliary error (Flam-Shepherd's
    LAFS-style experiment): ``e_l = softmax(B_lᵀ h_l) − y``.

    ``layout``: for an output ``(N, *P, C)`` with taps ``(N, *P, d_l)`` (a sequence model's
    ``(N, T, V)`` and ``(N, T, d)``), ``position`` projects each position's own error through
    one ``C × d_l`` matrix shared by all positions, ``δh_{l,t} = e_t B_lᵀ`` (any number of
    positions); ``flat`` projects the whole example's error, ``B_lᵀ`` then
    ``∏P·C × ∏P·d_l``. ``auto`` (default): ``position`` where the shapes share positions.
    """

    name = "dfa"
    summary = "direct feedback alignment: output error to every hidden layer"
    defaults = {**FEEDBACK_OPTIONS, "aux_errors": False, "layout": "auto"}
    option_ranges = {**FEEDBACK_RANGES, **LAYOUT_RANGE}

    @classmethod
    def floor_macs(cls, macs, tap_widths, outputs):
        """``ΣF + ΣF + C·Σn_l``: one projection of ``e`` per tap, no chain of input
        gradients."""
        return 2 * sum(macs) + outputs * sum(tap_widths)

    def make_direct_state(self, root, shapes, num_outputs, generator, like):
        """Draw ``B_lᵀ`` (``C × n_l``) for every tap in tap order, side by side (per row:
        ``C`` and ``n_l`` per position in the position layout)."""
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
        """``e_l B_lᵀ`` for the taps of :meth:`direct_shapes`, per example or per position
        (``e_t B_lᵀ``, rows of ``N·∏P``); auxiliary errors per row likewise."""
        p = positions_of(root)
        shapes = self.direct_shapes([tuple(r.point.shape[1 + p:]) for r in records])
        if not self.options.get("aux_errors"):
            return project(error, root.direct_feedback, shapes, p)     # [e B_1ᵀ | … | e B_kᵀ]
        matrices = block_matrices(root.direct_feedback, shapes)
        matrices = [b.to(error.dtype) for b in matrices]
        if p and target is not None:
            target = target.reshape(-1)               # a label per row: (N, *P) -> N·∏P
        return [(auxiliary_error(as_rows(r.point.detach(), p) @ b.t(), target) @ b)
                .reshape(r.point.shape) for r, b in zip(records, matrices)]
