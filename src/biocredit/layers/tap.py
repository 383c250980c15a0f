"""Where a direct rule's teaching signal enters a model: :class:`Tap`.

A tap is the identity in the forward pass. In a model converted for a direct rule (DFA, DKP,
IFA, the general rule) it also cuts the graph: the layers above a tap get its output
*detached*, and on ``loss.backward()`` the tap's input receives the rule's own signal, made
from the output error ``e`` (DFA: ``δh_l = e B_lᵀ``, for all taps in one matmul), instead of
the error coming down through the forward weights above it. Place a tap *after* a hidden
layer's nonlinearity, so that autograd turns ``δh_l`` into ``δa_l = δh_l ⊙ f'(a_l)``.

Outside such a model (or in a model converted for BP or a layer-feedback rule) a tap does
nothing at all.
"""

from __future__ import annotations

import torch
from torch import nn


class Tap(nn.Module):
    """A marker: ``Tap()(h) is h`` unless a direct rule drives it (see the module doc).

    ``preactivation``, ``activation``, ``skip`` and ``elementwise`` are optional context for
    rules that need more than the tap point (IFA, the general rule): the weight layer's output
    ``a_l`` the tap's value came from, the activation before any pooling, whether a residual
    sum lies between the previous tap and this one, and whether ``h_l`` is an element-wise
    function of ``a_l``. The built-in models pass them; in other models ``a_l`` is the output
    of the last weight layer before the tap.
    """

    def __init__(self) -> None:
        super().__init__()
        self.engine = None  # set by biocredit.convert; not state
        self.enabled = True  # False: convert leaves it a pass-through (models.select_taps)

    def forward(self, h: torch.Tensor, *, preactivation: torch.Tensor | None = None,
                activation: torch.Tensor | None = None, skip: bool = False,
                elementwise: bool = True) -> torch.Tensor:
        if self.engine is None:
            return h
        return self.engine.tap(h, preactivation, activation, skip, elementwise)

    def extra_repr(self) -> str:
        return "" if self.engine is None else f"rule={self.engine.rule.name}"
