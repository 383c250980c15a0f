"""How close a rule's update is to back-propagation's."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence

import torch

from ..conversion import exact_gradients
from ..rules import set_targets


def angle_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angle in degrees between ``a`` and ``b`` seen as flat vectors:
    ``arccos(⟨a, b⟩ / (‖a‖ ‖b‖))``; NaN when either is zero (no direction), infinity when
    either is not finite (a diverged run)."""
    a, b = a.detach().flatten().double(), b.detach().flatten().double()
    denom = a.norm() * b.norm()
    if not torch.isfinite(denom):
        return math.inf
    if denom == 0:
        return math.nan
    cos = (a @ b / denom).clamp(-1.0, 1.0)
    return math.degrees(math.acos(cos.item()))


def rule_and_bp_gradients(net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, loss_fn,
                          weights: Sequence[torch.Tensor],
                          during_bp: Callable[[], contextlib.AbstractContextManager]
                          = contextlib.nullcontext):
    """The gradient of the rule ``net`` was converted for, and BP's, for each of ``weights``
    on the batch ``(x, target)``.

    The net is put in eval mode (no dropout) for both passes; BP's gradient is one extra
    backward through the same net with every feedback tied to its forward weight and no cut
    (a plain ``net(x)``, run inside ``during_bp()``, e.g. to watch it with forward hooks).
    Existing ``.grad`` values (of parameters and buffers) are restored afterwards, so a probe
    changes nothing of the training. Returns two lists (the rule's entries
    are ``None`` where it gave a weight no gradient; both are ``None`` for a frozen weight).
    """
    # learned feedback (DKP's) keeps its gradient in a buffer's .grad: a probe must not add to it
    params = [p for p in net.parameters() if p.requires_grad] + \
        [b for b in net.buffers() if b.grad is not None or b.dtype.is_floating_point]
    saved = [p.grad for p in params]
    was_training = net.training
    net.eval()
    try:
        for p in params:
            p.grad = None
        set_targets(net, target)
        loss_fn(net(x), target).backward()
        rule_grads = [w.grad for w in weights]
        live = [w for w in weights if w.requires_grad]       # frozen weights learn nothing
        with torch.enable_grad(), exact_gradients(net), during_bp():
            found = iter(torch.autograd.grad(loss_fn(net(x), target), live))
        bp_grads = [next(found) if w.requires_grad else None for w in weights]
    finally:
        for p, g in zip(params, saved):
            p.grad = g
        net.train(was_training)
    return rule_grads, bp_grads


def update_alignment(net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor,
                     loss_fn) -> list[float]:
    """Per hidden layer, the angle between the rule's weight gradient and BP's on the batch
    ``(x, target)`` with the current weights (Lillicrap's Fig. 2b).

    The net is put in eval mode (no dropout) for both passes; BP's gradient is one extra
    backward through the same net with every feedback tied to its forward weight and no cut.
    Existing ``.grad`` values are restored afterwards.
    """
    weights = [layer.weight for layer in weight_layers(net)[:-1]]
    rule_grads, bp_grads = rule_and_bp_gradients(net, x, target, loss_fn, weights)
    return [angle_deg(r, b) if r is not None else math.nan
            for r, b in zip(rule_grads, bp_grads)]


def weight_layers(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The weight layers of ``net`` in order, the output layer last: the built-in models say
    which they are; in any other model, every module with a weight of two or more dimensions
    (the last one taken as the output layer)."""
    if hasattr(net, "weight_layers"):
        return net.weight_layers()
    return [m for m in net.modules()
            if isinstance(getattr(m, "weight", None), torch.nn.Parameter) and m.weight.dim() >= 2
            and not isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag))]
