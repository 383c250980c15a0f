"""The optimizers the command line offers."""

from __future__ import annotations

import logging
import types

import torch


def make_optimizer(name: str, params, lr: float, momentum: float = 0.0,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``sgd`` (with optional momentum), ``rmsprop`` or ``adam`` over ``params``."""
    params = list(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


OPTIMIZERS = ("adam", "rmsprop", "sgd")


def compile_step(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """``optimizer`` with its ``step`` ``torch.compile``'d: the update of every parameter as
    generated loops instead of a chain of ``_foreach_`` passes (``--compile``'s optimizer
    half: with Adam, a BP step of mlp:4x800:tanh at batch 128 fell from 40.9 to 34.1 ms on a
    2-core AMD EPYC shared with a background job, the model compiled in both)."""
    logging.getLogger(_DYNAMO_CONTEXTS).addFilter(_without_profiler_note)
    # bound as a method again, so a learning-rate scheduler can wrap it (`step.__func__`)
    optimizer.step = types.MethodType(torch.compile(optimizer.step.__func__), optimizer)
    return optimizer


_DYNAMO_CONTEXTS = "torch._dynamo.variables.ctx_manager"


def _without_profiler_note(record: logging.LogRecord) -> bool:
    """Drops Dynamo's one warning that it skips the profiler's ``record_function`` inside
    ``Optimizer.step`` (expected there, and no use to the user); keeps every other record."""
    return not record.getMessage().startswith("Profiler record function")


def trainable(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters of ``module`` that the training optimizer steps."""
    return [p for p in module.parameters() if p.requires_grad]
