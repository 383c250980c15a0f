"""Report files, written atomically like every other result file."""

from __future__ import annotations

import io
import os
from pathlib import Path

from ..training.results import slug, write_bytes_atomic, write_text_atomic as write_text

__all__ = ["save_figure", "slug", "write_bytes_atomic", "write_text"]


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Render a matplotlib ``Figure`` to PNG with the Agg canvas (no display, no pyplot
    state) and write it atomically; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)
