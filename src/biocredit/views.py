"""Read a network's layers: forward weight, feedback weight and gradient, side by side."""

from __future__ import annotations

from dataclasses import dataclass

import torch

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
    weight: torch.Tensor
    feedback: torch.Tensor | None
    grad: torch.Tensor | None


def layer_views(net: Network) -> list[LayerView]:
    """A :class:`LayerView` per weight layer, hidden layers first, the output layer last."""
    engine = engine_of(net)
    direct = []
    if engine is not None and engine.shapes is not None:
        shapes = engine.rule.direct_shapes(engine.shapes)   # none: shallow, node perturbation
        direct = block_matrices(net.direct_feedback, shapes) if shapes else []
    names = [f"blocks.{i}.layer" for i in range(len(net.blocks))] + ["head.layer"]
    views = []
    for i, (name, layer) in enumerate(zip(names, net.weight_layers())):
        feedback = layer.feedback if isinstance(layer, FeedbackLayer) else None
        if i < len(direct):
            feedback = direct[i]
        views.append(LayerView(name, layer.weight, feedback, layer.weight.grad))
    return views
