"""Layers whose backward pass is a learning rule's, not back-propagation's, the taps where
direct rules' signals enter, and the swap that puts feedback layers into any model.

``convert`` and what goes with it (``Conversion``, ``conversion_of``, ``after_step``,
``after_epoch``, ``hook_optimizer``, ``exact_gradients``, ``plain_state_dict``) live in
:mod:`biocredit.conversion`, above the layers and the rules; their old names here still
work, resolved on first use.
"""

from .activation import SaturatedLinear
from .direct import DirectEngine, TapRecord, block_matrices, engine_of, project
from .feedback_attention import FeedbackMultiheadAttention
from .feedback_conv import ConvFeedbackFunction, FeedbackConv1d, FeedbackConv2d
from .feedback_layer import FeedbackLayer, feedback_layers
from .feedback_linear import FeedbackLinear, FeedbackTransposedLinear, LinearFeedbackFunction
from .locally_connected import LocallyConnected2d, UntiedFeedbackFunction
from .swap import feedback_version
from .tap import Tap

# Names that moved to biocredit.conversion (importing it here would make a circle:
# conversion builds on the rules, which build on the layers).
_CONVERSION = ("Conversion", "after_epoch", "after_step", "conversion_of", "convert",
               "exact_gradients", "hook_optimizer", "plain_state_dict")

__all__ = ["ConvFeedbackFunction", "DirectEngine", "FeedbackConv1d", "FeedbackConv2d",
           "FeedbackLayer", "FeedbackLinear", "FeedbackMultiheadAttention",
           "FeedbackTransposedLinear", "LinearFeedbackFunction", "LocallyConnected2d", "SaturatedLinear", "Tap", "TapRecord",
           "UntiedFeedbackFunction", "block_matrices", "engine_of", "feedback_layers",
           "feedback_version", "project"]


def __getattr__(name: str):
    """The names that moved to :mod:`biocredit.conversion`, from there (PEP 562)."""
    if name in _CONVERSION:
        from .. import conversion     # (on first use only: see _CONVERSION)
        return getattr(conversion, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
