"""KP: Kolen-Pollack learning of the feedback weights (Akrout et al. 2019)."""

from __future__ import annotations

import torch

from . import fused_updates
from .fa import FeedbackAlignment
from .layer_feedback import LAYER_FEEDBACK_OPTIONS, LAYER_FEEDBACK_RANGES, learned_layers


class KolenPollack(FeedbackAlignment):
    """``δa_l = (B_{l+1} δa_{l+1}) ⊙ f'(a_l)`` as FA, with ``B`` learned:
    ``ΔB_{l+1} = ε ΔW_{l+1}ᵀ − λ B_{l+1}`` and ``ΔW_{l+1}`` also gets ``− λ W_{l+1}``.

    ``ΔW`` is the step the optimizer actually took (any optimizer; ``W`` is snapshotted after
    every update), so ``B − Wᵀ`` shrinks by
    ``(1 − λ)`` every step and ``B`` converges to ``Wᵀ``. ``decay`` is ``λ`` per step (``η λ``
    in Akrout's notation, ``η`` the learning rate); ``epsilon`` is ``ε`` (1 for KP).
    ``fused=True``: the update as one torch.compile'd pass over all layers (equal to this
    eager one to float rounding; see :mod:`~biocredit.rules.fused_updates`).
    """

    learns_feedback = True

    name = "kp"
    summary = "Kolen-Pollack: feedback gets the forward weights' updates, both decay"
    defaults = {**LAYER_FEEDBACK_OPTIONS, "decay": 1e-3, "epsilon": 1.0, "fused": False}
    option_ranges = {**LAYER_FEEDBACK_RANGES,
                     "decay": (lambda v: 0 <= v < 1, "in [0, 1) (λ: B shrinks by 1 − λ a step)"),
                     "epsilon": (lambda v: v >= 0, ">= 0 (ε: the share of ΔW that B gets)")}

    scratch = frozenset({"weight_before_step"})

    def layer_state(self, layer):
        """``weight_before_step``: W as the optimizer will find it, ``ΔW = W −
        weight_before_step`` after its step (a working copy, not saved: refreshed after
        every update and every load)."""
        return {"weight_before_step": layer.weight.detach().clone()}

    @torch.no_grad()
    def after_load(self, net):
        layers = learned_layers(net)
        if not layers:                  # every layer excluded: nothing learns its feedback
            return
        torch._foreach_copy_([m.weight_before_step for m in layers],
                             [m.weight for m in layers])

    @torch.no_grad()
    def after_step(self, net):
        if self.options["fused"] and fused_updates.kp_step(self, net):
            return
        decay, epsilon = self.options["decay"], self.options["epsilon"]
        layers = learned_layers(net)
        if not layers:                  # (torch's _foreach_ refuse an empty list)
            return
        weights = [m.weight for m in layers]
        feedback = [m.feedback for m in layers]
        before = [m.weight_before_step for m in layers]
        if decay:                                         # B ← (1 − λ) B
            torch._foreach_mul_(feedback, 1.0 - decay)
        if epsilon:                                       # B ← B + ε (W − W_before) = B + ε ΔW
            torch._foreach_add_(feedback, weights, alpha=epsilon)
            torch._foreach_add_(feedback, before, alpha=-epsilon)
        if decay:                                         # W ← W − λ W_before
            once = {id(w): (w, b) for w, b in zip(weights, before)}   # a tied W decays once
            torch._foreach_add_([w for w, _ in once.values()], [b for _, b in once.values()],
                                alpha=-decay)
        for m in layers:
            if m.feedback_mask is not None:
                m.feedback.mul_(m.feedback_mask)
        torch._foreach_copy_(before, weights)               # the next step's W_before
