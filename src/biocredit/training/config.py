"""What defines a run: :class:`RunConfig` (``config.json`` is one, as a dict), its checks,
and the device it names. Each run option is declared here once, on its field (its default,
help, type and valid range); the command line's options are generated from it
(:func:`run_options`)."""

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
LOSS_OF_TASK = {"autoencoder": "reconstruction", "regress": "mse"}   # the others: ce


def fraction_or_count(text: str) -> float | int:
    """``validation``: a whole number is a count of examples (``10``; ``0``: none),
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


def count_or_all(text: str) -> int | None:
    """``train_size``, ``test_size``: a number of examples; 0: all (``None``)."""
    return int(text) or None


count_or_all.__name__ = "int"       # (argparse's error names it: "invalid int value")


def names(text: str) -> list[str]:
    """A comma-separated list of names (``taps``, ``freeze``)."""
    return [t for t in text.split(",") if t]


Check = tuple[Callable[[Any], bool], str]   # a valid value's test, and what it must be


def option(default: Any = dataclasses.MISSING, help: str | Callable[[], str] = "", *,
           factory: Callable[[], Any] | None = None, valid: Check | None = None,
           flag: str | None = None, entries: dict[str, Entry] | None = None,
           given: Any = dataclasses.MISSING, **argparse_options) -> Any:
    """A :class:`RunConfig` field that is also a command-line option, ``--NAME``
    (underscores as dashes; ``flag``: another name), declared here once: its default, its
    ``help`` (a callable: text made when the parser is), the range of valid values
    (``valid``: a test and what the value must be, checked by :meth:`RunConfig.validate`)
    and argparse's ``type``, ``choices``, ``metavar`` or ``action``; ``given``: the
    command line's default where it differs (``None``: one the other options choose). A
    dict field's ``entries`` are options that each set one of its keys. See
    :func:`run_options`."""
    if given is not dataclasses.MISSING:
        argparse_options["default"] = given
    metadata = {"option": {"help": help, **argparse_options}, "valid": valid, "flag": flag,
                "entries": entries or {}}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class Entry:
    """An option that sets one key of a dict field (``--init``: ``model_options["init"]``):
    its default and argparse's keywords. The key is set when ``always``, or when the value
    differs from ``default``."""

    default: Any = None
    help: str = ""
    always: bool = False
    argparse: dict = field(default_factory=dict)


def entry(default: Any = None, help: str = "", *, always: bool = False, **argparse_options):
    return Entry(default, help, always, argparse_options)


@dataclass
class RunConfig:
    """Everything that defines a run; ``config.json`` is this, as a dict. A field made with
    :func:`option` is also a command-line option."""

    rule: str = "dfa"
    label: str = ""  # how tables and reports name the run (default: the rule)
    rule_options: dict[str, Any] = option(factory=dict, entries={  # (for the rules that have them)
        "feedback_density": entry(help="fraction of feedback connections kept (rules with "
                                       "feedback)", type=float),
        "feedback_init": entry(help="feedback matrices: uniform, gaussian, orthogonal, or "
                                    "b1..b7 (Flam-Shepherd's structured matrices)"),
        "strategy": entry(help="general rule: s1, s2 or s3 (Flam-Shepherd)"),
        "aux_errors": entry(False, "each hidden layer learns from its own auxiliary error "
                                   "(dfa, general)", action="store_true")})
    model: str = option(
        "mlp:2x800:tanh", "model spec, e.g. mlp:2x800:tanh (DEPTHxWIDTH:ACTIVATION), or your "
        "own model: FILE.py:FUNCTION or package.module:FUNCTION, called with the input shape "
        "and the number of classes")
    model_options: dict[str, Any] = option(factory=dict, entries={
        "init": entry("uniform", "forward weights: uniform ±1/√fan_in, xavier, or zero "
                                 "(Nøkland)", always=True, choices=models.INITS),
        "dropout_input": entry(0.0, "fraction of inputs dropped", always=True, type=float),
        "dropout_hidden": entry(0.0, "fraction of hidden units dropped", always=True,
                                type=float),
        "forward_density": entry(1.0, "fraction of forward connections kept (fixed random "
                                      "masks)", type=float),
        "inject_at": entry(help="where direct feedback enters a block: its output (after "
                                "pooling, as Nøkland) or its activation (before pooling, as "
                                "the DKP authors); default: the model's own",
                           choices=models.INJECTION_POINTS),
        "init_scale": entry(help="MLPs: draw the uniform init from U(-OMEGA, OMEGA) "
                                 "(Lillicrap's small-weight experiment)", type=float,
                            metavar="OMEGA")})
    taps: list[str] = option(
        factory=list, type=names,
        help="direct rules in your own model (--model FILE.py:FUNCTION): comma-separated "
             "module names or glob patterns after which the error enters (besides any "
             "biocredit.Tap() in it)")
    data: str = option("digits", lambda: f"one of: {', '.join(datasets.available())}; or "
                                         "text:PATH, any UTF-8 text file (character-level)")
    data_dir: str | None = option(
        None, "folder holding the dataset files (or a subfolder named after the data set); "
              "when given, the only place looked in")
    download: bool = option(True, "never download a missing dataset", flag="no-download",
                            action="store_false")
    normalize: str = option("scale", choices=("scale", "standardize"))
    validation: float = option(
        0.0, "hold out this fraction of the training set (0.1) or this many examples (a whole "
             "number: 600); 0: none", type=fraction_or_count)
    train_size: int | None = option(   # (None: all)
        None, "use only the first N training examples (quick runs; 0: all)", type=count_or_all,
        metavar="N")
    test_size: int | None = option(
        None, "use only the first N test examples (0: all)", type=count_or_all, metavar="N")
    task: str = option(
        "classify", "classify; autoencoder (reconstruct the input; loss reconstruction); "
                    "regress (teacher data sets; loss mse, error NSE)", choices=TASKS)
    loss: str = option("ce", lambda: f"one of: {', '.join(losses.available())} (default: ce, "
                                     "or reconstruction for autoencoders)", given=None)
    loss_options: dict[str, Any] = option(factory=dict, entries={
        "off_class_factor": entry(help="hinge loss: weight of the off-class terms (default 1)",
                                  type=float)})
    epochs: int = option(10, type=int, valid=(lambda v: v >= 1, "epochs must be at least 1"))
    stop_train_error: float = option(
        0.0, "stop once the train error is at most this (Nøkland: 0.0001)", type=float,
        metavar="FRACTION",
        valid=(lambda v: 0.0 <= v < 1.0, "stop_train_error is a fraction in [0, 1)"))
    freeze: list[str] = option(
        factory=list, type=names,
        help="comma-separated parameter names or globs kept fixed, e.g. blocks.0")
    init_from: str | None = option(
        None, "start from the weights of another run's model.pt (any rule); {seed} in the "
              "path is the run's seed", metavar="MODEL_PT")
    adversarial: float = option(
        0.0, "train on fast-gradient-sign adversarial examples x + EPS sign(∇x)", type=float,
        metavar="EPS", valid=(lambda v: 0.0 <= v < math.inf, "adversarial is an ε >= 0"))
    batch_size: int = option(64, type=int,
                             valid=(lambda v: v >= 1, "batch_size must be at least 1"))
    optimizer: str = option("adam", choices=OPTIMIZERS)
    lr: float = option(1e-3, type=float, valid=(lambda v: v > 0 and math.isfinite(v),
                                                "the learning rate must be positive and finite"))
    momentum: float = option(0.0, type=float,
                             valid=(lambda v: 0 <= v < 1, "momentum is in [0, 1)"))
    weight_decay: float = option(0.0, type=float, valid=(lambda v: 0 <= v < math.inf,
                                                         "weight_decay is >= 0 and finite"))
    seed: int = option(0, type=int, valid=(lambda v: 0 <= v < 2 ** 32,
                                           "a seed is a whole number in [0, 2^32)"))
    device: str = option(
        "auto", "cpu, cuda, cuda:N, mps or auto (CUDA when available, else the CPU)")
    probe_size: int = option(
        256, "examples in the fixed batch used for the alignment angles", type=int,
        valid=(lambda v: v >= 1, "probe_size must be at least 1"))
    log_every_steps: int = option(
        0, "also log the probe metrics every K steps to steps.jsonl (0: off)", type=int,
        metavar="K", valid=(lambda v: v >= 0, "log_every_steps must be 0 (off) or a positive "
                                              "step count"))
    divergence_factor: float = option(
        100.0, "stop as diverged when the training loss exceeds F times the initial loss (at "
               "least F; 0: only NaN/inf stops a run)", type=float, metavar="F",
        valid=(lambda v: v >= 0, "divergence_factor is 0 (off) or a factor > 0 over the "
                                 "initial loss"))
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
        for task, loss in LOSS_OF_TASK.items():
            if (self.task == task) != (self.loss == loss):
                raise ValueError(f"the {task} task goes with the {loss} loss (and only it); "
                                 f"got task {self.task!r} with loss {self.loss!r}")
        if not datasets.known(self.data):
            raise ValueError(f"unknown dataset {self.data!r}; available datasets: "
                             f"{', '.join(datasets.available())}, or text:PATH (a UTF-8 "
                             "file)")
        for f in dataclasses.fields(self):
            valid = f.metadata.get("valid")
            if valid is not None and not valid[0](getattr(self, f.name)):
                raise ValueError(f"{valid[1]}; got {getattr(self, f.name)}")
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
    :func:`option`) and their :class:`Entry` options, in field order: per option name,
    argparse's keywords (``flags``: its names, ``--NAME`` with dashes; ``dest``: the
    name), its default included."""
    found = {}
    for f in dataclasses.fields(RunConfig):
        if "option" not in f.metadata:
            continue
        if f.metadata["entries"]:
            for key, e in f.metadata["entries"].items():
                found[key] = _keywords(key, {"help": e.help, "default": e.default,
                                             **e.argparse})
            continue
        default = f.default if f.default_factory is dataclasses.MISSING \
            else f.default_factory()
        found[f.name] = _keywords(f.name, {"default": default, **f.metadata["option"]},
                                  f.metadata["flag"])
    return found


def _keywords(name: str, keywords: dict, flag: str | None = None) -> dict:
    if callable(keywords["help"]):
        keywords["help"] = keywords["help"]()
    if not keywords["help"]:
        del keywords["help"]
    return {"flags": ["--" + (flag or name.replace("_", "-"))], "dest": name, **keywords}


def entries(field_name: str) -> dict[str, Entry]:
    """The :class:`Entry` options of one of :class:`RunConfig`'s dict fields."""
    return next(f.metadata.get("entries", {}) for f in dataclasses.fields(RunConfig)
                if f.name == field_name)


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
                             "CUDA GPU; use `device=cpu`")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: there are only {torch.cuda.device_count()} "
                             "CUDA devices (cuda:0 …)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for, but this machine has no Apple GPU "
                         "(MPS); use `device=cpu`")
    return device
