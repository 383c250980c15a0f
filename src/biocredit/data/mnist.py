"""MNIST and Fashion-MNIST: four IDX files, found locally or downloaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import download as _download
from . import locate
from .dataset import Raw
from .errors import CorruptDatasetError
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class IdxSource:
    name: str
    base_url: str
    md5: dict[str, str]  # of the published .gz files, keyed by the name without .gz
    install_hint: str | None = None


FASHION_MNIST = IdxSource(
    "fashion-mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    {"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
     "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
     "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
     "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"},
    "apt-get install -y dataset-fashion-mnist   (Debian/Ubuntu: puts the four files in "
    "/usr/share/datasets/fashion-mnist), or",
)
# The Debian package re-compressed the files (no file name in the gzip header), so its .gz
# MD5s differ from the published ones above; the uncompressed bytes are the same. Local
# files are therefore checked by structure (magic, dimensions, size), not by checksum.

MNIST = IdxSource(
    "mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/",
    {"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
     "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
     "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
     "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"},
)


def probe(folder: Path) -> tuple[dict[str, Path] | None, str]:
    """The four files in ``folder`` (plain preferred over .gz), or why not."""
    if not folder.is_dir():
        return None, "a file, not a folder" if folder.exists() else "no such folder"
    found, missing = {}, []
    for stem in FILES:
        hit = next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None)
        if hit is None:
            missing.append(f"{stem}[.gz]")
        else:
            found[stem] = hit
    return (None, "missing " + ", ".join(missing)) if missing else (found, "")


def read_split(images_path: Path, labels_path: Path, num_classes: int = 10):
    """Images N x 1 x H x W uint8 and their labels, checked against each other."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(labels) != len(images):
        raise CorruptDatasetError(f"{labels_path}: label count {len(labels)} != image count "
                                  f"{len(images)} in {images_path}")
    if len(labels) and labels.max() >= num_classes:
        raise CorruptDatasetError(f"{labels_path}: label {labels.max()} is out of range "
                                  f"0..{num_classes - 1}")
    return images[:, None], labels


def load_idx_raw(source: IdxSource, data_dir=None, download: bool = True) -> Raw:
    def fetch(cache: Path) -> None:
        for stem, md5 in source.md5.items():
            if not any((cache / n).is_file() for n in (stem, f"{stem}.gz")):
                _download.download_file(f"{source.base_url}{stem}.gz", cache / f"{stem}.gz", md5)

    how_to = [source.install_hint] if source.install_hint else []
    how_to += [
        f"put {', '.join(FILES)} (each plain or .gz) in a folder DIR and pass --data-dir DIR "
        "(data_dir=DIR), or",
        f"be online with download=True: they are fetched from {source.base_url} into "
        f"{locate.cache_dir(source.name)} (set ${locate.CACHE_ENV} to move the cache)",
    ]
    files = locate.find_or_fetch(source.name, data_dir, download, probe, fetch, how_to)
    train_x, train_y = read_split(files[FILES[0]], files[FILES[1]])
    test_x, test_y = read_split(files[FILES[2]], files[FILES[3]])
    return Raw(train_x, train_y, test_x, test_y, 10, 255.0)
