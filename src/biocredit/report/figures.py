"""The report's figures, drawn with matplotlib's object API (no pyplot, no display).

Every curve of a run has its rule's colour (:mod:`.colors`), in every figure; every panel has
labelled axes; every figure names the runs in a legend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from .colors import rule_color, run_linestyles
from .files import save_figure
from .runs import RunRecord

PANEL_SIZE = (4.2, 3.2)  # inches per panel
MAX_COLUMNS = 4


def _figure(panels: int, size: tuple[float, float] = PANEL_SIZE, legend_space: float = 1.6):
    """A figure with ``panels`` axes in rows of at most ``MAX_COLUMNS``, room on the right
    for a legend; returns ``(figure, axes)`` (unused axes removed)."""
    cols = min(panels, MAX_COLUMNS)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(size[0] * cols + legend_space, size[1] * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[panels:]:
        ax.remove()
    return fig, list(axes[:panels])


def _value(values, i: int, scale: float = 1.0) -> float:
    """``values[i] * scale``; NaN where it is missing (short list, None or not a number)."""
    if values is None or i >= len(values) or values[i] is None:
        return math.nan
    return float(values[i]) * scale


def _run_legend(fig: Figure, records: Sequence[RunRecord], extra: Sequence = ()) -> None:
    styles = run_linestyles([r.rule for r in records])
    handles = [Line2D([], [], color=rule_color(r.rule), linestyle=s, marker="o", markersize=3,
                      label=r.label) for r, s in zip(records, styles)]
    fig.legend(handles=[*handles, *extra], loc="outside right upper", title="rule",
               frameon=False)


def _marker(n_points: int) -> dict:
    """Markers where a curve has few points (a single epoch would draw no line at all)."""
    return {"marker": "o", "markersize": 3} if n_points <= 40 else {}


def error_curves(records: Sequence[RunRecord], path: Path, *, scale: float = 100.0,
                 unit: str = "%") -> Path:
    """Train and test error against the epoch, one line per run; the logged fractions are
    multiplied by ``scale`` and labelled in ``unit`` (autoencoders: 1 and "MSE per pixel")."""
    fig, (train_ax, test_ax) = _figure(2)
    styles = run_linestyles([r.rule for r in records])
    for r, style in zip(records, styles):
        epochs = [row["epoch"] for row in r.metrics]
        for ax, key in ((train_ax, "train_error"), (test_ax, "test_error")):
            values = [_value([row.get(key)], 0, scale) for row in r.metrics]
            ax.plot(epochs, values, color=rule_color(r.rule), linestyle=style, label=r.label,
                    **_marker(len(epochs)))
    for ax, name in ((train_ax, "train"), (test_ax, "test")):
        ax.set_title(f"{name} error")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{name} error ({unit})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    _run_legend(fig, records)
    return save_figure(fig, path)


def layer_curves(records: Sequence[RunRecord], key: str, path: Path, *, ylabel: str,
                 panel_title: Callable[[int, int], str], rows: str = "metrics",
                 x: str = "epoch", scale: float = 1.0, log: bool = False,
                 right_angle: bool = False, from_zero: bool = False) -> Path | None:
    """One panel per layer (entry ``i`` of the per-layer list ``row[key]``), one line per run
    over ``x`` (``epoch`` for ``metrics.jsonl`` rows, ``step`` for ``steps.jsonl`` rows).

    ``panel_title(i, panels)`` names panel ``i``; ``right_angle`` adds a dashed line at 90°;
    ``from_zero`` starts the y axis at 0. Runs without a finite value for ``key`` are left
    out (of the legend too); returns ``None`` (and writes nothing) when no run has one.
    """
    series = {id(r): getattr(r, rows) for r in records}

    def width(r):
        return max((len(row.get(key) or []) for row in series[id(r)]), default=0)

    records = [r for r in records
               if any(math.isfinite(_value(row.get(key), i))
                      for row in series[id(r)] for i in range(width(r)))]
    if not records:
        return None
    panels = max(width(r) for r in records)
    fig, axes = _figure(panels)
    styles = run_linestyles([r.rule for r in records])
    for i, ax in enumerate(axes):
        for r, style in zip(records, styles):
            xs = [row[x] for row in series[id(r)]]
            ys = np.array([_value(row.get(key), i, scale) for row in series[id(r)]])
            if log:
                ys[ys <= 0] = np.nan
            ax.plot(xs, ys, color=rule_color(r.rule), linestyle=style, label=r.label,
                    **_marker(len(xs)))
        if right_angle:
            ax.axhline(90, color="0.45", linestyle="--", linewidth=1)
            top = np.nanmax([_value(row.get(key), i) for r in records for row in series[id(r)]]
                            + [90.0])
            ax.set_ylim(0, max(100.0, top * 1.05))
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        if from_zero:
            top = np.nanmax([_value(row.get(key), i, scale) for r in records
                             for row in series[id(r)]] + [0.0])
            ax.set_ylim(0, top * 1.1 if top > 0 else 1.0)
        ax.set_title(panel_title(i, panels))
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    extra = [Line2D([], [], color="0.45", linestyle="--", label="90° (orthogonal)")] \
        if right_angle else []
    _run_legend(fig, records, extra)
    return save_figure(fig, path)


def class_colors(num_classes: int) -> list:
    """A colour per class (tab10 up to 10 classes, tab20 up to 20, then a hue wheel)."""
    from matplotlib import colormaps

    if num_classes <= 10:
        return [colormaps["tab10"](i) for i in range(num_classes)]
    if num_classes <= 20:
        return [colormaps["tab20"](i) for i in range(num_classes)]
    return [colormaps["hsv"](i / num_classes) for i in range(num_classes)]


def tsne_figure(embeddings: Sequence[np.ndarray], labels: np.ndarray, path: Path, *,
                label: str, rule: str, num_classes: int) -> Path:
    """One panel per hidden layer: the test examples' t-SNE map, coloured by class."""
    fig, axes = _figure(len(embeddings), size=(3.6, 3.6), legend_space=1.2)
    colors = class_colors(num_classes)
    point_colors = [colors[int(c)] for c in labels]
    for i, (ax, points) in enumerate(zip(axes, embeddings)):
        ax.scatter(points[:, 0], points[:, 1], c=point_colors, s=6, linewidths=0)
        ax.set_title(f"hidden layer {i + 1}")
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{label}: t-SNE of the hidden layers' test features ({len(labels)} examples)",
                 color=rule_color(rule))
    present = sorted({int(c) for c in labels})
    handles = [Line2D([], [], color=colors[c], marker="o", linestyle="", label=str(c))
               for c in present]
    fig.legend(handles=handles, loc="outside right upper", title="class", frameon=False,
               ncols=1 if len(present) <= 20 else 2)
    return save_figure(fig, path)


