"""The layer-feedback mechanism (FA and its relatives, BP through feedback): every weight
layer that sends an error downstream multiplies it by its own feedback matrix."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from ..layers import LocallyConnected2d, feedback_layers
from ..layers.swap import (attention_with_feedback, computed_weight, feedback_version,
                           holds_weight_matrix, matches, output_dim, swap, unconvertible)
from .base import FEEDBACK_OPTIONS, FEEDBACK_RANGES, FeedbackRule
from .registry import available

# the layer-feedback rules' options: the direct ones' and ``feedback_like_weight``
LAYER_FEEDBACK_OPTIONS = {**FEEDBACK_OPTIONS, "feedback_like_weight": False}
LAYER_FEEDBACK_RANGES = {**FEEDBACK_RANGES, "feedback_like_weight": (
    lambda v: isinstance(v, bool), "true or false (draw B at the std of each layer's W)")}


def fan_out(layer: nn.Module) -> int:
    """How many errors each input unit of ``layer`` sums in the backward pass: the fan-in
    of its feedback (linear: ``out``; convolution: ``C_out/groups·k²``, so ``k²`` for a
    depthwise one; untied: ``C_out·k²``, as the convolution it unties: every input unit
    sits in the patches of about ``k²`` locations, each with ``C_out`` outputs)."""
    if isinstance(layer, LocallyConnected2d):
        return layer.weight.shape[1] * math.prod(layer.kernel_size)
    w = layer.weight
    if output_dim(layer) == 1:            # stored in × out (transformers' Conv1D)
        return w.shape[1]
    return w.shape[0] // getattr(layer, "groups", 1) * math.prod(w.shape[2:])


def spread_like_weight(layer: nn.Module, kind: str) -> float:
    """The spread ``s`` that gives random feedback of ``kind`` the standard deviation ``σ`` of
    ``layer``'s weight: ``√3 σ`` for ``U(−s, s)``, ``σ`` for ``N(0, s²)``."""
    sigma = layer.weight.detach().float().std().item()
    if kind == "uniform":
        return math.sqrt(3.0) * sigma
    if kind == "gaussian":
        return sigma
    raise ValueError(f"feedback_like_weight draws uniform or gaussian feedback at each layer's "
                     f"weight std; feedback_init={kind!r} has a spread of its own")


def learned_layers(net: nn.Module):
    """The feedback layers of ``net`` that hold a feedback matrix of their own."""
    return feedback_layers(net)


