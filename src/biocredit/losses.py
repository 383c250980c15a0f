"""Output losses. Each maps logits ``a_L`` and class targets to a scalar averaged over the
batch, so the output error ``e = ∂loss/∂a_L`` is the per-example error divided by ``N``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Loss:
    """A classification loss: ``loss(logits, target)`` and ``predict(logits)``."""

    name = ""
    description = ""

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1)


class CrossEntropy(Loss):
    """Softmax cross-entropy: ``e = (softmax(a_L) − y) / N``."""

    name = "ce"
    description = "softmax cross-entropy"

    def __call__(self, logits, target):
        return F.cross_entropy(logits, target)


class BinaryCrossEntropy(Loss):
    """Logistic outputs with binary cross-entropy summed over classes (Nøkland):
    ``e = (sigmoid(a_L) − y) / N``."""

    name = "bce"
    description = "logistic binary cross-entropy"

    def __call__(self, logits, target):
        onehot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, onehot, reduction="sum") / len(logits)


_LOSSES = {cls.name: cls for cls in (CrossEntropy, BinaryCrossEntropy)}


def available() -> list[str]:
    return sorted(_LOSSES)


def create(name: str) -> Loss:
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; available losses: "
                         + ", ".join(f"{n} ({c.description})" for n, c in sorted(_LOSSES.items())))
    return _LOSSES[name]()
