"""DKP: direct Kolen-Pollack, DFA with learned direct feedback (Webster et al.)."""

from __future__ import annotations

import torch

from ..optimizers import make_optimizer
from .base import FEEDBACK_OPTIONS, DirectFeedbackRule


class DirectKolenPollack(DirectFeedbackRule):
    """``δa_l = (B_l e) ⊙ f'(a_l)`` as DFA, with ``B_l`` learned like the weight of a direct
    read-out from ``h_l`` to the output: its gradient is ``e h_lᵀ`` (summed over the batch, in
    the stored ``C × n_l`` layout, i.e. ``B_l``'s transpose), all blocks in one matmul.

    ``B`` is stepped by its own optimizer (``feedback_optimizer``, ``feedback_lr``,
    ``feedback_momentum``, ``feedback_decay`` as weight decay) in :meth:`after_step`, apart
    from the forward weights' optimizer, and its learning rate is multiplied by
    ``feedback_lr_decay`` after every epoch (the authors' step schedule uses 0.8). Its
    optimizer state is not in the ``state_dict``.
    """

    name = "dkp"
    summary = "direct Kolen-Pollack: DFA whose feedback learns like a direct read-out"
    defaults = {**FEEDBACK_OPTIONS, "feedback_optimizer": "adam", "feedback_lr": 1e-3,
                "feedback_momentum": 0.0, "feedback_decay": 1e-4, "feedback_lr_decay": 1.0}

    def prepare(self, net, generator):
        super().prepare(net, generator)
        o = self.options
        net.direct_feedback.optimizer = make_optimizer(
            o["feedback_optimizer"], [net.direct_feedback.matrix], o["feedback_lr"],
            o["feedback_momentum"], o["feedback_decay"])

    def hidden_signals(self, net, error, traces, target):
        feedback = net.direct_feedback
        h = torch.cat([t.point.detach().flatten(1) for t in traces], dim=1)
        grad = error.t() @ h                                   # e h_lᵀ for every block at once
        if feedback.mask is not None:
            grad.mul_(feedback.mask)
        feedback.matrix.grad = grad if feedback.matrix.grad is None else \
            feedback.matrix.grad + grad
        return super().hidden_signals(net, error, traces, target)

    @torch.no_grad()
    def after_step(self, net):
        feedback = net.direct_feedback
        feedback.optimizer.step()
        feedback.matrix.grad = None
        if feedback.mask is not None:
            feedback.matrix.mul_(feedback.mask)

    def after_epoch(self, net):
        for group in net.direct_feedback.optimizer.param_groups:
            group["lr"] *= self.options["feedback_lr_decay"]
