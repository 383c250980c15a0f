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

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("conversion", "data", "distributed", "integrations", "layers", "losses",
               "metrics", "models", "rules", "training")
_NAMES = {   # exported name -> the submodule that defines it
    **{name: "conversion" for name in ("Conversion", "after_epoch", "after_step",
                                       "conversion_of", "convert", "exact_gradients",
                                       "hook_optimizer", "plain_state_dict")},
    "Tap": "layers",
    "transport_report": "metrics", "set_targets": "rules",
    "LayerView": "views", "layer_views": "views",
}

__all__ = sorted([*_SUBMODULES, *_NAMES])


def __getattr__(name: str):
    """Submodules and their exports load on first use (PEP 562), so that ``biocredit``'s
    command line can answer a Ctrl-C that comes while torch is still importing."""
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
