"""What a learning rule is.

A rule is configuration (its options) plus the equations that make its teaching signals.
:func:`biocredit.convert` turns any ``nn.Module`` into a copy that a plain ``loss.backward()``
trains with the rule: it hands the copy to the rule's :meth:`Rule.install`, which its
mechanism implements. Rules with learned feedback also update it after every optimizer step
(:meth:`Rule.after_step`, or automatically with :func:`biocredit.hook_optimizer`) and may
follow a schedule per epoch (:meth:`Rule.after_epoch`).

Two mechanisms cover every rule:

* layer feedback (:class:`~biocredit.rules.layer_feedback.LayerFeedbackRule`): each weight
  layer's backward multiplies the error by the rule's feedback ``B`` instead of ``W``:
  ``δh_l = B_{l+1} δa_{l+1}``;
* direct feedback (:class:`~biocredit.rules.direct_feedback.DirectFeedbackRule`): taps cut
  the graph after hidden layers and each receives a signal made from the output error ``e``.

A rule's state is tensors in ``state_dict``, in one place per layer or per model, each
declared by one method of the rule: per layer, buffers of the feedback layer the conversion
made (``feedback``, ``feedback_mask`` and what :meth:`LayerFeedbackRule.layer_state`
declares); per model, buffers of the converted model itself (what
:meth:`DirectFeedbackRule.make_direct_state` registers). Python objects a rule keeps beside
them (DKP's feedback optimizer, whose state it writes into ``state_dict``; node
perturbation's host copy of its noise counter) live in the model's ``DirectEngine.runtime``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from ..layers import engine_of
from ..layers.feedback_init import KINDS, initial_feedback, sparse_mask


class Rule:
    """Base class. Subclasses set ``name``, ``summary`` and their ``defaults`` (options)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    direct: ClassVar[bool] = False            # drives taps from the output error
    learns_feedback: ClassVar[bool] = False   # changes its feedback after optimizer steps
    transports: ClassVar[str] = ""            # what of W its feedback is made from, if any
    option_types: ClassVar[dict[str, type]] = {}  # of options whose default is None
    # option -> (whether a value is in range, the range in words); checked on creation
    option_ranges: ClassVar[dict[str, tuple[Any, str]]] = {}
    compiles: ClassVar[bool] = True           # trains a torch.compile'd model

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(f"rule {self.name!r} has no option {', '.join(unknown)}; "
                             f"its options: {valid}")
        for key, value in options.items():
            check_option_type(self.name, key, value, self.defaults[key],
                              self.option_types.get(key))
            if key in self.option_ranges and value is not None:
                in_range, valid = self.option_ranges[key]
                if not in_range(value):
                    raise ValueError(f"rule {self.name!r}: option {key} must be {valid}; "
                                     f"got {value!r}")
        self.options = {**self.defaults, **options}

    def check_compiles(self) -> None:
        """Refuse ``torch.compile`` for rules that differentiate the recorded graph between
        their taps (``a_l``, the pooling): a compiled model does not keep it."""
        if not self.compiles:
            raise ValueError(f"{self.name} cannot train a torch.compile'd model: it "
                             "differentiates the graph between its taps, which compilation "
                             "does not keep; run it without --compile")

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"

    # -- converting a model ----------------------------------------------------------------
    def install(self, root: nn.Module, conversion, *, taps=None, exclude=(), skip=(),
                unsupported: str = "error", generator: torch.Generator | None = None,
                example_input: torch.Tensor | None = None) -> None:
        """Make ``root`` (the copy :func:`biocredit.convert` made) train with this rule,
        recording in ``conversion`` (a :class:`biocredit.Conversion`) what was done; the
        options are :func:`biocredit.convert`'s. Each mechanism implements it."""
        raise NotImplementedError

    def prepare(self, net: nn.Module, generator: torch.Generator | None) -> None:
        """Called at the end of :func:`biocredit.convert`, after :meth:`install`: set up what
        derives from the rule's state (sign symmetry's first ``B``)."""

    # -- training --------------------------------------------------------------------------
    def backward(self, net: nn.Module, x: torch.Tensor, target: torch.Tensor,
                 loss_fn) -> torch.Tensor:
        """Convenience: forward ``x``, compute the loss and ``loss.backward()``, which fills
        ``.grad`` with this rule's updates (accumulating, like any backward). Returns the
        loss, detached."""
        set_targets(net, target)
        loss = loss_fn(net(x), target)
        loss.backward()
        return loss.detach()

    def after_step(self, net: nn.Module) -> None:
        """Called after every optimizer step; rules with learned feedback update it here."""

    def after_epoch(self, net: nn.Module) -> None:
        """Called after every training epoch (learning-rate schedules of the feedback)."""

    def after_load(self, net: nn.Module) -> None:
        """Called after ``load_state_dict``: refresh state derived from the weights."""

    @classmethod
    def floor_macs(cls, macs: list[int], tap_widths: list[int], outputs: int) -> int | None:
        """The multiply-accumulates per example of one training step: ``macs`` are the
        forward MACs of the weight layers in order (``F_l``, the output layer last),
        ``tap_widths`` the widths ``n_l`` of the taps, ``outputs`` ``C``. ``None``: not
        stated (see :mod:`biocredit.training.floor`)."""
        return None


