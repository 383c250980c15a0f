"""Callbacks for other libraries' trainers, made on first use (biocredit does not import
transformers or Lightning until asked):

- :func:`hf_callback`: a ``transformers.TrainerCallback`` for the Hugging Face ``Trainer``;
- :func:`lightning_callback`: a ``lightning.pytorch.Callback`` for Lightning's ``Trainer``.

Each calls :func:`~biocredit.after_step` after every optimizer step and
:func:`~biocredit.after_epoch` after every epoch on the converted model. Use one of them or
:func:`~biocredit.hook_optimizer`, not both (learned feedback would update twice a step).
"""

from __future__ import annotations

import functools

from torch import nn

from .conversion import after_epoch, after_step
from .distributed import unwrap


def converted_in(module: nn.Module) -> list[nn.Module]:
    """The converted models in ``module``: itself, or its outermost converted submodules
    (a ``LightningModule`` holding a converted net)."""
    module = unwrap(module)
    if getattr(module, "biocredit_conversion", None) is not None:
        return [module]
    found: list[nn.Module] = []
    for name, child in module.named_modules():
        inside = any(name.startswith(f"{prefix}.") for prefix, _ in found)
        if not inside and getattr(child, "biocredit_conversion", None) is not None:
            found.append((name, child))
    if not found:
        raise ValueError(f"this {type(module).__name__} holds no model converted by "
                         "biocredit: convert it with biocredit.convert(model, rule) first")
    return [child for _, child in found]


def hf_callback(model: nn.Module | None = None):
    """A ``TrainerCallback`` running the rule's hooks on ``model`` (default: the model the
    ``Trainer`` trains): ``Trainer(..., callbacks=[biocredit.integrations.hf_callback()])``."""
    return _hf_class()(model)


def lightning_callback(model: nn.Module | None = None):
    """A Lightning ``Callback`` running the rule's hooks on ``model`` (default: the
    converted models inside the ``LightningModule``):
    ``Trainer(..., callbacks=[biocredit.integrations.lightning_callback()])``."""
    return _lightning_class()(model)


@functools.cache
def _hf_class():
    from transformers import TrainerCallback

    class BiocreditCallback(TrainerCallback):
        """Runs ``after_step`` after each optimizer step, ``after_epoch`` after each epoch."""

        def __init__(self, model=None):
            self.model = model

        def _models(self, kwargs):
            return converted_in(self.model if self.model is not None else kwargs["model"])

        def on_step_end(self, args, state, control, **kwargs):
            for net in self._models(kwargs):
                after_step(net)

        def on_epoch_end(self, args, state, control, **kwargs):
            for net in self._models(kwargs):
                after_epoch(net)

    return BiocreditCallback


@functools.cache
def _lightning_class():
    try:
        from lightning.pytorch import Callback
    except ImportError:
        from pytorch_lightning import Callback

    class BiocreditLightningCallback(Callback):
        """Runs ``after_step`` after each optimizer step, ``after_epoch`` after each epoch."""

        def __init__(self, model=None):
            self.model = model

        def _models(self, pl_module):
            return converted_in(self.model if self.model is not None else pl_module)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            # with accumulate_grad_batches=k the optimizer steps every k-th batch
            if (batch_idx + 1) % trainer.accumulate_grad_batches == 0:
                for net in self._models(pl_module):
                    after_step(net)

        def on_train_epoch_end(self, trainer, pl_module):
            for net in self._models(pl_module):
                after_epoch(net)

    return BiocreditLightningCallback
