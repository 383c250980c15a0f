"""A synthetic stand-in for MNIST-shaped data: no files, no network, learnable in seconds.

Each of the 10 classes is a fixed smooth 28 x 28 prototype (a sum of Gaussian blobs); an
example is its class's prototype, shifted by up to two pixels, plus pixel noise. The draw is
fixed (seed 0), so every machine sees the same images. It exists so that every experiment
of the papers can run at a smoke budget where Fashion-MNIST is not installed (CI); its
numbers say nothing about the papers' data.
"""

from __future__ import annotations

import functools

import numpy as np

from .dataset import Raw

NUM_TRAIN, NUM_TEST, SIZE, CLASSES, BLOBS = 2000, 500, 28, 10, 4


@functools.lru_cache(maxsize=1)
def _arrays() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    grid = np.arange(SIZE)
    centres = rng.uniform(6, SIZE - 6, size=(CLASSES, BLOBS, 2))
    widths = rng.uniform(2.0, 4.0, size=(CLASSES, BLOBS))
    prototypes = np.zeros((CLASSES, SIZE, SIZE))
    for c in range(CLASSES):
        for (row, col), w in zip(centres[c], widths[c]):
            prototypes[c] += np.exp(-((grid[:, None] - row) ** 2 + (grid[None, :] - col) ** 2)
                                    / (2 * w * w))
    prototypes /= prototypes.max(axis=(1, 2), keepdims=True)

    def split(n):
        labels = rng.integers(0, CLASSES, size=n)
        shifts = rng.integers(-2, 3, size=(n, 2))
        images = np.stack([np.roll(prototypes[c], tuple(s), axis=(0, 1))
                           for c, s in zip(labels, shifts)])
        images = images + rng.normal(0.0, 0.25, size=images.shape)
        return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)[:, None], labels

    return (*split(NUM_TRAIN), *split(NUM_TEST))


def load_synthetic_raw(data_dir=None, download: bool = True) -> Raw:
    train_x, train_y, test_x, test_y = _arrays()
    return Raw(train_x, train_y, test_x, test_y, CLASSES, 255.0)
