"""Data set names and the one entry point, :func:`load`."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import torch

from .cifar_files import CIFAR10, CIFAR100, load_cifar_raw
from .dataset import Dataset, Raw, build, check_normalize, check_validation
from .digits import load_digits_raw
from .mnist import FASHION_MNIST, MNIST, load_idx_raw
from .synthetic import load_synthetic_raw
from .teacher import load_teacher_raw
from .text import PYTHON_REFERENCE, TEXT_PREFIX, is_text, load_text

# name -> loader(data_dir, download) -> Raw
LOADERS: dict[str, Callable[..., Raw]] = {
    "cifar10": functools.partial(load_cifar_raw, CIFAR10),
    "cifar100": functools.partial(load_cifar_raw, CIFAR100),
    "digits": load_digits_raw,
    "fashion-mnist": functools.partial(load_idx_raw, FASHION_MNIST),
    "mnist": functools.partial(load_idx_raw, MNIST),
    "synthetic": load_synthetic_raw,
    "linear-teacher": functools.partial(load_teacher_raw, "linear-teacher"),
    "nonlinear-teacher": functools.partial(load_teacher_raw, "nonlinear-teacher"),
    "amit-linear": functools.partial(load_teacher_raw, "amit-linear"),
}

# Made in memory (scikit-learn's digits, seeded draws): a data folder never applies.
BUILT_IN = frozenset({"digits", "synthetic", "linear-teacher", "nonlinear-teacher",
                      "amit-linear"})


def available() -> list[str]:
    """Names :func:`load` accepts, sorted (besides ``text:PATH``, any UTF-8 text file)."""
    return sorted([*LOADERS, PYTHON_REFERENCE])


def known(name: str) -> bool:
    """Whether :func:`load` knows ``name``: one of :func:`available`, or ``text:PATH``."""
    return str(name).strip().lower().replace("_", "-") in available() or is_text(name)


def load(name: str, *, data_dir: str | os.PathLike | None = None,
         device: torch.device | str = "cpu", normalize: str = "scale",
         validation: float | int = 0, split_seed: int = 0, download: bool = True,
         train_size: int | None = None, test_size: int | None = None) -> Dataset:
    """Load a data set whole, as tensors on ``device``.

    name: one of :func:`available` (case and ``_``/``-`` are not significant), or
        ``text:PATH``: a UTF-8 text file, character-level (:mod:`biocredit.data.text`;
        ``python-reference`` is CPython's own Language Reference, no download).
    data_dir: the folder holding the files (or its ``<name>/`` subfolder); when given, the
        only place looked in: a folder without them is a :class:`DatasetNotFoundError`
        naming it (no other copy is used, nothing is downloaded). Without it: the system
        folders (``/usr/share/datasets/fashion-mnist`` for Fashion-MNIST), then the user
        cache, ``$BIOCREDIT_DATA/<name>`` or else ``~/.cache/biocredit/<name>``.
    normalize: ``"scale"`` maps pixels to [0, 1]; ``"standardize"`` then subtracts the
        per-channel mean and divides by the per-channel std of the training split (after
        the validation hold-out), applied alike to every split.
    validation: a fraction in (0, 1) (rounded, at least one example) or a count of training
        examples held out as ``val_x``/``val_y``, chosen by a permutation drawn from a
        ``torch.Generator`` seeded with ``split_seed``; 0 holds out nothing.
    download: fetch missing files into the cache (MD5-checked, 30 s timeout).
    train_size, test_size: keep only the first this many examples of the split (before the
        validation hold-out and the standardization statistics); ``None`` keeps all.

    Raises ``ValueError`` for a bad argument, :class:`DatasetNotFoundError` when the files
    are nowhere to be found or fetched, :class:`CorruptDatasetError` for a damaged file.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in LOADERS and not is_text(name):
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(available())}, "
                         f"{TEXT_PREFIX}PATH")
    check_normalize(normalize)
    check_validation(validation)
    if is_text(name):
        return _text(name, data_dir, normalize, validation=validation, split_seed=split_seed,
                     train_size=train_size, test_size=test_size, device=device)
    if data_dir is not None and key in BUILT_IN:
        raise ValueError(f"{key} is built in (no files to read); --data-dir {data_dir} does "
                         "not apply to it")
    raw = subset(LOADERS[key](data_dir=data_dir, download=download), train_size, test_size)
    return build(key, raw, normalize=normalize, validation=validation, split_seed=split_seed,
                 device=device)


def _text(name: str, data_dir, normalize: str, **options) -> Dataset:
    """A text data set (:mod:`.text`): ids, so neither a data folder nor a normalization."""
    if data_dir is not None:
        raise ValueError(f"{name} names its text itself; --data-dir {data_dir} does not apply "
                         f"(use --data {TEXT_PREFIX}PATH for a file)")
    if normalize != "scale":
        raise ValueError(f"{name} is text (character ids): normalize={normalize!r} does not "
                         "apply to it")
    subset_sizes_check(options["train_size"], options["test_size"])
    return load_text(name, **options)


def subset_sizes_check(train_size: int | None, test_size: int | None) -> None:
    for name, size in (("train_size", train_size), ("test_size", test_size)):
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                                 or size < 1):
            raise ValueError(f"{name} is a number of examples (at least 1); got {size!r}")


def subset(raw: Raw, train_size: int | None, test_size: int | None) -> Raw:
    """The first ``train_size`` training and ``test_size`` test examples of ``raw``."""
    subset_sizes_check(train_size, test_size)
    train, test = slice(train_size), slice(test_size)
    return raw._replace(train_x=raw.train_x[train], train_y=raw.train_y[train],
                        test_x=raw.test_x[test], test_y=raw.test_y[test])
