"""Output losses. Each maps logits ``a_L`` and class targets to a scalar averaged over the
batch, so the output error ``e = ∂loss/∂a_L`` is the per-example error divided by ``N``."""

from __future__ import annotations

import math

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

    def errors(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Summed over the batch: misclassified examples (the error rate's numerator)."""
        return (self.predict(logits) != target).sum()


class CrossEntropy(Loss):
    """Softmax cross-entropy: ``e = (softmax(a_L) − y) / N``. A sequence's logits
    ``(N, T, V)`` with targets ``(N, T)`` (a language model): the mean over the batch and
    the positions (nats per token), ``e_t = (softmax(a_t) − y_t) / (N·T)``; its error is
    the fraction of positions whose next token is mispredicted."""

    name = "ce"
    description = "softmax cross-entropy"

    def __call__(self, logits, target):
        if logits.dim() > 2 and target.dim() == logits.dim() - 1:       # (N, T, V), (N, T)
            return F.cross_entropy(logits.flatten(0, -2), target.flatten())
        return F.cross_entropy(logits, target)

    def predict(self, logits):
        return logits.argmax(dim=-1) if logits.dim() > 2 else logits.argmax(dim=1)

    def errors(self, logits, target):
        """Misclassified examples; for a sequence, each example's fraction of mispredicted
        positions (summed over the batch: the error rate per token's numerator)."""
        if logits.dim() > 2 and target.dim() == logits.dim() - 1:
            return (self.predict(logits) != target).flatten(1).double().mean(dim=1).sum()
        return super().errors(logits, target)


class BinaryCrossEntropy(Loss):
    """Logistic outputs with binary cross-entropy summed over classes (Nøkland):
    ``e = (sigmoid(a_L) − y) / N``."""

    name = "bce"
    description = "logistic binary cross-entropy"

    def __call__(self, logits, target):
        onehot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, onehot, reduction="sum") / len(logits)


class Hinge(Loss):
    """Amit's multi-class hinge loss, averaged over the batch. For target class ``c`` and
    ``μ = off_class_factor / (C − 1)``:
    ``loss = (1 − a_c)_+ + μ Σ_{i≠c} (1 + a_i)_+``, so ``e_c = −[a_c < 1]``,
    ``e_i = μ [a_i > −1]`` (divided by ``N``): each output unit's error is local."""

    name = "hinge"
    description = "multi-class hinge (Amit)"

    def __init__(self, off_class_factor: float = 1.0):
        if not 0 <= off_class_factor < math.inf:      # (NaN fails too)
            raise ValueError(f"off_class_factor must be >= 0 and finite; got {off_class_factor}")
        self.off_class_factor = off_class_factor

    def __call__(self, logits, target):
        onehot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
        mu = self.off_class_factor / (logits.shape[1] - 1)
        on = F.relu(1 - logits) * onehot
        off = F.relu(1 + logits) * (1 - onehot) * mu
        return (on + off).sum() / len(logits)


class Reconstruction(Loss):
    """Autoencoders (Flam-Shepherd): logistic outputs ``ŷ = sigmoid(a_L)`` and squared error
    ``loss = ½ Σ_i (ŷ_i − x_i)²`` averaged over the batch, so
    ``e = (ŷ − x) ⊙ ŷ ⊙ (1 − ŷ) / N``. Its "error" is the mean squared error per pixel."""

    name = "reconstruction"
    description = "logistic outputs, squared reconstruction error (autoencoders)"

    def __call__(self, logits, target):
        return 0.5 * (torch.sigmoid(logits) - target).pow(2).sum() / len(logits)

    def predict(self, logits):
        return torch.sigmoid(logits)

    def errors(self, logits, target):
        return (torch.sigmoid(logits) - target).pow(2).mean(dim=1).sum()


class SquaredError(Loss):
    """Regression (Lillicrap's and Amit's teacher tasks): linear outputs and
    ``loss = ½ Σ_k (ŷ_k − y_k)²`` averaged over the batch, so ``e = (ŷ − y) / N``. Its
    "error" is the normalized squared error ``NSE = Σ |ŷ − y|² / Σ |y|²`` over the batch
    (:func:`~biocredit.training.loop.evaluate` averages it over blocks of 1000 examples)."""

    name = "mse"
    description = "linear outputs, squared error (regression; error: NSE)"

    def __call__(self, logits, target):
        return 0.5 * (logits - target).pow(2).sum() / len(logits)

    def predict(self, logits):
        return logits

    def errors(self, logits, target):
        """``NSE · N``: the batch's normalized squared error times its size."""
        return (logits - target).pow(2).sum() / target.pow(2).sum() * len(logits)


_LOSSES = {cls.name: cls for cls in (CrossEntropy, BinaryCrossEntropy, Hinge, Reconstruction,
                                     SquaredError)}


def available() -> list[str]:
    return sorted(_LOSSES)


def create(name: str, **options) -> Loss:
    """Loss ``name``; ``options`` go to its constructor (hinge: ``off_class_factor``)."""
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; available losses: "
                         + ", ".join(f"{n} ({c.description})" for n, c in sorted(_LOSSES.items())))
    try:
        return _LOSSES[name](**options)
    except TypeError:
        raise ValueError(f"loss {name!r} takes no options {sorted(options)}") from None
