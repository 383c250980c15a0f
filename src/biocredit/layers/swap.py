"""Swapping a plain layer for its feedback version inside a module tree, faithfully.

The new layer keeps the old one's name, values, trainability, dtype, device, train/eval mode
and every hook a user registered on it (forward and backward, state-dict and load hooks,
with their ``with_kwargs`` and ``always_call`` flags). A layer whose weight is computed (a
``torch.nn.utils.parametrize`` parametrization such as ``weight_norm``, or a forward pre-hook
such as the old ``torch.nn.utils.weight_norm``) is not swapped: the feedback layer would hold
the computed value as a plain weight and the parametrization would be gone; see
:func:`computed_weight`.
"""

from __future__ import annotations

import fnmatch
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from .feedback_attention import FeedbackMultiheadAttention
from .feedback_conv import FeedbackConv1d, FeedbackConv2d
from .feedback_layer import FeedbackLayer
from .feedback_linear import FeedbackLinear, FeedbackTransposedLinear

# Plain layer type -> its feedback version (``from_layer(layer, feedback)``); feedback
# layers (LocallyConnected2d among them) are their own, see feedback_version.
FEEDBACK_VERSIONS: dict[type, type] = {
    nn.Linear: FeedbackLinear,
    nn.Conv1d: FeedbackConv1d,
    nn.Conv2d: FeedbackConv2d,
}

# Modules whose weights the error never crosses on its way down (a lookup table's error stops
# there) or that hold only per-unit scales: no matrix product to give feedback to.
NO_MATRIX_PRODUCT = (nn.Embedding, nn.EmbeddingBag, nn.modules.batchnorm._NormBase,
                     nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.PReLU)

# What a swap carries from the old module to the new one.
HOOKS = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
         "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_backward_pre_hooks",
         "_backward_hooks", "_state_dict_pre_hooks", "_state_dict_hooks",
         "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")

# A draw of feedback for a layer (or for a stand-in holding only ``weight``).
Draw = Callable[[nn.Module], torch.Tensor | None]


def feedback_version(module: nn.Module) -> type | None:
    """The feedback class for ``module`` if it is a supported layer: an ``nn.Linear``,
    ``nn.Conv1d`` or ``nn.Conv2d`` (or a subclass whose forward computes what the parent's
    does, checked on a small random input), a linear layer stored ``in × out`` like
    transformers' ``Conv1D`` (see :func:`is_transposed_linear`), or a feedback layer already
    (e.g. tied, with a sparse connectivity mask)."""
    if isinstance(module, FeedbackLayer):
        return type(module)
    for plain, version in FEEDBACK_VERSIONS.items():
        if isinstance(module, plain) and (type(module).forward is plain.forward
                                          or _computes(module, plain.forward)):
            return version
    if is_transposed_linear(module):
        return FeedbackTransposedLinear
    return None


def is_transposed_linear(module: nn.Module) -> bool:
    """Whether ``module`` is a linear layer whose weight is stored ``in × out`` (``nx × nf``):
    transformers' ``Conv1D`` or a copy of it, recognised by its ``nf`` and its parameters
    (``weight``, ``bias`` or none) and checked to compute ``x @ weight + bias``."""
    return _looks_transposed(module) and _computes(module, _transposed_linear)


def _looks_transposed(module: nn.Module) -> bool:
    """``module`` holds a weight ``nx × nf`` (with ``nf`` its attribute) and at most a bias."""
    if not isinstance(module, nn.Module):
        return False
    w = module._parameters.get("weight")
    return (isinstance(w, nn.Parameter) and w.dim() == 2
            and getattr(module, "nf", None) == w.shape[1]
            and set(module._parameters) <= {"weight", "bias"}
            and not any(True for _ in module.children()))


