"""Where data sets are looked for: the caller's folder, system packages, the user cache.

Two environment variables move these: ``$BIOCREDIT_DATA`` replaces the user cache
(``~/.cache/biocredit``), and ``$BIOCREDIT_SYSTEM_DATA`` replaces the system folders
(:data:`SYSTEM_DIRS`) with ``<folder>/<name>`` for each folder it lists (separated by
``os.pathsep``; set but empty: no system folders). The test suite sets both to empty
folders so that it never sees the data sets installed on the machine.
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .errors import DatasetNotFoundError

T = TypeVar("T")

# Folders that system packages install data sets into, per data set name. A module-level
# constant so that tests can replace it; $BIOCREDIT_SYSTEM_DATA overrides it (system_dirs).
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),  # Debian: dataset-fashion-mnist
}

CACHE_ENV = "BIOCREDIT_DATA"
SYSTEM_ENV = "BIOCREDIT_SYSTEM_DATA"


def cache_root() -> Path:
    """``$BIOCREDIT_DATA`` when set, else ``~/.cache/biocredit``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "biocredit"


def cache_dir(name: str) -> Path:
    """The user cache folder of one data set; downloads go here."""
    return cache_root() / name


def system_dirs(name: str) -> list[Path]:
    """The system folders of one data set: ``<folder>/<name>`` for each folder of
    ``$BIOCREDIT_SYSTEM_DATA`` when it is set (empty: none), else :data:`SYSTEM_DIRS`."""
    env = os.environ.get(SYSTEM_ENV)
    if env is None:
        return list(SYSTEM_DIRS.get(name, ()))
    return [Path(folder).expanduser() / name for folder in env.split(os.pathsep) if folder]


def search_dirs(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """Folders to search, in order: ``data_dir`` and ``data_dir/<name>`` when ``data_dir``
    is given (and nothing else: an explicit folder is never replaced by another copy);
    else the system folders, then the cache."""
    dirs: list[Path] = []
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        dirs += [base, base / name]
    else:
        dirs += system_dirs(name)
        dirs.append(cache_dir(name))
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


# What a failed download raises: URLError, timeouts and refused connections are OSErrors.
NETWORK_ERRORS = (OSError, http.client.HTTPException)


def find_or_fetch(name: str, data_dir: str | os.PathLike | None, download: bool,
                  probe: Callable[[Path], tuple[T | None, str]],
                  fetch: Callable[[Path], None], how_to: list[str]) -> T:
    """The first hit of ``probe`` over :func:`search_dirs`; failing that, ``fetch`` into the
    cache folder (when ``download`` and no ``data_dir`` was given) and probe there.

    An explicit ``data_dir`` is the only place looked in: when it does not hold the data
    set, that is an error naming it, never a fall back to another copy or a download.

    ``probe(folder)`` returns ``(hit, "")`` or ``(None, why not)``. If nothing is found,
    raises :class:`DatasetNotFoundError` naming every folder searched (with why it did not
    qualify) and the ``how_to`` lines.
    """
    dirs = search_dirs(name, data_dir)
    notes = []
    for folder in dirs:
        hit, why = probe(folder)
        if hit is not None:
            return hit
        notes.append(f"  {folder}  ({why})")
    cause = None
    if data_dir is not None:
        reason = (f"the data folder given, {Path(data_dir).expanduser()}, does not hold it; "
                  "only it is searched, nothing is downloaded into it")
    elif not download:
        reason = "download=False"
    else:
        cache = cache_dir(name)
        try:
            fetch(cache)
        except NETWORK_ERRORS as err:
            reason, cause = f"download failed: {err}", err
        else:
            hit, why = probe(cache)
            if hit is not None:
                return hit
            reason = f"downloaded, but {cache}: {why}"
    message = "\n".join([f"Dataset {name!r} not found ({reason}). Looked in:", *notes,
                         "To get it:", *(f"  - {line}" for line in how_to)])
    raise DatasetNotFoundError(message, dirs) from cause
