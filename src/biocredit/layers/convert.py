"""``convert(model, rule)``: any ``nn.Module``, trained by a rule through a plain
``loss.backward()``.

What conversion does depends on the rule's mechanism:

* layer feedback (fa, kp, urfb, frfb, usf, brsf, frsf; bp with ``through_feedback``): every
  ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d``, ``LocallyConnected2d`` and (for rules with
  fixed feedback) ``nn.MultiheadAttention`` in the module tree is replaced by its feedback
  version (same name, weights, dtype, device and hyper-parameters) holding the rule's
  feedback buffer;
* direct feedback (dfa, dkp, ifa, general, shallow, node-perturbation): the model's
  :class:`~biocredit.layers.Tap` markers (or taps placed by ``taps=``) are driven by a
  :class:`~biocredit.layers.direct.DirectEngine`; the feedback matrices (node perturbation's
  noise seed) are buffers of the root module.

The argument is never changed: the result is a deep copy. Its ``biocredit_conversion``
attribute (a :class:`Conversion`) says what was done.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..distributed import unwrap
from .activation import SaturatedLinear
from .direct import DirectEngine, engine_of, no_taps
from .feedback_attention import FeedbackMultiheadAttention
from .feedback_conv import FeedbackConv1d, FeedbackConv2d
from .feedback_layer import FeedbackLayer
from .feedback_linear import FeedbackLinear
from .tap import Tap

# Plain layer type -> its feedback version (``from_layer(layer, feedback)``); feedback
# layers (LocallyConnected2d among them) are their own, see feedback_version.
FEEDBACK_VERSIONS: dict[type, type] = {
    nn.Linear: FeedbackLinear,
    nn.Conv1d: FeedbackConv1d,
    nn.Conv2d: FeedbackConv2d,
}

# Activation modules after which an nn.Sequential gets its default taps.
ACTIVATIONS = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.LeakyReLU,
               nn.Hardtanh, nn.Softplus, nn.Mish, nn.SELU, nn.CELU, nn.PReLU, nn.Softsign,
               nn.Tanhshrink, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.LogSigmoid,
               SaturatedLinear)

# Modules whose weights the error never crosses on its way down (a lookup table's error stops
# there) or that hold only per-unit scales: no matrix product to give feedback to.
NO_MATRIX_PRODUCT = (nn.Embedding, nn.EmbeddingBag, nn.modules.batchnorm._NormBase,
                     nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.PReLU)


@dataclass
class Conversion:
    """What :func:`convert` did. ``feedback``: weight layers whose backward uses the rule's
    feedback; ``tied``: weight layers that still send the error through their own weights
    (BP, ``exclude``, ``unsupported="bp"``); ``skipped``: input layers that need no feedback
    (nothing below them learns); ``taps``: where a direct rule's signals enter."""

    rule: Any
    feedback: list[str] = field(default_factory=list)
    tied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    taps: list[str] = field(default_factory=list)
    engine: DirectEngine | None = None
    plain_keys: frozenset[str] = frozenset()
    state: dict[str, Any] = field(default_factory=dict)   # rules' non-tensor bookkeeping

    def __str__(self) -> str:
        lines = [f"converted for {self.rule.name}"]
        for label, names in (("feedback", self.feedback), ("tied to their weights", self.tied),
                             ("input layers, no feedback needed", self.skipped),
                             ("taps", self.taps)):
            if names:
                lines.append(f"  {label} ({len(names)}): {', '.join(names)}")
        return "\n".join(lines)


def conversion_of(model: nn.Module) -> Conversion:
    """The :class:`Conversion` record of a converted model (a clear error otherwise)."""
    conversion = getattr(model, "biocredit_conversion", None)
    if conversion is None:
        raise ValueError(f"this {type(model).__name__} was not converted by biocredit: "
                         "call biocredit.convert(model, rule) first")
    return conversion


