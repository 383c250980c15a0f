"""Diagnostics: pure functions over tensors."""

from .alignment import angle_deg, update_alignment
from .feedback import correlation, feedback_alignment, norm_ratio

__all__ = ["angle_deg", "correlation", "feedback_alignment", "norm_ratio", "update_alignment"]
