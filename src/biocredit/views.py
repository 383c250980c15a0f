"""Read a network's layers: forward weight, feedback weight and gradient, side by side."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import FeedbackLayer, block_matrices, engine_of
from .models.network import Network


@dataclass
class LayerView:
    """One weight layer of a network.

    ``feedback`` is what the rule uses in place of the forward weight: for layer feedback
    (FA, ...) the matrix in ``weight``'s layout that sends this layer's error downstream; for
    direct feedback (DFA, IFA) the ``C × n_l`` matrix ``B_lᵀ`` that brings the output error to
    this layer's units; ``None`` when the layer back-propagates through its weight or gets no
    feedback. The tensors are the live ones, not copies.
    """

    name: str
    weight: torch.Tensor | None
    feedback: torch.Tensor | None
    grad: torch.Tensor | None


def layer_views(net: nn.Module) -> list[LayerView]:
    """A :class:`LayerView` per weight layer, hidden layers first, the output layer last.
    For a model other than biocredit's :class:`Network`: every module with a weight matrix
    in module order, then, for a direct rule, one view per tap (``weight`` ``None``,
    ``feedback`` its ``B_lᵀ``)."""
    engine = engine_of(net)
    direct = []
    if engine is not None and engine.shapes is not None:
        shapes = engine.rule.direct_shapes(engine.shapes)   # none: shallow, node perturbation
        direct = block_matrices(net.direct_feedback, shapes) if shapes else []
    if not isinstance(net, Network):
        return _any_model_views(net, direct, engine)
    names = [f"blocks.{i}.layer" for i in range(len(net.blocks))] + ["head.layer"]
    views = []
    for i, (name, layer) in enumerate(zip(names, net.weight_layers())):
        feedback = layer.feedback if isinstance(layer, FeedbackLayer) else None
        if i < len(direct):
            feedback = direct[i]
        views.append(LayerView(name, layer.weight, feedback, layer.weight.grad))
    return views


def _any_model_views(net: nn.Module, direct: list[torch.Tensor], engine) -> list[LayerView]:
    """Views of any model's weight layers, then of its direct rule's taps."""
    views = []
    for name, module in net.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter) and weight.dim() >= 2:
            feedback = module.feedback if isinstance(module, FeedbackLayer) else None
            views.append(LayerView(name, weight, feedback, weight.grad))
    taps = engine.root.biocredit_conversion.taps if engine is not None else []
    views += [LayerView(tap, None, b, None) for tap, b in zip(taps, direct)]
    return views