def convert(model: nn.Module, rule, *, taps: Sequence[str | type] | None = None,
            exclude: Sequence[str] = (), skip: Sequence[str] | None = None,
            unsupported: str = "error", generator: torch.Generator | None = None,
            example_input: torch.Tensor | None = None) -> nn.Module:
    """A copy of ``model`` that ``loss.backward()`` trains with ``rule`` (a rule object or
    a registered name); ``model`` is untouched.

    - ``exclude``: names or glob patterns of weight layers kept on BP (reported as weight
      transport). A pattern that matches nothing is an error.
    - ``skip``: weight layers whose input is the data (their input gradient is never needed)
      and so get no feedback; default: the model's ``input_layers()`` if it has one.
    - ``unsupported``: ``"error"`` (default) refuses a module holding a weight matrix the
      converter cannot give feedback to, naming it; ``"bp"`` leaves it on BP (reported).
    - ``taps`` (direct rules): names, glob patterns or module types after whose output a
      tap is placed, in addition to the ``Tap`` modules already in the model. Default for an
      ``nn.Sequential`` without taps: after each activation module.
    - ``generator``: where random feedback is drawn from (torch's global one when ``None``).
    - ``example_input`` (direct rules): a batch to find the taps' shapes with and draw the
      feedback now; default: the model's ``example_input()`` if it has one, else the first
      forward pass draws it.
    """
    from .. import rules  # rules build on layers; resolve names lazily

    if not isinstance(model, nn.Module):
        raise TypeError(f"convert takes a torch.nn.Module to convert; got "
                        f"{type(model).__name__} {_short(model)}")
    if isinstance(rule, str):
        rule = rules.create(rule)
    elif not isinstance(rule, rules.Rule):
        raise TypeError(f"convert takes a rule: a name ({', '.join(rules.available())}) or a "
                        f"rule object (biocredit.rules.create(name)); got "
                        f"{type(rule).__name__} {_short(rule)}")
    if unsupported not in ("error", "bp"):
        raise ValueError(f"unsupported must be 'error' or 'bp'; got {unsupported!r}")
    if getattr(model, "biocredit_conversion", None) is not None:
        raise ValueError("this model is already converted "
                         f"(for {model.biocredit_conversion.rule.name}); convert the plain model")
    _check_materialised(model)
    _check_weight_layers(model, rule)
    if skip is None:
        skip = model.input_layers() if hasattr(model, "input_layers") else ()
    new = copy.deepcopy(model)
    conversion = Conversion(rule, plain_keys=frozenset(model.state_dict()))
    _check_patterns(new, exclude, "exclude")
    _convert_layers(new, rule, conversion, exclude, skip, unsupported, generator)
    new.biocredit_conversion = conversion
    if rule.direct:
        engine = DirectEngine(rule, new, generator)
        conversion.engine = engine
        _place_taps(new, engine, conversion, taps)
        if example_input is None and hasattr(model, "example_input"):
            example_input = new.example_input()
        if example_input is not None:
            engine.probe(example_input)
    elif taps:
        raise ValueError("taps are for direct rules (dfa, dkp, ifa, general, shallow, "
                         f"node-perturbation); {rule.name} sends errors through every layer")
    rule.prepare(new, generator)
    new.register_load_state_dict_post_hook(_keep_feedback_on_load)
    return new


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


def _check_patterns(model: nn.Module, patterns: Sequence[str], option: str) -> None:
    names = [n for n, _ in model.named_modules()]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise ValueError(f"{option}={pattern!r} matches no module of this model; its "
                             f"modules: {', '.join(n for n in names if n) or 'none'}")


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def feedback_version(module: nn.Module) -> type | None:
    """The feedback class for ``module`` if it is a supported layer: a plain one (a subclass
    that overrides ``forward`` is not: the converter would lose its forward) or a feedback
    layer already (e.g. tied, with a sparse connectivity mask)."""
    if isinstance(module, FeedbackLayer):
        return type(module)
    for plain, version in FEEDBACK_VERSIONS.items():
        if isinstance(module, plain) and type(module).forward is plain.forward:
            return version
    return None


