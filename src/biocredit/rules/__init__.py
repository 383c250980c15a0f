"""The learning rules: ``available()`` lists them, ``create(name, **options)`` builds one.

Every rule is one file in this package; adding one means writing the file and listing its
class in the ``register(...)`` call below (see :mod:`biocredit.rules.registry`).
"""

from __future__ import annotations

from .base import Rule, set_targets
from .bp import Backprop
from .brsf import BatchRandomSignFeedback
from .dfa import DirectFeedbackAlignment
from .direct_feedback import DirectFeedbackRule
from .dkp import DirectKolenPollack
from .fa import FeedbackAlignment
from .frfb import FixedRandomFeedback
from .frsf import FixedRandomSignFeedback
from .general import GeneralFeedback
from .ifa import IndirectFeedbackAlignment
from .kp import KolenPollack
from .layer_feedback import LayerFeedbackRule
from .node_perturbation import NodePerturbation
from .registry import available, create, get, register
from .shallow import ShallowLearning
from .urfb import UpdatedRandomFeedback
from .usf import UniformSignFeedback

register(Backprop, FeedbackAlignment, DirectFeedbackAlignment, IndirectFeedbackAlignment,
         KolenPollack, FixedRandomFeedback, UpdatedRandomFeedback, DirectKolenPollack,
         UniformSignFeedback, BatchRandomSignFeedback, FixedRandomSignFeedback, GeneralFeedback,
         ShallowLearning, NodePerturbation)

__all__ = ["DirectFeedbackRule", "LayerFeedbackRule", "Rule", "available", "create", "get",
           "set_targets"]
