"""Layers whose backward pass is a learning rule's, not back-propagation's."""

from .direct_feedback import DirectFeedback
from .feedback_conv import Conv2dFeedbackFunction, FeedbackConv2d
from .feedback_layer import FeedbackLayer, feedback_layers
from .feedback_linear import FeedbackLinear, LinearFeedbackFunction, exact_gradients
from .locally_connected import LocallyConnected2d, UntiedFeedbackFunction

__all__ = ["Conv2dFeedbackFunction", "DirectFeedback", "FeedbackConv2d", "FeedbackLayer",
           "FeedbackLinear", "LinearFeedbackFunction", "LocallyConnected2d",
           "UntiedFeedbackFunction", "exact_gradients", "feedback_layers"]
