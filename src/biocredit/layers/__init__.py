"""Layers whose backward pass is a learning rule's, not back-propagation's."""

from .direct_feedback import DirectFeedback
from .feedback_linear import FeedbackLinear, LinearFeedbackFunction, exact_gradients

__all__ = ["DirectFeedback", "FeedbackLinear", "LinearFeedbackFunction", "exact_gradients"]