def _transposed_linear(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = x @ module.weight
    return out if module.bias is None else out + module.bias


def unconvertible(module: nn.Module) -> str:
    """Why a weight layer that looks like a supported one is not converted (its class and
    what its forward fails to compute), or just its class name."""
    cls = type(module)
    where = f"{cls.__module__}.{cls.__qualname__}"
    for plain in FEEDBACK_VERSIONS:
        if isinstance(module, plain):
            return (f"{where}: a subclass of nn.{plain.__name__} whose forward is not "
                    f"nn.{plain.__name__}'s computation")
    if _looks_transposed(module):
        return f"{where}: weight nx × nf, but its forward is not x @ weight + bias"
    return cls.__name__


def _computes(module: nn.Module, reference: Callable) -> bool:
    """Whether ``module``'s own forward gives ``reference(module, x)`` on a small random
    input (drawn from a generator of its own: torch's global one is untouched)."""
    w = module.weight
    if isinstance(module, nn.Linear):
        shape = (2, module.in_features)
    elif isinstance(module, nn.modules.conv._ConvNd):
        size = [d * (k - 1) + 3 for k, d in zip(module.kernel_size, module.dilation)]
        shape = (1, module.in_channels, *size)
    else:
        shape = (2, w.shape[0])
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(w)
    try:
        with torch.no_grad():
            out, expected = type(module).forward(module, x), reference(module, x)
            return torch.allclose(out.float(), expected.float(), rtol=1e-3, atol=1e-5)
    except Exception:     # any failure (another signature, a tuple out): not the same
        return False


def output_dim(layer: nn.Module) -> int:
    """The weight's dimension that indexes the layer's outputs: 1 for a weight stored
    ``in × out`` (``Conv1D``, :class:`FeedbackTransposedLinear`), else 0."""
    return 1 if getattr(layer, "transposed", False) or _looks_transposed(layer) else 0


def computed_weight(module: nn.Module) -> str | None:
    """Why ``module``'s weights are not its own parameters, or ``None`` when they are: a
    parametrization (``torch.nn.utils.parametrize``, e.g. ``parametrizations.weight_norm``)
    or a weight set by a hook (the old ``torch.nn.utils.weight_norm``/``spectral_norm``)."""
    layers = [module, module.out_proj] if isinstance(module, nn.MultiheadAttention) else [module]
    for layer in layers:
        if parametrize.is_parametrized(layer):
            names = ", ".join(layer.parametrizations.keys())
            return f"a parametrization of {names} (torch.nn.utils.parametrize)"
        if hasattr(layer, "weight") and "weight" not in layer._parameters:
            return "a weight computed by a hook (torch.nn.utils.weight_norm or spectral_norm)"
    return None


def swap(root: nn.Module, name: str, old: nn.Module, new: nn.Module) -> None:
    """Put ``new`` in ``old``'s place (``name`` in ``root``), with ``old``'s train/eval mode
    and hooks."""
    for hooks in HOOKS:
        setattr(new, hooks, OrderedDict(getattr(old, hooks)))
    new._is_full_backward_hook = old._is_full_backward_hook
    new.train(old.training)
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def attention_with_feedback(mha: nn.MultiheadAttention, draw: Draw):
    """``mha`` whose input and output projections send the error through feedback from
    ``draw`` (in-projection first, then ``out_proj``, each drawn like a linear layer's)."""
    if mha._qkv_same_embed_dim:
        weights = [mha.in_proj_weight]
    else:
        weights = [mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight]
    in_feedback = [draw(_WeightOnly(w)) for w in weights]
    out_feedback = draw(mha.out_proj)
    return FeedbackMultiheadAttention.from_module(
        mha, in_feedback[0] if len(in_feedback) == 1 else in_feedback, out_feedback)


class _WeightOnly:
    """A stand-in for a linear layer holding ``weight`` (to draw its feedback)."""

    def __init__(self, weight: torch.Tensor):
        self.weight = weight


def holds_weight_matrix(module: nn.Module) -> bool:
    """Whether ``module`` itself owns a trainable parameter shaped like a weight matrix or
    kernel (two or more dimensions, the first larger than one) of a type the converter does
    not know, and so would be left on BP. Parameters with a leading dimension of one
    (positional embeddings ``1 × T × d``, class tokens) are added, not multiplied."""
    if isinstance(module, (FeedbackLayer, FeedbackMultiheadAttention, *NO_MATRIX_PRODUCT)):
        return False
    return any(p.dim() >= 2 and p.shape[0] > 1 and p.requires_grad
               for p in module.parameters(recurse=False))


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether module ``name`` matches one of the glob ``patterns``."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def check_patterns(model: nn.Module, patterns: Sequence[str], option: str) -> None:
    """Refuse a pattern of ``option`` that names no module of ``model``, listing them."""
    names = [n for n, _ in model.named_modules()]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise ValueError(f"{option}={pattern!r} matches no module of this model; its "
                             f"modules: {', '.join(n for n in names if n) or 'none'}")