class LayerFeedbackRule(FeedbackRule):
    """Every weight layer that sends an error downstream multiplies it by its own feedback
    matrix: ``δh_l = B_{l+1} δa_{l+1}`` (FA and its relatives). The backward is autograd.
    The feedback has the weight's layout (``out × in``, or the kernel's shape) and is drawn
    with ``fan_in`` = :func:`fan_out` of the layer.

    :meth:`install` replaces every ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` (or subclass
    computing the same), transformers' ``Conv1D`` (feedback ``in × out`` like its weight),
    ``LocallyConnected2d`` and (for rules with fixed feedback) ``nn.MultiheadAttention`` by
    its feedback version (same name, hyper-parameters and hooks, and the very same
    ``nn.Parameter`` objects, so tied weights stay tied, each use with its own feedback)
    holding the feedback of :meth:`layer_feedback` and the state of :meth:`layer_state`.
    Embeddings stay as they are (the error stops there) and are reported.
    """

    defaults = LAYER_FEEDBACK_OPTIONS
    option_ranges = LAYER_FEEDBACK_RANGES
    converts_layers: ClassVar[bool] = True    # gives weight layers feedback of their own
    # names in layer_state that are working copies (derived from the weights and rebuilt
    # after a load), kept out of state_dict
    scratch: ClassVar[frozenset[str]] = frozenset()

    def layer_feedback(self, layer: nn.Module, generator: torch.Generator | None):
        """The feedback ``layer`` gets (``None`` ties it to the weight) and its mask."""
        raise NotImplementedError

    def layer_state(self, layer: nn.Module) -> dict[str, torch.Tensor]:
        """The tensors the rule keeps on each feedback ``layer`` besides ``feedback`` and
        ``feedback_mask`` (registered as its buffers; those named in ``scratch`` left out of
        ``state_dict``). Default: none."""
        return {}

    @classmethod
    def floor_macs(cls, macs, tap_widths, outputs):
        """``ΣF`` forward, ``ΣF`` weight gradients, ``Σ_{l≥2} F_l`` input gradients (the
        feedback products; learned feedback's update is element-wise, not counted)."""
        return 2 * sum(macs) + sum(macs[1:])

    def install(self, root, conversion, *, taps=None, exclude=(), skip=(),
                unsupported="error", generator=None, example_input=None):
        """Replace every supported weight layer by its feedback version and list the layers
        that keep back-propagating through their weights (``exclude``, ``skip``, and with
        ``unsupported="bp"`` the ones it cannot convert)."""
        if taps:
            raise ValueError(f"taps are for direct rules ({', '.join(available(direct=True))}); "
                             f"{self.name} sends errors through every layer")
        found = _Found(conversion, unsupported)
        for name, module in list(root.named_modules()):
            if any(name.startswith(h + ".") for h in found.handled):
                continue                      # inside a module already handled
            if isinstance(module, nn.MultiheadAttention) and self.converts_layers \
                    and not matches(name, (*exclude, *skip)):
                self._swap_attention(root, name, module, generator, found)
            elif feedback_version(module) is not None:
                if matches(name, skip):
                    conversion.skipped.append(name)
                elif not self.converts_layers or matches(name, exclude):
                    conversion.tied.append(name)
                else:
                    self._swap_layer(root, name, module, generator, found)
                found.handled.append(name)
            elif isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
                conversion.embeddings.append(name)
            elif holds_weight_matrix(module):
                refuse = self.converts_layers and unsupported == "error" \
                    and not matches(name, exclude)
                label = f"{name or '(the model itself)'} ({unconvertible(module)})"
                (found.refused if refuse else conversion.tied).append(label)
        found.raise_refused(self.name)

    def _swap_layer(self, root, name, module, generator, found) -> None:
        """``module`` replaced by its feedback version holding the rule's feedback and
        :meth:`layer_state`."""
        if found.computed_weight(name, module):
            return
        feedback, mask = self.layer_feedback(module, generator)
        new = feedback_version(module).from_layer(module, feedback)
        new.feedback_mask = mask
        if new.feedback is not None:
            for key, tensor in self.layer_state(new).items():
                new.register_buffer(key, tensor, persistent=key not in self.scratch)
        swap(root, name, module, new)
        (found.conversion.feedback if feedback is not None else found.conversion.tied
         ).append(name)

    def _swap_attention(self, root, name, module, generator, found) -> None:
        """``module`` (an ``nn.MultiheadAttention``) replaced by its feedback version, or
        refused (left on BP with ``unsupported="bp"``) by rules that learn their feedback."""
        if self.learns_feedback:
            label = (f"{name} (nn.MultiheadAttention: {self.name} learns its feedback, which "
                     "attention's packed projections do not support yet)")
            (found.refused if found.unsupported == "error" else found.conversion.tied
             ).append(label)
        elif not found.computed_weight(name, module):
            new = attention_with_feedback(module,
                                          lambda m: self.layer_feedback(m, generator)[0])
            swap(root, name, module, new)
            found.handled.append(name)
            found.conversion.feedback.append(name)


class _Found:
    """What :meth:`LayerFeedbackRule.install` found on its way through the model."""

    def __init__(self, conversion, unsupported: str):
        self.conversion, self.unsupported = conversion, unsupported
        self.handled: list[str] = []    # replaced, or left as they are with what is inside
        self.refused: list[str] = []    # weight layers it cannot give feedback to
        self.computed: list[str] = []   # weights computed by a parametrization or a hook

    def computed_weight(self, name: str, module: nn.Module) -> bool:
        """Whether ``module``'s weights are computed (see
        :func:`~biocredit.layers.swap.computed_weight`): then it stays as it is, on BP with
        ``unsupported="bp"``, else refused."""
        why = computed_weight(module)
        if why is None:
            return False
        label = f"{name or '(the model itself)'} ({why})"
        (self.computed if self.unsupported == "error" else self.conversion.tied).append(label)
        self.handled.append(name)
        return True

    def raise_refused(self, rule: str) -> None:
        """Refuse the layers found unconvertible, naming them and the fixes."""
        if self.computed:
            raise ValueError(
                f"{rule} cannot keep the computed weights of {', '.join(self.computed)}: "
                "their feedback layers would hold the computed values as plain weights. "
                "Remove the parametrization first (torch.nn.utils.parametrize."
                "remove_parametrizations(layer, 'weight'), or torch.nn.utils."
                "remove_weight_norm(layer)), or pass unsupported='bp' or exclude=[...] to "
                "leave these layers on BP")
        if self.refused:
            raise ValueError(f"{rule} cannot give feedback to {', '.join(self.refused)}: the "
                             "error would cross their weights (weight transport). Pass "
                             "unsupported='bp' to leave them on BP, or exclude=[...] them")