_NUMBER = "a number"
_KINDS = {bool: "true or false", int: _NUMBER, float: _NUMBER, str: "a name", dict: "an object"}


def check_option_type(rule: str, key: str, value: Any, default: Any,
                      declared: type | None) -> None:
    """An option's value must have its default's type (any number for a number; the
    declared type, or ``None``, for an option whose default is ``None``); numbers finite."""
    kind = declared or type(default)
    if value is None and default is None:
        return
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind in (int, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ValueError(f"rule {rule!r}: option {key} must be {_KINDS.get(kind, kind.__name__)}"
                         f"; got {value!r}")


def set_targets(net: nn.Module, target: torch.Tensor) -> None:
    """Hand the batch's labels to a converted model whose rule needs them (auxiliary errors)
    before its forward pass; a no-op for every other model."""
    engine = engine_of(net)
    if engine is not None:
        engine.target = target


FEEDBACK_OPTIONS: dict[str, Any] = {
    "feedback_init": "uniform",   # see biocredit.layers.feedback_init
    "feedback_scale": None,       # spread of the random kinds; default 1/√(width the error comes from)
    "feedback_density": 1.0,      # fraction of feedback connections kept (Amit's sparse feedback)
}


FEEDBACK_RANGES: dict[str, tuple[Any, str]] = {
    "feedback_init": (lambda v: v in KINDS, "one of " + ", ".join(KINDS)),
    "feedback_scale": (lambda v: v > 0, "> 0 (the spread of the random feedback)"),
    "feedback_density": (lambda v: 0 < v <= 1,
                         "in (0, 1] (the fraction of feedback connections kept)"),
}


class FeedbackRule(Rule):
    """A rule with feedback matrices, drawn as its options say."""

    defaults = FEEDBACK_OPTIONS
    option_types = {"feedback_scale": float}
    option_ranges = FEEDBACK_RANGES

    def make_feedback(self, shape: tuple[int, ...], fan_in: int,
                      generator: torch.Generator | None, like: torch.Tensor,
                      scale: float | None = None):
        """A new feedback matrix and its connectivity mask (``None`` at full density);
        ``scale`` overrides the option ``feedback_scale``."""
        o = self.options
        if not 0.0 < o["feedback_density"] <= 1.0:
            raise ValueError("feedback_density is the fraction of connections kept, in (0, 1]; "
                             f"got {o['feedback_density']}")
        spread = o["feedback_scale"] if scale is None else scale
        b = initial_feedback(o["feedback_init"], shape, fan_in, scale=spread,
                             generator=generator, dtype=like.dtype)
        mask = None
        if o["feedback_density"] < 1.0:
            mask = sparse_mask(shape, o["feedback_density"], generator, like.dtype)
            b = b * mask
            mask = mask.to(like.device)
        return b.to(like.device), mask


def auxiliary_error(logits: torch.Tensor, target) -> torch.Tensor:
    """LAFS-style error of auxiliary logits ``a_x,l = B_lᵀ h_l``:
    ``e_l = (softmax(a_x,l) − y) / N`` (the batch mean, like the output error)."""
    if target is None:
        raise ValueError("auxiliary errors need the batch's labels: call "
                         "biocredit.set_targets(model, y) before the forward pass "
                         "(rule.backward does it)")
    if target.dtype.is_floating_point:
        raise ValueError("auxiliary errors need class targets (a classification task)")
    onehot = torch.nn.functional.one_hot(target, logits.shape[1]).to(logits.dtype)
    return (torch.softmax(logits, dim=1) - onehot) / len(logits)


__all__ = ["FEEDBACK_OPTIONS", "FEEDBACK_RANGES", "FeedbackRule", "Rule", "auxiliary_error",
           "check_option_type", "set_targets"]
