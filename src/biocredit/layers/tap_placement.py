"""Where a direct rule's signals enter a model: its :class:`Tap` modules, and taps placed
after named modules (or modules of given types) by forward hooks, the model's ``forward``
untouched."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import torch
from torch import nn

from .activation import SaturatedLinear
from .direct import DirectEngine, no_taps
from .swap import check_patterns, feedback_version
from .tap import Tap

# Activation modules after which an nn.Sequential gets its default taps.
ACTIVATIONS = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.LeakyReLU,
               nn.Hardtanh, nn.Softplus, nn.Mish, nn.SELU, nn.CELU, nn.PReLU, nn.Softsign,
               nn.Tanhshrink, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.LogSigmoid,
               SaturatedLinear)


def place_taps(root: nn.Module, engine: DirectEngine, taps: Sequence[str | type] | None
               ) -> list[str]:
    """Connect ``root``'s enabled :class:`Tap` modules to ``engine``, place a tap after every
    module that ``taps`` names (names, glob patterns or module types; default for an
    ``nn.Sequential`` without taps: after each activation module) and hook ``engine`` to
    the forward pass. Returns where the taps are."""
    placed = []
    for name, module in root.named_modules():
        if isinstance(module, Tap) and module.enabled:
            module.engine = engine
            placed.append(name)
    last = root[-1] if isinstance(root, nn.Sequential) and len(root) else None
    if taps is None and not placed and last is not None:
        taps = list(ACTIVATIONS)               # not after the output itself
    for name, module in root.named_modules():
        if not taps or isinstance(module, Tap):
            continue
        named = any(isinstance(t, str) and fnmatch.fnmatchcase(name, t) for t in taps)
        if named or any(isinstance(t, type) and isinstance(module, t) for t in taps):
            if module is last:
                if not named:
                    continue                   # a type of the hidden layers' activations
                raise ValueError(
                    f"taps: {name!r} is the last module of this nn.Sequential, its output: "
                    f"a tap there would give the output layer a random projection of the "
                    f"error instead of the error ({engine.rule.name} sends the error to "
                    "taps after hidden layers); tap the hidden layers only")
            tap = Tap()
            tap.engine = engine
            module.register_forward_hook(_TapAfter(tap))
            placed.append(f"after {name}")
    for t in taps or ():
        if isinstance(t, str):
            check_patterns(root, [t], "taps")
    if not placed:
        raise ValueError(no_taps(engine.rule.name, f"this {type(root).__name__} has no taps"))
    _hook_engine(root, engine)
    return placed


def _hook_engine(root: nn.Module, engine: DirectEngine) -> None:
    """The forward hooks through which ``engine`` follows a forward pass."""
    for module in root.modules():      # (before engine.end: the root's own count first)
        if not isinstance(module, Tap) and any(True for _ in module.parameters(recurse=False)):
            module.register_forward_hook(engine.parameterised_output, prepend=True)
    root.register_forward_pre_hook(engine.begin, with_kwargs=True)
    root.register_forward_hook(engine.end, with_kwargs=True)
    root.register_load_state_dict_pre_hook(engine.load_pre_hook)
    if engine.point:                   # named by the user: join the logits where made
        root.get_submodule(engine.point).register_forward_hook(engine.capture)
    if engine.rule.needs_preactivation:
        for module in root.modules():
            if feedback_version(module) is not None:
                module.register_forward_hook(engine.weight_output)
            elif isinstance(module, ACTIVATIONS):
                module.register_forward_hook(engine.activation_output, prepend=True)


class _TapAfter:
    """Forward hook passing a module's output through ``tap`` (an object, not a closure, so
    a deep copy of the model gets its own tap)."""

    def __init__(self, tap: Tap):
        self.tap = tap

    def __call__(self, module, args, output):
        if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
            return (self.tap(output[0]), *output[1:])   # e.g. a transformer layer's tuple
        return self.tap(output)
