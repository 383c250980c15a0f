"""scikit-learn's bundled 8 x 8 handwritten digits: no files, no network."""

from __future__ import annotations

import functools

import numpy as np
import torch

from .dataset import Raw

NUM_TEST = 360  # 20% of the 1797 images
SPLIT_SEED = 0  # the train/test split is fixed, whatever the validation split_seed


@functools.lru_cache(maxsize=1)
def _arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32)[:, None]  # N x 1 x 8 x 8, values 0..16
    labels = bunch.target.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def load_digits_raw(data_dir=None, download: bool = True) -> Raw:
    """Train/test by a permutation drawn from a generator seeded with 0: the last 360 test."""
    images, labels = _arrays()
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(SPLIT_SEED))
    train, test = perm[:-NUM_TEST].numpy(), perm[-NUM_TEST:].numpy()
    return Raw(images[train], labels[train], images[test], labels[test], 10, 16.0)