def _convert_layers(root, rule, conversion, exclude, skip, unsupported, generator) -> None:
    """Replace every supported weight layer by its feedback version (layer-feedback rules)
    and list the layers that keep back-propagating through their weights."""
    if rule.direct:
        return                            # direct rules leave every layer as it is
    replaced: list[str] = []
    refused: list[str] = []
    for name, module in list(root.named_modules()):
        if any(name.startswith(r + ".") for r in replaced):
            continue                      # inside a module already replaced
        if isinstance(module, nn.MultiheadAttention) and rule.converts_layers \
                and not _matches(name, (*exclude, *skip)):
            if rule.learns_feedback:
                label = (f"{name} (nn.MultiheadAttention: {rule.name} learns its feedback, "
                         "which attention's packed projections do not support yet)")
                (refused if unsupported == "error" else conversion.tied).append(label)
                continue
            _set_submodule(root, name, _attention_with_feedback(module, rule, generator))
            replaced.append(name)
            conversion.feedback.append(name)
            continue
        version = feedback_version(module)
        label = name or "(the model itself)"
        if version is None:
            if _holds_weight_matrix(module):
                refuse = rule.converts_layers and unsupported == "error" \
                    and not _matches(name, exclude)
                (refused if refuse else conversion.tied).append(
                    f"{label} ({type(module).__name__})")
            continue
        if _matches(name, skip):
            conversion.skipped.append(name)
        elif not rule.converts_layers or _matches(name, exclude):
            conversion.tied.append(name)
        else:
            feedback, mask = rule.layer_feedback(module, generator)
            new = version.from_layer(module, feedback)
            new.feedback_mask = mask
            _set_submodule(root, name, new)
            replaced.append(name)
            (conversion.feedback if feedback is not None else conversion.tied).append(name)
    if refused:
        raise ValueError(f"{rule.name} cannot give feedback to {', '.join(refused)}: the error "
                         "would cross their weights (weight transport). Pass "
                         "unsupported='bp' to leave them on BP, or exclude=[...] them")


def _attention_with_feedback(mha: nn.MultiheadAttention, rule, generator):
    """``mha`` whose input and output projections send the error through the rule's
    feedback (in-projection first, then ``out_proj``, each drawn like a linear layer's)."""
    if mha._qkv_same_embed_dim:
        weights = [mha.in_proj_weight]
    else:
        weights = [mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight]
    in_feedback = [rule.layer_feedback(_WeightOnly(w), generator)[0] for w in weights]
    out_feedback = rule.layer_feedback(mha.out_proj, generator)[0]
    return FeedbackMultiheadAttention.from_module(
        mha, in_feedback[0] if len(in_feedback) == 1 else in_feedback, out_feedback)


class _WeightOnly:
    """A stand-in for a linear layer holding ``weight`` (to draw its feedback)."""

    def __init__(self, weight: torch.Tensor):
        self.weight = weight


