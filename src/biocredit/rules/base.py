"""What a learning rule is.

A rule turns a plain :class:`~biocredit.models.Network` into one that carries the rule's
feedback state (:meth:`Rule.attach`, which never mutates its argument), fills ``.grad`` of every
trainable parameter for one batch (:meth:`Rule.backward`), and may adjust its own state after
the optimizer step (:meth:`Rule.after_step`) and after every epoch (:meth:`Rule.after_epoch`).
The trainer only ever calls these hooks.

Two mechanisms cover every rule:

* layer feedback (:class:`LayerFeedbackRule`): weight layers whose backward multiplies the
  error by a feedback matrix ``B`` instead of ``W``; the backward pass is ordinary autograd.
* direct feedback (:class:`DirectFeedbackRule`): the graph is cut after every hidden block and
  each block receives a teaching signal computed from the output error.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..layers import (DirectFeedback, FeedbackConv2d, FeedbackLinear, LocallyConnected2d,
                      feedback_layers)
from ..layers.feedback_init import initial_feedback, sparse_mask
from ..models.network import BlockTrace, Network


@dataclass
class StepResult:
    """The batch loss (detached, a 0-d tensor) and the logits of one training step."""

    loss: torch.Tensor
    logits: torch.Tensor


class Rule:
    """Base class. Subclasses set ``name``, ``summary`` and their ``defaults`` (options)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(f"rule {self.name!r} has no option {', '.join(unknown)}; "
                             f"its options: {valid}")
        self.options = {**self.defaults, **options}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"

    # -- the hooks -------------------------------------------------------------------------
    def attach(self, model: Network, generator: torch.Generator | None = None) -> Network:
        """A copy of ``model`` carrying this rule's feedback state; ``model`` is untouched.

        Random feedback is drawn from ``generator`` (torch's global one when ``None``).
        """
        if not isinstance(model, Network):
            raise TypeError("rules attach to a biocredit.models.Network "
                            f"(build one with biocredit.models.create); got {type(model).__name__}")
        net = copy.deepcopy(model)
        self.prepare(net, generator)
        return net

    def backward(self, net: Network, x: torch.Tensor, target: torch.Tensor,
                 loss_fn) -> StepResult:
        """Forward ``x`` and fill ``.grad`` of every trainable parameter (accumulating, like
        ``loss.backward()``). Default: autograd through the network's own backward rules."""
        logits = net(x)
        loss = loss_fn(logits, target)
        loss.backward()
        return StepResult(loss.detach(), logits.detach())

    def after_step(self, net: Network) -> None:
        """Called after every optimizer step; rules with learned feedback update it here."""

    def after_epoch(self, net: Network) -> None:
        """Called after every training epoch (learning-rate schedules of the feedback)."""

    # -- for subclasses --------------------------------------------------------------------
    def prepare(self, net: Network, generator: torch.Generator | None) -> None:
        """Install the rule's feedback state into ``net`` (a private copy)."""


FEEDBACK_OPTIONS: dict[str, Any] = {
    "feedback_init": "uniform",   # see biocredit.layers.feedback_init
    "feedback_scale": None,       # spread of the random kinds; default 1/√(width the error comes from)
    "feedback_density": 1.0,      # fraction of feedback connections kept (Amit's sparse feedback)
}


class FeedbackRule(Rule):
    """A rule with feedback matrices, drawn as its options say."""

    defaults = FEEDBACK_OPTIONS

    def make_feedback(self, shape: tuple[int, ...], fan_in: int,
                      generator: torch.Generator | None, like: torch.Tensor):
        """A new feedback matrix and its connectivity mask (``None`` at full density)."""
        o = self.options
        if not 0.0 < o["feedback_density"] <= 1.0:
            raise ValueError("feedback_density is the fraction of connections kept, in (0, 1]; "
                             f"got {o['feedback_density']}")
        b = initial_feedback(o["feedback_init"], shape, fan_in, scale=o["feedback_scale"],
                             generator=generator, dtype=like.dtype)
        mask = None
        if o["feedback_density"] < 1.0:
            mask = sparse_mask(shape, o["feedback_density"], generator, like.dtype)
            b = b * mask
            mask = mask.to(like.device)
        return b.to(like.device), mask


_FEEDBACK_VERSIONS = ((nn.Linear, FeedbackLinear), (nn.Conv2d, FeedbackConv2d),
                      (LocallyConnected2d, LocallyConnected2d))


def with_feedback(layer: nn.Module, feedback: torch.Tensor | None) -> nn.Module:
    """A copy of weight layer ``layer`` (and its connectivity mask) whose backward uses
    ``feedback`` (``None``: its weight)."""
    for plain, version in _FEEDBACK_VERSIONS:
        if isinstance(layer, plain):
            return version.from_layer(layer, feedback)
    raise ValueError(f"layer feedback is not implemented for {type(layer).__name__}")


