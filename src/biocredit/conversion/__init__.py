"""``convert(model, rule)``: any ``nn.Module``, trained by a rule through a plain
``loss.backward()``; and what a training loop calls on the converted model.

The conversion sits above the layers and the rules: :func:`convert` copies the model and
hands the copy to the rule's ``install``, which its mechanism implements (layer feedback
swaps the weight layers for feedback versions, see
:mod:`biocredit.rules.layer_feedback`; direct feedback drives the model's taps, see
:mod:`biocredit.rules.direct_feedback`). The model passed in is never changed; the copy's
``biocredit_conversion`` attribute (a :class:`Conversion`) says what was done.
"""

from .converter import convert
from .record import Conversion, conversion_of
from .training import after_epoch, after_step, exact_gradients, hook_optimizer, plain_state_dict

__all__ = ["Conversion", "after_epoch", "after_step", "conversion_of", "convert",
           "exact_gradients", "hook_optimizer", "plain_state_dict"]
