"""Parser for the IDX format of MNIST and Fashion-MNIST (plain or gzipped).

Layout: a 4-byte magic ``0x00 0x00 <type code> <number of dims>``, then one big-endian
uint32 per dimension, then the values, row-major and big-endian.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .errors import CorruptDatasetError

IMAGES_MAGIC = 0x00000803  # uint8, 3 dims: N x H x W
LABELS_MAGIC = 0x00000801  # uint8, 1 dim: N

_TYPE_CODES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when the name ends in ``.gz``."""
    raw = Path(path).read_bytes()
    if not str(path).endswith(".gz"):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise CorruptDatasetError(f"{path}: bad gzip data ({err})") from err


def parse_idx(data: bytes, source: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Decode IDX bytes into an array whose shape is the header's dimensions.

    ``source`` names the file in error messages. With ``expected_magic`` any other magic
    number is rejected.
    """
    if len(data) < 4:
        raise CorruptDatasetError(f"{source}: {len(data)} bytes is too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    zero, code, ndim = magic >> 16, (magic >> 8) & 0xFF, magic & 0xFF
    if expected_magic is not None and magic != expected_magic:
        raise CorruptDatasetError(
            f"{source}: bad magic number 0x{magic:08X} (expected 0x{expected_magic:08X})"
        )
    if zero != 0 or code not in _TYPE_CODES or ndim == 0:
        raise CorruptDatasetError(f"{source}: bad magic number 0x{magic:08X} (not an IDX file)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptDatasetError(
            f"{source}: truncated header ({len(data)} bytes, {ndim} dimensions need {header})"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _TYPE_CODES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        shape = " x ".join(map(str, dims))
        raise CorruptDatasetError(
            f"{source}: size does not match header: a {shape} array of {dtype.itemsize}-byte "
            f"values needs {expected} bytes, the file has {len(data)}"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return values.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) from disk; see :func:`parse_idx`."""
    return parse_idx(read_bytes(Path(path)), path, expected_magic)