def fan_out(layer: nn.Module) -> int:
    """How many errors each input unit of ``layer`` sums in the backward pass: the fan-in
    of its feedback (linear: ``out``; convolution: ``C_out·k²``; untied: ``C_out``)."""
    if isinstance(layer, LocallyConnected2d):
        return layer.weight.shape[1]
    w = layer.weight
    return w.shape[0] * math.prod(w.shape[2:])


class LayerFeedbackRule(FeedbackRule):
    """Every weight layer that sends an error downstream multiplies it by its own feedback
    matrix: ``δh_l = B_{l+1} δa_{l+1}`` (FA and its relatives). The backward is autograd.
    The feedback has the weight's layout (``out × in``, or the kernel's shape) and is drawn
    with ``fan_in`` = :func:`fan_out` of the layer."""

    def prepare(self, net: Network, generator: torch.Generator | None) -> None:
        for block in [*net.blocks[1:], net.head]:  # the data needs no error: skip layer 1
            w = block.layer.weight
            feedback, mask = self.make_feedback(tuple(w.shape), fan_out(block.layer),
                                                generator, w)
            block.layer = with_feedback(block.layer, feedback)
            block.layer.feedback_mask = mask


def learned_layers(net: Network) -> list[FeedbackLinear]:
    """The feedback layers of ``net`` that hold a feedback matrix of their own."""
    return feedback_layers(net)


class DirectFeedbackRule(FeedbackRule):
    """The graph is cut after every hidden block; block ``l`` receives the teaching signal
    ``δh_l`` from :meth:`hidden_signals` and all block-local gradients (and the output layer's,
    from ``e``) come from one autograd call. No error travels through the forward weights."""

    def prepare(self, net: Network, generator: torch.Generator | None) -> None:
        shapes = self.direct_shapes(net.hidden_shapes())
        weight = net.head.layer.weight
        num_outputs = weight.shape[0]
        parts = [self.make_feedback((num_outputs, math.prod(s)), num_outputs, generator, weight)
                 for s in shapes]
        masks = [m for _, m in parts]
        net.direct_feedback = DirectFeedback(
            torch.cat([b for b, _ in parts], dim=1), shapes,
            mask=None if masks[0] is None else torch.cat(masks, dim=1))

    def direct_shapes(self, hidden_shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """Which blocks get a direct projection of ``e`` (default: all of them)."""
        return hidden_shapes

    def backward(self, net, x, target, loss_fn):
        traces, logits = forward_cut(net, x)
        error, loss = output_error(loss_fn, logits, target)
        outputs, grads = self.hidden_signals(net, error, traces, target)
        torch.autograd.backward([logits, *outputs], [error, *grads])
        return StepResult(loss, logits.detach())

    def hidden_signals(self, net: Network, error: torch.Tensor, traces: list[BlockTrace],
                       target: torch.Tensor):
        """Tensors of the cut graph and the gradients to inject at them. DFA: every block
        output ``h_l`` (or activation: the trace's ``point``) receives ``δh_l = e_l B_lᵀ``;
        autograd turns it into ``δa_l = δh_l ⊙ f'(a_l)`` and the block's weight gradient
        ``δa_l h_{l-1}ᵀ``."""
        return [t.point for t in traces], self.direct_signals(net, error, traces, target)

    def direct_signals(self, net, error, traces, target) -> list[torch.Tensor]:
        """``e_l B_lᵀ`` per block, with ``e_l = e`` (one matmul for all blocks) or, with the
        option ``aux_errors``, each block's own auxiliary error (:func:`auxiliary_error`)."""
        if not self.options.get("aux_errors"):
            return net.direct_feedback(error)
        errors = [auxiliary_error(t.point.detach().flatten(1) @ b.t(), target)
                  for t, b in zip(traces, net.direct_feedback.block_matrices())]
        return net.direct_feedback.project_each(errors)


def auxiliary_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """LAFS-style error of auxiliary logits ``a_x,l = B_lᵀ h_l``:
    ``e_l = (softmax(a_x,l) − y) / N`` (the batch mean, like the output error)."""
    if target.dtype.is_floating_point:
        raise ValueError("auxiliary errors need class targets (a classification task)")
    onehot = torch.nn.functional.one_hot(target, logits.shape[1]).to(logits.dtype)
    return (torch.softmax(logits, dim=1) - onehot) / len(logits)


def forward_cut(net: Network, x: torch.Tensor) -> tuple[list[BlockTrace], torch.Tensor]:
    """Forward with the graph cut between blocks: each block's graph is local to it
    (every trace's ``input`` is detached). Returns one :class:`BlockTrace` per hidden block
    and the logits (with the output layer's graph)."""
    return net.trace(x, cut=True)


def output_error(loss_fn, logits: torch.Tensor, target: torch.Tensor):
    """``e = ∂loss/∂a_L`` and the loss, computed on a detached copy of the logits."""
    a = logits.detach().requires_grad_()
    with torch.enable_grad():
        loss = loss_fn(a, target)
        (error,) = torch.autograd.grad(loss, a)
    return error, loss.detach()
