"""The in-memory data set, and the steps that turn raw pixels into it.

A :class:`Dataset` holds every split as one tensor on one device, so training loops index
mini-batches straight out of it (no per-image loader).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, fields, replace
from typing import NamedTuple

import numpy as np
import torch

NORMALIZATIONS = ("scale", "standardize")


class Raw(NamedTuple):
    """What a source hands over: pixels N x C x H x W in ``0..max_value``, integer labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int          # regression: the number of target values per example
    max_value: float
    regression: bool = False  # targets are float vectors N x num_classes, not labels


@dataclass
class Dataset:
    """Whole splits as tensors: images ``float32`` N x C x H x W, labels ``int64`` N (text:
    character ids ``int64`` N x T, and the next character's ids N x T)."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    chars: str | None = None  # text (:mod:`.text`): the characters the ids stand for

    def __post_init__(self) -> None:
        if (self.val_x is None) != (self.val_y is None):
            raise ValueError("val_x and val_y must both be given or both be None")
        shape = tuple(self.train_x.shape[1:])
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x is None:
                continue
            if x.dim() < 2 or tuple(x.shape[1:]) != shape:
                raise ValueError(f"{split}_x has shape {tuple(x.shape)}; expected N x {shape}")
            sequence = y.shape == x.shape and not y.is_floating_point()    # (N, T) text
            if len(y) != len(x) or (y.dim() != 1 and not sequence and not (
                    y.dim() == 2 and y.is_floating_point())):
                raise ValueError(f"{split}_y has shape {tuple(y.shape)}; expected ({len(x)},) "
                                 f"labels, ({len(x)}, K) regression targets or {tuple(x.shape)} "
                                 "next-token ids")

    @property
    def regression(self) -> bool:
        """Whether the targets are float vectors (a teacher task), not class labels."""
        return self.train_y.is_floating_point()

    @property
    def sequence(self) -> bool:
        """Whether the targets are a token id per input position (text, :mod:`.text`)."""
        return not self.regression and self.train_y.dim() == 2

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, (C, H, W)."""
        return tuple(self.train_x.shape[1:])

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with every tensor on ``device`` (tensors already there are shared)."""
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **moved)

    def __repr__(self) -> str:
        n_val = 0 if self.val_x is None else len(self.val_x)
        return (f"Dataset(name={self.name!r}, train={len(self.train_x)}, val={n_val}, "
                f"test={len(self.test_x)}, input_shape={self.input_shape}, "
                f"num_classes={self.num_classes}, device={self.train_x.device})")


def check_normalize(normalize: str) -> None:
    """Reject anything but the names in ``NORMALIZATIONS``."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {', '.join(map(repr, NORMALIZATIONS))}; "
                         f"got {normalize!r}")


def check_validation(validation: float | int) -> None:
    """Reject what can never be a hold-out size: bools, negatives, fractions >= 1, NaN."""
    if isinstance(validation, bool) or not isinstance(validation, numbers.Real):
        raise ValueError(f"validation must be a fraction in (0, 1) or a count of examples; "
                         f"got {validation!r}")
    if not isinstance(validation, numbers.Integral) and not (0 <= validation < 1):
        raise ValueError(f"validation={validation!r}: a float is a fraction and must lie in "
                         f"[0, 1); pass an int to hold out a count of examples")
    if validation < 0:
        raise ValueError(f"validation={validation!r}: must not be negative")


def validation_count(validation: float | int, n_train: int) -> int:
    """Examples to hold out: ``round(fraction * n_train)`` (at least 1) or the count itself."""
    check_validation(validation)
    if not isinstance(validation, numbers.Integral):
        count = 0 if validation == 0 else max(1, round(validation * n_train))
    else:
        count = int(validation)
    if count >= n_train:
        raise ValueError(f"validation={validation!r} would hold out {count} of the {n_train} "
                         f"training examples; at least one must remain for training")
    return count


def split_validation(x: torch.Tensor, y: torch.Tensor, count: int, seed: int):
    """Hold out ``count`` examples picked by a permutation seeded with ``seed``.

    Returns ``(train_x, train_y, val_x, val_y)``; both parts keep the original order.
    """
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:count].sort().values, perm[count:].sort().values
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def standardize_(train_x: torch.Tensor, *others: torch.Tensor | None) -> None:
    """In place: subtract the per-channel mean and divide by the per-channel std of
    ``train_x`` (over examples and pixels), for ``train_x`` and every other split."""
    dims = (0, *range(2, train_x.dim()))
    mean = train_x.mean(dim=dims, keepdim=True)
    std = train_x.std(dim=dims, correction=0, keepdim=True)
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel stays put
    for x in (train_x, *others):
        if x is not None:
            x.sub_(mean).div_(std)


def build(name: str, raw: Raw, *, normalize: str, validation: float | int, split_seed: int,
          device: torch.device | str) -> Dataset:
    """Scale to [0, 1], hold out the validation examples, optionally standardize, move."""
    check_normalize(normalize)

    def images(a) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32)).div_(raw.max_value)

    def labels(a) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32 if raw.regression else np.int64))

    tr_x, tr_y = images(raw.train_x), labels(raw.train_y)
    te_x, te_y = images(raw.test_x), labels(raw.test_y)
    va_x = va_y = None
    count = validation_count(validation, len(tr_x))
    if count:
        tr_x, tr_y, va_x, va_y = split_validation(tr_x, tr_y, count, split_seed)
    if normalize == "standardize":  # statistics of what is left for training only
        standardize_(tr_x, va_x, te_x)
    return Dataset(name, tr_x, tr_y, te_x, te_y, raw.num_classes, va_x, va_y).to(device)
