"""What a learning rule is.

A rule turns a plain :class:`~biocredit.models.Network` into one that carries the rule's
feedback state (:meth:`Rule.attach`, which never mutates its argument), fills ``.grad`` of every
trainable parameter for one batch (:meth:`Rule.backward`), and may adjust its own state after
the optimizer step (:meth:`Rule.after_step`). The trainer only ever calls these three hooks.

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

from ..layers import DirectFeedback, FeedbackLinear
from ..models.network import Network


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

    # -- the three hooks -------------------------------------------------------------------
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

    # -- for subclasses --------------------------------------------------------------------
    def prepare(self, net: Network, generator: torch.Generator | None) -> None:
        """Install the rule's feedback state into ``net`` (a private copy)."""


def uniform_feedback(shape: tuple[int, ...], fan_in: int, scale: float | None,
                     generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """``B ~ U(−s, s)`` with ``s = scale`` or, by default, ``s = 1/√fan_in`` where ``fan_in``
    is the number of errors each feedback unit sums (the width the feedback comes from)."""
    bound = scale if scale is not None else 1.0 / math.sqrt(fan_in)
    b = torch.rand(shape, generator=generator, dtype=like.dtype) * (2 * bound) - bound
    return b.to(like.device)


def feedback_layers(net: Network) -> list[tuple[str, nn.Module]]:
    """Named weight layers whose input needs an error signal: all but the first block's."""
    return [(f"blocks.{i}.layer", b.layer) for i, b in enumerate(net.blocks) if i > 0] + \
        [("head.layer", net.head.layer)]


def with_feedback(layer: nn.Module, feedback: torch.Tensor | None) -> nn.Module:
    """A copy of weight layer ``layer`` whose backward uses ``feedback`` (``None``: its weight)."""
    if isinstance(layer, nn.Linear):
        return FeedbackLinear.from_linear(layer, feedback)
    raise TypeError(f"layer feedback is not implemented for {type(layer).__name__}")


class LayerFeedbackRule(Rule):
    """Every weight layer that sends an error downstream multiplies it by its own feedback
    matrix: ``δh_l = B_{l+1} δa_{l+1}`` (FA and its relatives). The backward is autograd."""

    def prepare(self, net: Network, generator: torch.Generator | None) -> None:
        for i, block in enumerate([*net.blocks, net.head]):
            if i == 0:
                continue  # the first layer's input (the data) needs no error
            block.layer = with_feedback(block.layer, self.initial_feedback(block.layer, generator))

    def initial_feedback(self, layer: nn.Module, generator) -> torch.Tensor | None:
        """The feedback matrix for ``layer`` (in its weight's layout); ``None`` ties it to W."""
        raise NotImplementedError


class DirectFeedbackRule(Rule):
    """The graph is cut after every hidden block; block ``l`` receives the teaching signal
    ``δh_l`` from :meth:`hidden_signals` and all block-local gradients (and the output layer's,
    from ``e``) come from one autograd call. No error travels through the forward weights."""

    def prepare(self, net: Network, generator: torch.Generator | None) -> None:
        shapes = self.direct_shapes(net.hidden_shapes())
        num_outputs = net.head.layer.weight.shape[0]
        weight = net.head.layer.weight
        matrix = uniform_feedback((num_outputs, sum(math.prod(s) for s in shapes)),
                                  num_outputs, self.options.get("feedback_scale"), generator,
                                  weight)
        net.direct_feedback = DirectFeedback(matrix, shapes)

    def direct_shapes(self, hidden_shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """Which blocks get a direct projection of ``e`` (default: all of them)."""
        return hidden_shapes

    def backward(self, net, x, target, loss_fn):
        traces, logits = forward_cut(net, x)
        error, loss = output_error(loss_fn, logits, target)
        outputs, grads = self.hidden_signals(net, error, traces)
        torch.autograd.backward([logits, *outputs], [error, *grads])
        return StepResult(loss, logits.detach())

    def hidden_signals(self, net: Network, error: torch.Tensor, traces: list[BlockTrace]):
        """Tensors of the cut graph and the gradients to inject at them. DFA: every block
        output ``h_l`` receives ``δh_l = e B_lᵀ``; autograd turns it into
        ``δa_l = δh_l ⊙ f'(a_l)`` and the block's weight gradient ``δa_l h_{l-1}ᵀ``."""
        return [t.output for t in traces], net.direct_feedback(error)


@dataclass
class BlockTrace:
    """One hidden block of a cut forward pass: ``output = post(preactivation)``,
    ``preactivation = layer(pre(input))``; ``input`` is detached from the blocks below."""

    input: torch.Tensor
    preactivation: torch.Tensor
    output: torch.Tensor


def forward_cut(net: Network, x: torch.Tensor) -> tuple[list[BlockTrace], torch.Tensor]:
    """Forward with the graph cut between blocks: each block's graph is local to it.
    Returns one trace per hidden block and the logits (with the output layer's graph)."""
    traces = []
    for block in net.blocks:
        a = block.layer(block.pre(x))
        h = block.post(a)
        traces.append(BlockTrace(x, a, h))
        x = h.detach()
    return traces, net.head(x)


def output_error(loss_fn, logits: torch.Tensor, target: torch.Tensor):
    """``e = ∂loss/∂a_L`` and the loss, computed on a detached copy of the logits."""
    a = logits.detach().requires_grad_()
    with torch.enable_grad():
        loss = loss_fn(a, target)
        (error,) = torch.autograd.grad(loss, a)
    return error, loss.detach()
