"""Models a user brings: ``--model FILE.py:FUNCTION`` or ``--model package.module:FUNCTION``.

``FUNCTION(input_shape, num_classes)`` is called with the shape of one example (a tuple
without the batch dimension, e.g. ``(1, 28, 28)``) and the number of outputs, and returns any
``torch.nn.Module`` whose output for a batch is ``batch × num_classes``. Direct rules need taps
in it (``biocredit.Tap()`` in its forward, or ``--taps`` names on the command line).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn


def is_user_spec(spec: str) -> bool:
    """Whether ``spec`` names a user's builder (``FILE.py:FUNCTION``, ``pkg.mod:FUNCTION``;
    a module's name is dotted identifiers, so ``mlp:1.5x800:tanh`` is not one)."""
    source, sep, function = spec.rpartition(":")
    if not (sep and function.isidentifier()):
        return False
    return source.endswith(".py") or "/" in source or \
        ("." in source and all(part.isidentifier() for part in source.split(".")))


def check_user_file(spec: str) -> None:
    """Refuse a model file named without the function that builds the model."""
    if spec.endswith(".py") or (":" not in spec and "/" in spec):
        raise ValueError(f"`model={spec}`: name the function in it that builds the model, "
                         f"as {spec}:FUNCTION (called with the input shape and the number of "
                         "classes)")


def build_user_model(spec: str, input_shape: Sequence[int], num_classes: int,
                     **options) -> nn.Module:
    """Import the builder ``spec`` names and call it (see the module doc)."""
    if options:
        raise ValueError(f"{', '.join(sorted(options))} are options of the built-in models; "
                         f"{spec} builds its own model")
    source, _, function = spec.rpartition(":")
    module = _load(source)
    builder = getattr(module, function, None)
    if not callable(builder):
        names = [n for n in dir(module) if not n.startswith("_") and
                 callable(getattr(module, n))]
        raise ValueError(f"{source} has no function {function!r}; it defines: "
                         f"{', '.join(names) or 'nothing callable'}")
    from ..interrupt import at_once
    with at_once():             # a signal while the user's code runs stops it now
        model = builder(tuple(input_shape), num_classes)
        if not isinstance(model, nn.Module):
            raise ValueError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module")
        check_outputs(model, spec, input_shape, num_classes)
    return model


def check_outputs(model: nn.Module, spec: str, input_shape: Sequence[int],
                  num_classes: int) -> None:
    """A batch of two zero inputs (in eval mode, without gradients, random state kept) must
    give ``2 × num_classes`` outputs. A model that cannot take such inputs (token ids, say)
    is left to fail, or not, on the real data."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            out = model(torch.zeros(2, *input_shape))
    except Exception:
        return
    finally:
        model.train(was_training)
    shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
    if shape != (2, num_classes):
        raise ValueError(f"{spec} gives outputs of shape {shape} for a batch of 2 inputs of "
                         f"shape {tuple(input_shape)}; it must give (2, {num_classes})")


def _load(source: str):
    if source.endswith(".py") or "/" in source:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"model file {source} not found")
        name = f"biocredit_user_model_{abs(hash(path.resolve()))}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as err:
        raise ValueError(f"cannot import {source!r} for `model` ({err}); give a file path "
                         "ending in .py or an importable module") from None
