"""Data sets held whole as tensors on a device.

>>> from biocredit.data import load
>>> ds = load("digits", validation=0.1)
>>> ds.train_x.shape, ds.input_shape, ds.num_classes
(torch.Size([1293, 1, 8, 8]), (1, 8, 8), 10)
"""

from .dataset import Dataset
from .errors import ChecksumMismatchError, CorruptDatasetError, DatasetNotFoundError
from .registry import available, known, load

__all__ = [
    "ChecksumMismatchError",
    "CorruptDatasetError",
    "Dataset",
    "DatasetNotFoundError",
    "available",
    "known",
    "load",
]
