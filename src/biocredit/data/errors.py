"""Exceptions raised while finding, fetching or reading a data set."""

from __future__ import annotations

from pathlib import Path


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files are in none of the searched places and could not be fetched.

    ``searched`` holds every directory that was looked in, in search order.
    """

    def __init__(self, message: str, searched: list[Path] | tuple[Path, ...] = ()):
        super().__init__(message)
        self.searched = list(searched)

    def __str__(self) -> str:  # FileNotFoundError's own __str__ would add "[Errno ...]" clutter
        return str(self.args[0])


class CorruptDatasetError(ValueError):
    """A data file exists but its content is not what the format promises."""


class ChecksumMismatchError(CorruptDatasetError):
    """A downloaded file's MD5 differs from the published one."""
