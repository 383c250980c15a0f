"""All per-layer diagnostics of one probe batch, from one rule pass and one BP pass."""

from __future__ import annotations

import contextlib
import math

import torch

from .alignment import angle_deg, rule_and_bp_gradients, weight_layers
from .gradients import gradient_norms
from .saturation import block_activation, is_bounded, saturated_fraction


def probe_metrics(net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor,
                  loss_fn) -> dict[str, list]:
    """The diagnostics of the converted model ``net`` logged every epoch, on the batch
    ``(x, target)``:

    * ``angle_deg``: per hidden layer, the angle between the rule's weight gradient and BP's
      (the same numbers as :func:`~biocredit.metrics.update_alignment`);
    * ``grad_norm``: per weight layer (hidden layers, then the output layer), the Frobenius
      norm of the rule's weight gradient (NaN where it gives none);
    * ``saturation``: per hidden layer, the fraction of units whose bounded activation is
      saturated (see :mod:`~biocredit.metrics.saturation`), ``None`` for unbounded ones.

    Costs one rule backward and one BP backward (the pre-activations for the saturation are
    read by forward hooks on the activations during the BP pass); the net's mode and
    ``.grad`` values are restored.
    """
    layers = weight_layers(net)
    weights = [layer.weight for layer in layers]
    blocks = getattr(net, "blocks", None)
    activations = [block_activation(block) for block in blocks] if blocks is not None else []
    saturation: list[float | None] = [None] * len(activations)

    @contextlib.contextmanager
    def watch_activations():
        def hook_for(i):
            def hook(module, inputs, output):
                saturation[i] = saturated_fraction(inputs[0], module)
            return hook
        handles = [a.register_forward_hook(hook_for(i))
                   for i, a in enumerate(activations) if is_bounded(a)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    rule_grads, bp_grads = rule_and_bp_gradients(net, x, target, loss_fn, weights,
                                                 during_bp=watch_activations)
    hidden = len(layers) - 1
    return {
        "angle_deg": [angle_deg(r, b) if r is not None else math.nan
                      for r, b in zip(rule_grads[:hidden], bp_grads[:hidden])],
        "grad_norm": gradient_norms(rule_grads),
        "saturation": saturation,
    }