def _holds_weight_matrix(module: nn.Module) -> bool:
    """Whether ``module`` itself owns a trainable parameter shaped like a weight matrix or
    kernel (two or more dimensions, the first larger than one) of a type the converter does
    not know, and so would be left on BP. Parameters with a leading dimension of one
    (positional embeddings ``1 × T × d``, class tokens) are added, not multiplied."""
    if isinstance(module, (FeedbackLayer, FeedbackMultiheadAttention, *NO_MATRIX_PRODUCT)):
        return False
    return any(p.dim() >= 2 and p.shape[0] > 1 and p.requires_grad
               for p in module.parameters(recurse=False))


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def _place_taps(root, engine, conversion, taps) -> None:
    for name, module in root.named_modules():
        if isinstance(module, Tap) and module.enabled:
            module.engine = engine
            conversion.taps.append(name)
    last = root[-1] if isinstance(root, nn.Sequential) and len(root) else None
    if taps is None and not conversion.taps and last is not None:
        taps = list(ACTIVATIONS)               # not after the output itself
    for name, module in root.named_modules():
        if not taps or isinstance(module, Tap):
            continue
        named = any(isinstance(t, str) and fnmatch.fnmatchcase(name, t) for t in taps)
        if named or any(isinstance(t, type) and isinstance(module, t) for t in taps):
            if module is last:
                if not named:
                    continue                   # a type of the hidden layers' activations
                raise ValueError(
                    f"taps: {name!r} is the last module of this nn.Sequential, its output: "
                    f"a tap there would give the output layer a random projection of the "
                    f"error instead of the error ({engine.rule.name} sends the error to "
                    "taps after hidden layers); tap the hidden layers only")
            tap = Tap()
            tap.engine = engine
            module.register_forward_hook(_TapAfter(tap))
            conversion.taps.append(f"after {name}")
    for t in taps or ():
        if isinstance(t, str):
            _check_patterns(root, [t], "taps")
    if not conversion.taps:
        raise ValueError(no_taps(engine.rule.name, f"this {type(root).__name__} has no taps"))
    for module in root.modules():      # (before engine.end: the root's own count first)
        if not isinstance(module, Tap) and any(True for _ in module.parameters(recurse=False)):
            module.register_forward_hook(engine.parameterised_output, prepend=True)
    root.register_forward_pre_hook(engine.begin)
    root.register_forward_hook(engine.end)
    if engine.rule.needs_preactivation:
        for module in root.modules():
            if feedback_version(module) is not None:
                module.register_forward_hook(engine.weight_output)
            elif isinstance(module, ACTIVATIONS):
                module.register_forward_hook(engine.activation_output, prepend=True)


class _TapAfter:
    """Forward hook passing a module's output through ``tap`` (an object, not a closure, so
    a deep copy of the model gets its own tap)."""

    def __init__(self, tap: Tap):
        self.tap = tap

    def __call__(self, module, args, output):
        return self.tap(output)


def _keep_feedback_on_load(module: nn.Module, incompatible) -> None:
    """A plain model's ``state_dict`` loads into the converted one: the feedback state it
    lacks stays as it is (not a missing key); rules refresh what depends on the weights."""
    conversion = module.biocredit_conversion
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys
                                    if k in conversion.plain_keys]
    conversion.rule.after_load(module)


@contextlib.contextmanager
def exact_gradients(model: nn.Module) -> Iterator[None]:
    """Within the block every feedback layer of ``model`` back-propagates through its
    forward weight and every tap passes the error through, so a plain ``loss.backward()``
    gives the true BP gradient."""
    layers = [m for m in model.modules() if isinstance(m, FeedbackLayer)]
    previous = [m.exact for m in layers]
    engine = engine_of(model)
    for m in layers:
        m.exact = True
    if engine is not None:
        engine.exact = True
    try:
        yield
    finally:
        for m, p in zip(layers, previous):
            m.exact = p
        if engine is not None:
            engine.exact = False


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The converted model's ``state_dict`` without its feedback state: loads into the plain
    model it was converted from (``strict=True``)."""
    keys = conversion_of(model).plain_keys
    return {k: v for k, v in model.state_dict().items() if k in keys}


def after_step(model: nn.Module) -> None:
    """The model's rule updates its learned feedback (KP, URFB, DKP, sign symmetry) after an
    optimizer step; a no-op for fixed feedback. Call it after ``optimizer.step()``, or let
    :func:`hook_optimizer` call it. ``model`` may be wrapped in ``DistributedDataParallel``."""
    model = unwrap(model)
    conversion_of(model).rule.after_step(model)


def after_epoch(model: nn.Module) -> None:
    """The model's rule advances its per-epoch schedules (DKP's feedback learning rate)."""
    model = unwrap(model)
    conversion_of(model).rule.after_epoch(model)


def hook_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer):
    """Make every ``optimizer.step()`` also run :func:`after_step` for ``model``, so a
    training loop needs no extra call. Returns the hook's handle (``.remove()`` undoes it)."""
    model = unwrap(model)
    conversion_of(model)
    return optimizer.register_step_post_hook(lambda opt, args, kwargs: after_step(model))
