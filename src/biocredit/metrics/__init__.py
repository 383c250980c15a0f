"""Diagnostics: pure functions over tensors."""

from .alignment import angle_deg, update_alignment

__all__ = ["angle_deg", "update_alignment"]
