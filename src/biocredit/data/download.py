"""Fetch a file over the network, check its MD5, and only then put it in place."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from urllib.request import Request, urlopen

from .errors import ChecksumMismatchError

TIMEOUT_S = 30.0
_CHUNK = 1 << 20


def md5sum(path: str | Path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, dest: str | Path, md5: str, *, timeout: float = TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest``, atomically and only if its MD5 is ``md5``.

    The bytes go to a temporary file in ``dest``'s directory, which is renamed to ``dest``
    once the checksum matches; on a mismatch, or any error, the temporary file is removed
    and ``dest`` is left untouched. Network failures propagate as ``urllib.error.URLError``
    / ``OSError``; a mismatch raises :class:`ChecksumMismatchError`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        request = Request(url, headers={"User-Agent": "biocredit"})
        with os.fdopen(fd, "wb") as out, urlopen(request, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != md5.lower():
            raise ChecksumMismatchError(
                f"{dest.name}: checksum mismatch for {url}: expected MD5 {md5.lower()}, got {got}"
                " (the partial download was deleted)"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest
