"""Layers whose backward pass is a learning rule's, not back-propagation's, the taps where
direct rules' signals enter, and the converter that puts them into any model."""

from .activation import SaturatedLinear
from .convert import (Conversion, after_epoch, after_step, conversion_of, convert,
                      exact_gradients, feedback_version, hook_optimizer, plain_state_dict)
from .direct import DirectEngine, TapRecord, block_matrices, engine_of, project
from .feedback_attention import FeedbackMultiheadAttention
from .feedback_conv import ConvFeedbackFunction, FeedbackConv1d, FeedbackConv2d
from .feedback_layer import FeedbackLayer, feedback_layers
from .feedback_linear import FeedbackLinear, LinearFeedbackFunction
from .locally_connected import LocallyConnected2d, UntiedFeedbackFunction
from .tap import Tap

__all__ = ["ConvFeedbackFunction", "Conversion", "DirectEngine",
           "FeedbackConv1d", "FeedbackConv2d", "FeedbackMultiheadAttention",
           "FeedbackLayer", "FeedbackLinear", "LinearFeedbackFunction", "LocallyConnected2d",
           "SaturatedLinear", "Tap", "TapRecord", "UntiedFeedbackFunction", "after_epoch",
           "after_step", "block_matrices", "conversion_of", "convert", "engine_of", "exact_gradients", "feedback_layers",
           "feedback_version", "hook_optimizer", "plain_state_dict", "project"]
