"""Character-level text for language models: ``python-reference`` and ``text:PATH``.

``python-reference`` is the Python Language Reference as CPython ships it
(``pydoc_data.topics``, the pages ``help("if")`` shows: about 465,000 characters, 103
distinct); every CPython has it, nothing is downloaded. ``text:PATH`` reads any UTF-8 text
file (a file that is not UTF-8 is an error naming the first bad byte). The characters of the whole text, sorted, are the
vocabulary (``Dataset.num_classes`` of them; ``Dataset.chars``); the first 90% of the text
trains, the last 10% is the test split (the held-out text ``examples/char_lm.py`` calls
validation). Each split is cut into consecutive non-overlapping windows of :data:`CONTEXT`
characters: inputs ``(N, T)`` character ids, targets ``(N, T)`` the next character's ids.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .dataset import Dataset, split_validation, validation_count
from .errors import CorruptDatasetError, DatasetNotFoundError

PYTHON_REFERENCE = "python-reference"
TEXT_PREFIX = "text:"
CONTEXT = 64            # characters per window
HELD_OUT = 0.1          # the last tenth of the text: the test split


def is_text(name: str) -> bool:
    """Whether ``name`` names a text data set (``python-reference``, ``text:PATH``)."""
    name = str(name).strip()
    return name.lower().replace("_", "-") == PYTHON_REFERENCE or text_path(name) is not None


def text_path(name: str) -> str | None:
    """The ``PATH`` of ``text:PATH`` (the prefix in any case, the path stripped), else None."""
    name = str(name).strip()
    return name[len(TEXT_PREFIX):].strip() if name.lower().startswith(TEXT_PREFIX) else None


def python_reference() -> str:
    """The Python Language Reference's topics as CPython ships them (``pydoc_data``)."""
    from pydoc_data.topics import topics
    return "\n\n".join(topics[key] for key in sorted(topics))


def read_text(name: str) -> str:
    """The text ``name`` names; a missing or unreadable file is a one-line
    :class:`DatasetNotFoundError` naming its path."""
    given = text_path(name)
    if given is None:
        return python_reference()
    if not given:
        raise ValueError(f"{TEXT_PREFIX} needs the path of a UTF-8 text file: {TEXT_PREFIX}PATH")
    path = Path(given).expanduser()
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "no such file"
        raise DatasetNotFoundError(f"text file {str(path)!r}: {what} (--data text:PATH reads "
                                   "a UTF-8 text file)", [path.parent])
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DatasetNotFoundError(f"text file {str(path)!r}: cannot be read "
                                   f"({err.strerror})", [path.parent]) from None
    try:
        return raw.decode("utf-8-sig")           # (a byte-order mark is not text)
    except UnicodeDecodeError as err:
        raise CorruptDatasetError(
            f"text file {str(path)!r} is not UTF-8 (byte 0x{raw[err.start]:02x} at offset "
            f"{err.start}); convert it first, e.g. iconv -f latin1 -t utf-8") from None


def windows(ids: torch.Tensor, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Consecutive non-overlapping windows of ``ids``: inputs and next-character targets."""
    count = (len(ids) - 1) // context
    return (ids[:count * context].view(count, context),
            ids[1:count * context + 1].view(count, context))


def load_text(name: str, *, validation: float | int = 0, split_seed: int = 0,
              train_size: int | None = None, test_size: int | None = None,
              device: torch.device | str = "cpu", context: int = CONTEXT) -> Dataset:
    """The text ``name`` names as a :class:`Dataset` of windows (see the module doc);
    ``validation`` holds out training windows as :func:`~.registry.load` does."""
    text = read_text(name)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = int(len(ids) * (1 - HELD_OUT))
    train_x, train_y = windows(ids[:cut], context)
    test_x, test_y = windows(ids[cut:], context)
    if len(train_x) < 1 or len(test_x) < 1:
        least = math.ceil((context + 1) / HELD_OUT)
        raise ValueError(f"{name}: {len(text)} characters are too few for windows of "
                         f"{context} characters in both the first 90% and the last 10% "
                         f"(about {least:,} at least)")
    train_x, train_y = train_x[:train_size], train_y[:train_size]
    test_x, test_y = test_x[:test_size], test_y[:test_size]
    val_x = val_y = None
    count = validation_count(validation, len(train_x))
    if count:
        train_x, train_y, val_x, val_y = split_validation(train_x, train_y, count, split_seed)
    key = PYTHON_REFERENCE if text_path(name) is None else f"{TEXT_PREFIX}{text_path(name)}"
    dataset = Dataset(key, train_x, train_y, test_x, test_y, len(chars), val_x, val_y,
                      chars="".join(chars))
    return dataset.to(device)


def unigram_bits(dataset: Dataset) -> float:
    """Bits per character on the test split of the unigram baseline: each character's
    frequency in the training targets (add-one smoothed), the context ignored."""
    counts = torch.bincount(dataset.train_y.flatten().cpu(),
                            minlength=dataset.num_classes).double() + 1
    logp = (counts / counts.sum()).log()
    return -logp[dataset.test_y.flatten().cpu()].mean().item() / math.log(2)
