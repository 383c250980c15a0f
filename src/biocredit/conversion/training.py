"""What a training loop calls on a converted model: the rule's hooks after a step and an
epoch, BP's gradient for comparison, and the plain model's weights."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..distributed import unwrap
from ..layers import FeedbackLayer, engine_of
from .record import conversion_of


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
    training loop needs no extra call. ``optimizer`` may be a trainer's wrapper around a
    torch optimizer (Accelerate's ``AcceleratedOptimizer``, as the HF ``Trainer`` uses, or
    Lightning's ``LightningOptimizer``): the torch optimizer inside is hooked, so only
    steps that really update the weights count. Returns the hook's handle (``.remove()``
    undoes it)."""
    model = unwrap(model)
    conversion_of(model)
    optimizer = torch_optimizer(optimizer)
    return optimizer.register_step_post_hook(lambda opt, args, kwargs: after_step(model))


def torch_optimizer(optimizer):
    """The torch optimizer inside trainers' wrappers (``.optimizer``: Accelerate;
    ``._optimizer``: Lightning), unwrapped as deep as they go."""
    for _ in range(8):
        inner = getattr(optimizer, "_optimizer", None)
        if not isinstance(inner, torch.optim.Optimizer):
            inner = getattr(optimizer, "optimizer", None)
        if not isinstance(inner, torch.optim.Optimizer) or inner is optimizer:
            break
        optimizer = inner
    if not isinstance(optimizer, torch.optim.Optimizer) or \
            not hasattr(optimizer, "_optimizer_step_post_hooks"):
        raise TypeError(f"hook_optimizer takes a torch.optim.Optimizer (or a trainer's wrapper "
                        f"around one); got {type(optimizer).__name__}: call "
                        "biocredit.after_step(model) after each optimizer step instead")
    return optimizer
