"""The rule registry: ``available()`` lists the rules, ``create(name, **options)`` builds one.

Every rule is one file in this package; adding one means writing the file and listing its
class in ``_RULES`` below.
"""

from __future__ import annotations

from .base import DirectFeedbackRule, LayerFeedbackRule, Rule, set_targets
from .bp import Backprop
from .brsf import BatchRandomSignFeedback
from .dfa import DirectFeedbackAlignment
from .dkp import DirectKolenPollack
from .fa import FeedbackAlignment
from .frfb import FixedRandomFeedback
from .frsf import FixedRandomSignFeedback
from .general import GeneralFeedback
from .ifa import IndirectFeedbackAlignment
from .kp import KolenPollack
from .node_perturbation import NodePerturbation
from .shallow import ShallowLearning
from .urfb import UpdatedRandomFeedback
from .usf import UniformSignFeedback

_RULES: dict[str, type[Rule]] = {
    cls.name: cls
    for cls in (Backprop, FeedbackAlignment, DirectFeedbackAlignment, IndirectFeedbackAlignment,
                KolenPollack, FixedRandomFeedback, UpdatedRandomFeedback, DirectKolenPollack,
                UniformSignFeedback, BatchRandomSignFeedback, FixedRandomSignFeedback,
                GeneralFeedback, ShallowLearning, NodePerturbation)
}


def available() -> list[str]:
    """The registered rule names."""
    return sorted(_RULES)


def get(name: str) -> type[Rule]:
    """The class registered as ``name``."""
    if name not in _RULES:
        raise ValueError(f"unknown rule {name!r}; available rules: {', '.join(available())}")
    return _RULES[name]


def create(name: str, **options) -> Rule:
    """Build rule ``name`` with ``options`` (unknown options raise, listing the valid ones)."""
    return get(name)(**options)


__all__ = ["DirectFeedbackRule", "LayerFeedbackRule", "Rule", "available", "create", "get",
           "set_targets"]
