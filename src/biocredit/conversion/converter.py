""":func:`convert`: a copy of any ``nn.Module`` that a rule trains through a plain
``loss.backward()``; the rule's mechanism does the work (``rule.install``)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .. import rules
from ..layers.swap import check_patterns, feedback_version
from .record import Conversion


def convert(model: nn.Module, rule, *, taps: Sequence[str | type] | None = None,
            exclude: Sequence[str] = (), skip: Sequence[str] | None = None,
            unsupported: str = "error", generator: torch.Generator | None = None,
            example_input: torch.Tensor | dict | None = None, output=None,
            output_module: str | None = None) -> nn.Module:
    """A copy of ``model`` that ``loss.backward()`` trains with ``rule`` (a rule object or
    a registered name); ``model`` is untouched.

    - ``exclude``: names or glob patterns of weight layers kept on BP (reported as weight
      transport). A pattern that matches nothing is an error.
    - ``skip``: weight layers whose input is the data (their input gradient is never needed)
      and so get no feedback; default: the model's ``input_layers()`` if it has one.
    - ``unsupported``: ``"error"`` (default) refuses a module holding a weight matrix the
      converter cannot give feedback to, or whose weight is computed (a parametrization),
      naming it; ``"bp"`` leaves it on BP (reported).
    - ``taps`` (direct rules): names, glob patterns or module types after whose output a
      tap is placed, in addition to the ``Tap`` modules already in the model. Default for an
      ``nn.Sequential`` without taps: after each activation module.
    - ``generator``: where random feedback is drawn from (torch's global one when ``None``).
    - ``example_input`` (direct rules): a batch to find the taps' shapes with and draw the
      feedback now; default: the model's ``example_input()`` if it has one, else the first
      forward pass draws it. A dict is passed as keyword arguments (``model(**example)``).
    - ``output`` (direct rules): where in what the model returns the error ``e`` is taken:
      a field or key name, or a function of the output; default: the tensor itself, a
      ``ModelOutput``'s or dict's ``logits``, a tuple's first element. ``output_module``:
      the name of the module whose output is that point; default: the module found
      returning it at the first forward pass, so a loss computed inside ``forward``
      (``labels=``) gets ``e`` too.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert takes a torch.nn.Module to convert; got "
                        f"{type(model).__name__} {_short(model)}")
    rule = _rule(rule)
    if unsupported not in ("error", "bp"):
        raise ValueError(f"unsupported must be 'error' or 'bp'; got {unsupported!r}")
    if getattr(model, "biocredit_conversion", None) is not None:
        raise ValueError("this model is already converted "
                         f"(for {model.biocredit_conversion.rule.name}); convert the plain model")
    _check_materialised(model)
    _check_weight_layers(model, rule)
    if skip is None:
        skip = model.input_layers() if hasattr(model, "input_layers") else ()
    new = _copy(model)
    conversion = Conversion(rule, plain_keys=frozenset(model.state_dict()))
    check_patterns(new, exclude, "exclude")
    new.biocredit_conversion = conversion
    point = {k: v for k, v in (("output", output), ("output_module", output_module))
             if v is not None}
    if point and not rule.direct:
        raise ValueError(f"output= and output_module= choose where a direct rule takes the "
                         f"output error; {rule.name} does not take one")
    rule.install(new, conversion, taps=taps, exclude=exclude, skip=skip,
                 unsupported=unsupported, generator=generator, example_input=example_input,
                 **point)
    rule.prepare(new, generator)
    conversion.shared = _shared_parameters(new)
    new.register_load_state_dict_post_hook(_keep_feedback_on_load)
    return new


def _shared_parameters(model: nn.Module) -> list[str]:
    """The parameters that more than one name of ``model`` refers to, as ``"a = b"``."""
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    return [" = ".join(group) for group in names.values() if len(group) > 1]


def _copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model``; a clear error for a model torch cannot copy."""
    try:
        return copy.deepcopy(model)
    except RuntimeError as err:
        if "deepcopy protocol" not in str(err):
            raise
        raise ValueError(
            f"biocredit.convert converts a copy of the model, and this {type(model).__name__} "
            "cannot be copied: it holds a computed tensor that is not a parameter, as the "
            "old torch.nn.utils.weight_norm leaves. Remove it (torch.nn.utils."
            "remove_weight_norm(layer)), or use torch.nn.utils.parametrizations.weight_norm"
            ) from None


def _rule(rule) -> rules.Rule:
    """``rule``, or the rule registered under that name."""
    if isinstance(rule, str):
        return rules.create(rule)
    if not isinstance(rule, rules.Rule):
        raise TypeError(f"convert takes a rule: a name ({', '.join(rules.available())}) or a "
                        f"rule object (biocredit.rules.create(name)); got "
                        f"{type(rule).__name__} {_short(rule)}")
    return rule


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_materialised(model: nn.Module) -> None:
    """Refuse a model whose tensors are on the meta device: the rule's feedback is drawn
    from (or shaped like) the weights now, and ``to_empty()`` would leave it uninitialised
    memory that no layer's ``reset_parameters()`` draws again."""
    meta = [name for name, t in (*model.named_parameters(), *model.named_buffers())
            if t.is_meta]
    if meta:
        raise ValueError(
            f"this {type(model).__name__} is on the meta device ({meta[0]} has no values): "
            "biocredit.convert draws the rule's feedback now, and to_empty() would leave it "
            "uninitialised. Materialise the model first, then convert it: "
            "model.to_empty(device='cpu') and initialise its weights (each layer's "
            "reset_parameters(), or load_state_dict)")


def _check_weight_layers(model: nn.Module, rule) -> None:
    """Refuse a model without any weight layer: the rule would train nothing, silently."""
    if not any(feedback_version(m) is not None or isinstance(m, nn.MultiheadAttention)
               or any(p.dim() >= 2 for p in m.parameters(recurse=False))
               for m in model.modules()):
        raise ValueError(f"this {type(model).__name__} has no weight layer (nn.Linear, "
                         "nn.Conv1d, nn.Conv2d, nn.MultiheadAttention or any module with a "
                         f"weight matrix): there is nothing for {rule.name} to train")


def _keep_feedback_on_load(module: nn.Module, incompatible) -> None:
    """A plain model's ``state_dict`` loads into the converted one: the feedback state it
    lacks stays as it is (not a missing key); rules refresh what depends on the weights."""
    conversion = module.biocredit_conversion
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys
                                    if k in conversion.plain_keys]
    conversion.rule.after_load(module)
