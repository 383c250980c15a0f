"""Autoencoder runs: targets are the inputs; a picture of inputs above reconstructions."""

from __future__ import annotations

import io
import math
import os

import numpy as np
import torch

from .results import write_bytes_atomic

EXAMPLES = 10


@torch.no_grad()
def reconstructions(net, x: torch.Tensor) -> np.ndarray:
    """``sigmoid(net(x))`` for the first :data:`EXAMPLES` inputs, as ``EXAMPLES × D``."""
    was_training = net.training
    net.eval()
    out = torch.sigmoid(net(x[:EXAMPLES])).flatten(1).cpu().numpy()
    net.train(was_training)
    return out


def save_reconstruction_grid(path: str | os.PathLike, inputs: np.ndarray,
                             rows: dict[str, np.ndarray], image_shape) -> None:
    """One PNG: the inputs in the top row, then one row of reconstructions per label."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c, h, w = image_shape
    def as_image(v):
        img = v.reshape(c, h, w).transpose(1, 2, 0)
        return img[..., 0] if c == 1 else np.clip(img, 0, 1)

    labels = ["input", *rows]
    data = [inputs, *rows.values()]
    fig, axes = plt.subplots(len(data), inputs.shape[0],
                             figsize=(inputs.shape[0] * 0.9, len(data) * 1.0), squeeze=False)
    for r, (label, values) in enumerate(zip(labels, data)):
        for i, ax in enumerate(axes[r]):
            ax.imshow(as_image(values[i]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center")
    fig.suptitle("test inputs (top) and their reconstructions")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


def save_array(path: str | os.PathLike, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes_atomic(path, buffer.getvalue())


def image_shape(input_shape) -> tuple[int, int, int]:
    """``C × H × W`` of an input (flat inputs become a square single-channel image)."""
    if len(input_shape) == 3:
        return tuple(input_shape)
    side = math.isqrt(math.prod(input_shape))
    return (1, side, side)


def combine_reconstructions(path, dataset, folders: dict) -> None:
    """One picture for a comparison: the test inputs, then each run's reconstructions."""
    rows = {label: np.load(folder / "reconstructions.npy") for label, folder in folders.items()
            if (folder / "reconstructions.npy").exists()}
    inputs = dataset.test_x[:EXAMPLES].flatten(1).cpu().numpy()
    save_reconstruction_grid(path, inputs, rows, image_shape(dataset.input_shape))
