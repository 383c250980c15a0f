"""Errors as one-line messages, and where one came from in a user's own code (a model
file)."""

from __future__ import annotations

from pathlib import Path

import torch


def one_line(err: BaseException) -> str:
    """An exception as one line, naming the file for operating-system errors."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    text = " ".join(str(err).split())
    return text or type(err).__name__


def described(err: BaseException) -> str:
    """``Type: message`` on one line, and where in a user's own code ``err`` was raised."""
    text = one_line(err)
    text = f"{type(err).__name__}: {text}" if text != type(err).__name__ else text
    where = user_code(err)
    return f"{text} (raised in {where})" if where else text


def user_code(err: BaseException) -> str | None:
    """``FILE, line N (FUNCTION)`` where ``err`` was raised in a user's own code (a model
    file, say): the innermost frame outside torch and the Python installation, when it is
    not biocredit's own (biocredit's errors say what they are about); ``None`` otherwise."""
    import sysconfig
    import traceback
    if isinstance(err, SyntaxError) and err.filename and not err.filename.startswith("<"):
        return f"{err.filename}, line {err.lineno}"
    ours = str(Path(__file__).resolve().parent)
    libraries = [str(Path(torch.__file__).resolve().parent),
                 *{str(Path(p).resolve()) for key, p in sysconfig.get_paths().items()
                   if key in ("stdlib", "platstdlib", "purelib", "platlib")}]
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        name = frame.filename
        if name.startswith("<"):
            continue
        path = str(Path(name).resolve())
        if path.startswith(ours):
            return None
        if not any(path.startswith(root) for root in libraries):
            return f"{name}, line {frame.lineno} ({frame.name})"
    return None


def out_of_memory(err: BaseException) -> str | None:
    """What an out-of-memory error needed (``"… tried to allocate 313.6 GB on the CPU"``),
    or ``None`` for another error."""
    import re
    text = str(err)
    cpu = re.search(r"can't allocate memory: you tried to allocate (\d+) bytes", text)
    if cpu:
        return f"it needed {int(cpu.group(1)) / 1e9:,.1f} GB more on the CPU"
    if isinstance(err, torch.OutOfMemoryError) or "out of memory" in text.lower():
        gpu = re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]?i?B)", text)
        device = "the GPU" if "cuda" in text.lower() or "gpu" in text.lower() else "the device"
        return f"it needed {gpu.group(1)} more on {device}" if gpu else \
            f"{device} ran out ({one_line(err)[:200]})"
    return None
