"""Where an error came from in a user's own code (a model file), for one-line messages."""

from __future__ import annotations

from pathlib import Path

import torch


def user_code(err: BaseException) -> str | None:
    """``FILE, line N`` of the innermost frame of ``err`` in a user's own code (a model
    file, say): outside biocredit, torch and the Python installation; ``None`` if none."""
    import sysconfig
    import traceback
    if isinstance(err, SyntaxError) and err.filename and not err.filename.startswith("<"):
        return f"{err.filename}, line {err.lineno}"
    ours = [str(Path(__file__).resolve().parent), str(Path(torch.__file__).resolve().parent),
            *{str(Path(p).resolve()) for key, p in sysconfig.get_paths().items()
              if key in ("stdlib", "platstdlib", "purelib", "platlib")}]
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        name = frame.filename
        if not name.startswith("<") and \
                not any(str(Path(name).resolve()).startswith(root) for root in ours):
            return f"{name}, line {frame.lineno} ({frame.name})"
    return None
