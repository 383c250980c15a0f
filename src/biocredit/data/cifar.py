"""Parser for the python-pickle versions of CIFAR-10 and CIFAR-100.

Each batch file is a pickled dict with ``b"data"``, an N x 3072 uint8 array whose rows are
1024 red, then 1024 green, then 1024 blue values (each a row-major 32 x 32 image), and a
list of N labels (``b"labels"`` for CIFAR-10, ``b"fine_labels"`` for CIFAR-100).

Pickles can run code when loaded, so the unpickler here only builds plain containers and
numpy arrays; any other global in the stream is refused.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path

import numpy as np

from .errors import CorruptDatasetError

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"
CIFAR100_DIR = "cifar-100-python"
CIFAR100_TRAIN = "train"
CIFAR100_TEST = "test"

_ROW = 3 * 32 * 32
# numpy's own array-rebuilding helpers (protocols 0-4 and 5), as numpy itself names them
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_FROMBUFFER = np.empty(0).__reduce_ex__(5)[0]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how protocol 2 spells bytes written by Python 3
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as err:
        raise CorruptDatasetError(f"{path}: not a readable CIFAR pickle ({err})") from err
    if not isinstance(obj, dict):
        raise CorruptDatasetError(f"{path}: pickle holds a {type(obj).__name__}, not a dict")
    return obj


def _get(batch: dict, key: str, path: Path):
    for k in (key.encode(), key):  # the official files use bytes keys; accept str too
        if k in batch:
            return batch[k]
    have = ", ".join(sorted(repr(k) for k in batch)) or "none"
    raise CorruptDatasetError(f"{path}: pickle is missing key {key.encode()!r} (keys: {have})")


def read_batch(path: str | Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (N x 3 x 32 x 32 uint8 images, N int64 labels)."""
    path = Path(path)
    batch = _unpickle(path)
    data, labels = _get(batch, "data", path), _get(batch, label_key, path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != _ROW:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) \
            else type(data).__name__
        raise CorruptDatasetError(f"{path}: b'data' should be an N x {_ROW} uint8 array, got {desc}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as err:
        raise CorruptDatasetError(f"{path}: labels are not integers ({err})") from err
    if labels.ndim != 1 or len(labels) != len(data):
        raise CorruptDatasetError(
            f"{path}: label count {labels.size} != image count {len(data)}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise CorruptDatasetError(
            f"{path}: labels range over {labels.min()}..{labels.max()}, expected 0..{num_classes - 1}"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _read_many(folder: Path, names, label_key: str, num_classes: int):
    parts = [read_batch(folder / n, label_key, num_classes) for n in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def read_cifar10(folder: str | Path):
    """``cifar-10-batches-py/`` as (train_x, train_y, test_x, test_y)."""
    folder = Path(folder)
    train = _read_many(folder, CIFAR10_TRAIN, "labels", 10)
    test = read_batch(folder / CIFAR10_TEST, "labels", 10)
    return (*train, *test)


def read_cifar100(folder: str | Path):
    """``cifar-100-python/`` as (train_x, train_y, test_x, test_y), fine labels."""
    folder = Path(folder)
    train = read_batch(folder / CIFAR100_TRAIN, "fine_labels", 100)
    test = read_batch(folder / CIFAR100_TEST, "fine_labels", 100)
    return (*train, *test)
