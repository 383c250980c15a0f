"""biocredit: training neural networks without weight transport.

Convert any PyTorch model for a learning rule and train it in your own loop with a plain
``loss.backward()``; the model you pass is never changed::

    import torch, biocredit
    model = biocredit.convert(my_model, "fa")           # or "kp", "dfa", ... (rules.available())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    biocredit.hook_optimizer(model, opt)                 # learned feedback updates after each step

    for x, y in batches:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()                                  # the rule's updates, not BP's
        opt.step()
    biocredit.after_epoch(model)                         # per-epoch schedules (DKP)

Direct rules (dfa, dkp, ifa, general) send the output error to taps: put ``biocredit.Tap()``
after hidden activations in your model, or convert with ``taps=[...]`` (an ``nn.Sequential``
gets a tap after each activation by default). ``biocredit.transport_report(model, x)`` says,
for every parameter, whether its update is free of weight transport.

The built-in models (``biocredit.models.create("mlp:2x800:tanh", ...)``) are ordinary
modules that convert the same way.
"""

from . import data, layers, losses, metrics, models, rules, training
from .layers import (Conversion, Tap, after_epoch, after_step, conversion_of, convert,
                     exact_gradients, hook_optimizer, plain_state_dict)
from .metrics import transport_report
from .rules import set_targets
from .views import LayerView, layer_views

__version__ = "0.1.0"

__all__ = ["Conversion", "LayerView", "Tap", "after_epoch", "after_step", "conversion_of",
           "convert", "data", "exact_gradients", "hook_optimizer", "layer_views", "layers",
           "losses", "metrics", "models", "plain_state_dict", "rules", "set_targets",
           "training", "transport_report"]