def unit_mosaic(weight: np.ndarray, shape: Sequence[int], units: int = 64,
                pad: int = 1) -> np.ndarray:
    """The first ``units`` rows of ``weight`` (units × features) as images of ``shape``
    (``C × H × W``, or ``H × W``) tiled in a near-square grid.

    Each unit is divided by its largest absolute weight, so its values lie in ``[−1, 1]``
    (0 stays 0; an all-zero unit stays zero). One channel: a 2-D array with NaN between the
    tiles. Three channels: an ``H × W × 3`` RGB array mapped to ``[0, 1]`` (0 → 0.5) with
    white between the tiles. Other channel counts are averaged to one.
    """
    weight = np.asarray(weight, dtype=np.float64)
    shape = tuple(shape)
    if len(shape) == 2:
        shape = (1, *shape)
    c, h, w = shape
    n = min(units, len(weight))
    tiles = weight[:n].reshape(n, c, h, w)
    scale = np.abs(tiles).reshape(n, -1).max(axis=1)
    tiles = tiles / np.where(scale > 0, scale, 1.0)[:, None, None, None]
    rgb = c == 3
    if not rgb:
        tiles = tiles.mean(axis=1, keepdims=True)
    else:
        tiles = (tiles + 1) / 2
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, tiles.shape[1]),
                  1.0 if rgb else np.nan)
    for k in range(n):
        r, q = divmod(k, cols)
        out[r * (h + pad):r * (h + pad) + h, q * (w + pad):q * (w + pad) + w] = \
            tiles[k].transpose(1, 2, 0)
    return out if rgb else out[..., 0]


def receptive_fields(items: Sequence[tuple[str, str, np.ndarray, str]], path: Path) -> Path:
    """One panel per run: a mosaic from :func:`unit_mosaic` of its first layer's units.
    ``items`` holds ``(label, rule, mosaic, what is shown)``, the last one the x label."""
    from matplotlib import colormaps

    fig, axes = _figure(len(items), size=(3.8, 4.0), legend_space=0.0)
    cmap = colormaps["gray"].with_extremes(bad="white")
    for i, (ax, (label, rule, mosaic, shown)) in enumerate(zip(axes, items)):
        ax.imshow(mosaic, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(label, color=rule_color(rule), fontweight="bold")
        ax.set_xlabel(shown)
        if i % MAX_COLUMNS == 0:
            ax.set_ylabel("incoming weights as images (black −, white +)")
        ax.set_xticks([])
        ax.set_yticks([])
    return save_figure(fig, path)
