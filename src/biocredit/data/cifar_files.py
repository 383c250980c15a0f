"""CIFAR-10 and CIFAR-100: an extracted folder or its .tar.gz, found locally or downloaded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import cifar, locate
from . import download as _download
from .archive import extract_folder
from .dataset import Raw
from .errors import CorruptDatasetError

BASE_URL = "https://www.cs.toronto.edu/~kriz/"


@dataclass(frozen=True)
class CifarSource:
    name: str
    folder: str
    files: tuple[str, ...]
    archive: str
    md5: str  # of the published archive
    reader: Callable[[Path], tuple]
    num_classes: int


CIFAR10 = CifarSource("cifar10", cifar.CIFAR10_DIR, (*cifar.CIFAR10_TRAIN, cifar.CIFAR10_TEST),
                      "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                      cifar.read_cifar10, 10)
CIFAR100 = CifarSource("cifar100", cifar.CIFAR100_DIR, (cifar.CIFAR100_TRAIN, cifar.CIFAR100_TEST),
                       "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                       cifar.read_cifar100, 100)


def _missing(source: CifarSource, folder: Path) -> list[str]:
    return [f for f in source.files if not (folder / f).is_file()]


def _extract(source: CifarSource, archive: Path) -> Path:
    try:
        folder = extract_folder(archive, source.folder, archive.parent)
    except PermissionError:  # a read-only folder: unpack into the cache instead
        folder = extract_folder(archive, source.folder, locate.cache_dir(source.name))
    missing = _missing(source, folder)
    if missing:
        raise CorruptDatasetError(f"{archive}: archive lacks "
                                  + ", ".join(f"{source.folder}/{m}" for m in missing))
    return folder


def probe(source: CifarSource, d: Path) -> tuple[Path | None, str]:
    """The complete extracted folder under ``d`` (unpacking ``d``'s archive if need be)."""
    folder = d / source.folder
    missing = _missing(source, folder)
    if not missing:
        return folder, ""
    if (d / source.archive).is_file():
        return _extract(source, d / source.archive), ""
    if not d.is_dir():
        return None, "a file, not a folder" if d.exists() else "no such folder"
    if folder.is_dir():
        return None, f"{source.folder}/ lacks {', '.join(missing)}, and no {source.archive}"
    return None, f"no {source.folder}/ and no {source.archive}"


def load_cifar_raw(source: CifarSource, data_dir=None, download: bool = True) -> Raw:
    def fetch(cache: Path) -> None:
        if not (cache / source.archive).is_file():
            _download.download_file(BASE_URL + source.archive, cache / source.archive, source.md5)

    how_to = [
        f"put {source.folder}/ (or {source.archive}) in a folder DIR and pass --data-dir DIR "
        "(data_dir=DIR), or",
        f"be online with download=True: {source.archive} is fetched from {BASE_URL} into "
        f"{locate.cache_dir(source.name)} (set ${locate.CACHE_ENV} to move the cache)",
    ]
    folder = locate.find_or_fetch(source.name, data_dir, download,
                                  lambda d: probe(source, d), fetch, how_to)
    return Raw(*source.reader(folder), source.num_classes, 255.0)
