"""What defines a run: :class:`RunConfig` (``config.json`` is one, as a dict), its checks,
and the device it names."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import data as datasets
from .. import distributed, losses, models, rules
from ..optimizers import OPTIMIZERS


TASKS = ("classify", "autoencoder", "regress")


def fraction_or_count(text: str) -> float | int:
    """``--validation``: a whole number is a count of examples (``10``; ``0``: none),
    anything else a fraction in [0, 1) (``0.1``); ``1.0`` is neither (it was one example)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:          # (nan too)
        count = f" ({int(value)})" if math.isfinite(value) and value.is_integer() else ""
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a fraction in [0, 1) (e.g. 0.1) nor a count of examples, "
            f"which is a whole number written without a point{count}")
    return value


def names(text: str) -> list[str]:
    """A comma-separated list of names (``--taps``, ``--freeze``)."""
    return [t for t in text.split(",") if t]


def option(default: Any = dataclasses.MISSING, help: str | Callable[[], str] = "", *,
           factory: Callable[[], Any] | None = None, **argparse_options) -> Any:
    """A :class:`RunConfig` field that is also an option of ``biocredit train`` and
    ``compare``, ``--NAME`` (underscores as dashes), declared here once: its default, its
    ``help`` (a callable: text made when the parser is), and argparse's ``type``,
    ``choices``, ``metavar`` or ``action``. See :func:`options`."""
    metadata = {"option": {"help": help, **argparse_options}}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunConfig:
    """Everything that defines a run; ``config.json`` is this, as a dict. A field made with
    :func:`option` is also a command-line option."""

    rule: str = "dfa"
    label: str = ""  # how tables and reports name the run (default: the rule)
    rule_options: dict[str, Any] = field(default_factory=dict)
    model: str = option(
        "mlp:2x800:tanh", "model spec, e.g. mlp:2x800:tanh (DEPTHxWIDTH:ACTIVATION), or your "
        "own model: FILE.py:FUNCTION or package.module:FUNCTION, called with the input shape "
        "and the number of classes")
    model_options: dict[str, Any] = field(default_factory=dict)
    taps: list[str] = option(
        factory=list, type=names,
        help="direct rules in your own model (--model FILE.py:FUNCTION): comma-separated "
             "module names or glob patterns after which the error enters (besides any "
             "biocredit.Tap() in it)")
    data: str = option("digits", lambda: f"one of: {', '.join(datasets.available())}")
    data_dir: str | None = option(
        None, "folder holding the dataset files (or a subfolder named after the data set); "
              "when given, the only place looked in")
    download: bool = True
    normalize: str = option("scale", choices=("scale", "standardize"))
    validation: float = option(
        0.0, "hold out this fraction of the training set (0.1) or this many examples (a whole "
             "number: 600); 0: none", type=fraction_or_count)
    train_size: int | None = option(   # (None: all; on the command line 0 too)
        None, "use only the first N training examples (quick runs; 0: all)", type=int,
        metavar="N")
    test_size: int | None = option(
        None, "use only the first N test examples (0: all)", type=int, metavar="N")
    task: str = option(
        "classify", "classify; autoencoder (reconstruct the input; loss reconstruction); "
                    "regress (teacher data sets; loss mse, error NSE)", choices=TASKS)
    loss: str = "ce"
    loss_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = option(10, type=int)
    stop_train_error: float = option(
        0.0, "stop once the train error is at most this (Nøkland: 0.0001)", type=float,
        metavar="FRACTION")
    freeze: list[str] = option(
        factory=list, type=names,
        help="comma-separated parameter names or globs kept fixed, e.g. blocks.0")
    init_from: str | None = option(
        None, "start from the weights of another run's model.pt (any rule); {seed} in the "
              "path is the run's seed", metavar="MODEL_PT")
    adversarial: float = option(
        0.0, "train on fast-gradient-sign adversarial examples x + EPS sign(∇x)", type=float,
        metavar="EPS")
    batch_size: int = option(64, type=int)
    optimizer: str = option("adam", choices=OPTIMIZERS)
    lr: float = option(1e-3, type=float)
    momentum: float = option(0.0, type=float)
    weight_decay: float = option(0.0, type=float)
    seed: int = option(0, type=int)
    device: str = option(
        "auto", "cpu, cuda, cuda:N, mps or auto (CUDA when available, else the CPU)")
    probe_size: int = option(
        256, "examples in the fixed batch used for the alignment angles", type=int)
    log_every_steps: int = option(
        0, "also log the probe metrics every K steps to steps.jsonl (0: off)", type=int,
        metavar="K")
    divergence_factor: float = option(
        100.0, "stop as diverged when the training loss exceeds F times the initial loss (at "
               "least F; 0: only NaN/inf stops a run)", type=float, metavar="F")
    amp: bool = option(
        False, "mixed precision: forward and backward of each training step under bf16 "
               "autocast (weights, optimizer and feedback state stay float32)",
        action="store_true")
    compile: bool = option(
        False, "torch.compile the converted model for the training steps (needs a C++ "
               "compiler on the CPU; the first steps pay the compilation)", action="store_true")
    train_error: str = option(
        "full", "full: re-evaluate the whole training set after each epoch (a forward pass "
                "over it); running: the errors of the epoch's own batches as they were "
                "trained on (free)", choices=("full", "running"))

    def validate(self) -> None:
        """Fail early, with a clear message, on names and values that cannot work."""
        rule = rules.create(self.rule, **self.rule_options)
        if self.compile:
            rule.check_compiles()
        losses.create(self.loss, **self.loss_options)
        if self.train_error not in ("full", "running"):
            raise ValueError(f"train_error is full or running; got {self.train_error!r}")
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose from {', '.join(TASKS)}")
        if (self.task == "autoencoder") != (self.loss == "reconstruction"):
            raise ValueError("the autoencoder task goes with the reconstruction loss "
                             f"(and only it); got task {self.task!r} with loss {self.loss!r}")
        if (self.task == "regress") != (self.loss == "mse"):
            raise ValueError("the regress task goes with the mse loss (and only it); got "
                             f"task {self.task!r} with loss {self.loss!r}")
        if self.data not in datasets.available():
            raise ValueError(f"unknown dataset {self.data!r}; available datasets: "
                             f"{', '.join(datasets.available())}")
        for name in ("epochs", "batch_size", "probe_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}")
        if self.log_every_steps < 0:
            raise ValueError("log_every_steps must be 0 (off) or a positive step count; got "
                             f"{self.log_every_steps}")
        if not 0.0 <= self.stop_train_error < 1.0 or not 0.0 <= self.adversarial < math.inf:
            raise ValueError("stop_train_error is a fraction in [0, 1) and adversarial an "
                             f"ε >= 0; got {self.stop_train_error} and {self.adversarial}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ValueError(f"the learning rate must be positive and finite; got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum is in [0, 1); got {self.momentum}")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay is >= 0 and finite; got {self.weight_decay}")
        if not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"a seed is a whole number in [0, 2^32); got {self.seed}")
        if not self.divergence_factor >= 0:
            raise ValueError("divergence_factor is 0 (off) or a factor > 0 over the initial "
                             f"loss; got {self.divergence_factor}")
        models.check_taps(self.model, self.taps)
        resolve_device(self.device)


    @classmethod
    def from_dict(cls, values: dict, source: str = "the config") -> "RunConfig":
        """A config from a ``config.json`` dict (keys this version does not know are
        dropped); a value of the wrong type is an error naming ``source`` and the key."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in fields}
        for key, value in kept.items():
            kind = str(fields[key].type)
            check = _TYPE_CHECKS.get(kind.removesuffix(" | None"))
            if check is None or (value is None and kind.endswith(" | None")):
                continue
            if not check[0](value):
                raise ValueError(f"{source}: {key} must be {check[1]}; got {value!r}")
        return cls(**kept)


def run_options() -> dict[str, dict]:
    """The command-line options declared on :class:`RunConfig`'s fields (with
    :func:`option`), in field order: per field, argparse's keywords, its default
    included."""
    found = {}
    for f in dataclasses.fields(RunConfig):
        if "option" not in f.metadata:
            continue
        keywords = dict(f.metadata["option"])
        if callable(keywords["help"]):
            keywords["help"] = keywords["help"]()
        if not keywords["help"]:
            del keywords["help"]
        keywords["default"] = f.default if f.default_factory is dataclasses.MISSING \
            else f.default_factory()
        found[f.name] = keywords
    return found


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TYPE_CHECKS = {    # a RunConfig field's annotation -> (check, what it must be)
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "float": (_is_number, "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "dict[str, Any]": (lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
                       "an object"),
    "list[str]": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                  "a list of strings"),
}



def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N``, ``mps`` (Apple GPUs, where torch has them) or ``auto``
    (CUDA when available)."""
    name = distributed.local_device(name)       # under torchrun: this rank's own GPU
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for, but this torch build sees no "
                             "CUDA GPU; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: there are only {torch.cuda.device_count()} "
                             "CUDA devices (cuda:0 …)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for, but this machine has no Apple GPU "
                         "(MPS); use --device cpu")
    return device
