"""Safe extraction of a ``.tar.gz`` archive that holds one top-level folder."""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import CorruptDatasetError


def _check_member(archive: Path, member: tarfile.TarInfo, top: str) -> PurePosixPath:
    name = member.name
    rel = PurePosixPath(name)
    if name.startswith(("/", "\\")) or rel.is_absolute():
        raise CorruptDatasetError(f"{archive}: refusing member with an absolute path: {name!r}")
    if ".." in rel.parts or "\\" in name:
        raise CorruptDatasetError(f"{archive}: refusing member with '..' in its path: {name!r}")
    if not (member.isfile() or member.isdir()):
        raise CorruptDatasetError(f"{archive}: refusing member that is a link or device: {name!r}")
    parts = [p for p in rel.parts if p != "."]
    if not parts or parts[0] != top:
        raise CorruptDatasetError(f"{archive}: member {name!r} lies outside the expected {top}/")
    return PurePosixPath(*parts)


def extract_folder(archive: str | Path, top: str, dest_dir: str | Path) -> Path:
    """Extract ``archive`` (whose members must all lie under ``top/``) into ``dest_dir``.

    Members with absolute paths, ``..``, or link/device types make the whole archive be
    refused. It is unpacked into a temporary folder beside the destination and moved into
    place only at the end, so a refused, damaged or interrupted archive leaves nothing
    behind. If ``dest_dir / top`` already exists, only the files it lacks are added.
    Returns ``dest_dir / top``.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / top
    tmp = Path(tempfile.mkdtemp(prefix=f".{top}.", suffix=".extract", dir=dest_dir))
    try:
        try:
            with tarfile.open(archive, "r|gz") as tar:  # one streaming pass
                for member in tar:
                    rel = _check_member(archive, member, top)
                    out = tmp.joinpath(*rel.parts)
                    if member.isdir():
                        out.mkdir(parents=True, exist_ok=True)
                        continue
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise CorruptDatasetError(f"{archive}: unreadable .tar.gz archive ({err})") from err
        extracted = tmp / top
        if not extracted.is_dir():
            raise CorruptDatasetError(f"{archive}: archive holds no {top}/ folder")
        try:
            os.replace(extracted, target)  # atomic when nothing is there yet
        except OSError:
            if not target.is_dir():
                raise
            # a folder is already there (incomplete, or just unpacked by another process):
            # add what it lacks and touch nothing else
            for src in sorted(extracted.rglob("*")):
                dst = target / src.relative_to(extracted)
                if src.is_dir():
                    dst.mkdir(exist_ok=True)
                elif not dst.exists():
                    os.replace(src, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
