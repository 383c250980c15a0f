"""The papers' experiments as named presets: ``biocredit reproduce NAME``."""

from .presets import PRESETS, Preset, preset

__all__ = ["PRESETS", "Preset", "preset"]
