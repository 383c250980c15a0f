"""Result files, written atomically (a temporary file in the same folder, then a rename), and
read back with one error for a file that is damaged."""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from pathlib import Path
from typing import Any


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (in use, holds another run, corrupt)."""


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file in ``path``'s folder, then rename it over ``path``.
    The file gets the usual permissions (0666 less the umask), so results can be shared."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        raise _naming(err, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _naming(err, path) from None
        raise


def _naming(err: OSError, path: Path) -> OSError:
    """``err`` saying which file could not be written (a full disk's ``[Errno 28]`` names
    none): the same kind of ``OSError``, its file name ``path``."""
    if err.errno is None:
        return err
    return type(err)(err.errno, err.strerror or str(err), str(path))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """``text`` as UTF-8, atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def slug(text: str) -> str:
    """``text`` as a file-name part: letters, digits, dots and dashes."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "run"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(_clean(obj), indent=2) + "\n")


def write_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(_clean(r)) + "\n" for r in rows))


_JSON_KINDS = {dict: "an object", list: "an array"}


def read_json(path: str | os.PathLike, expect: type | None = None) -> Any:
    """The JSON value in ``path``. A file that is not JSON (truncated or corrupt), or whose
    value is not an ``expect`` (``dict``: the object a run's files hold), is a
    :class:`RunFolderError` naming it; a missing file is the ``OSError``."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except ValueError:                    # a UnicodeDecodeError too
        raise RunFolderError(f"{path} is not valid JSON (truncated or corrupt)") from None
    if expect is not None and not isinstance(value, expect):
        kind = _JSON_KINDS.get(expect, expect.__name__)
        raise RunFolderError(f"{path} holds a JSON {type(value).__name__}, not {kind} as a "
                             "run writes (corrupt?)")
    return value


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The rows of a JSON-lines file; a line that is not a JSON object is a
    :class:`RunFolderError` naming the file and the line."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict):
                raise RunFolderError(f"{path}, line {number}: not a JSON object (truncated or "
                                     "corrupt)")
            rows.append(row)
    return rows
