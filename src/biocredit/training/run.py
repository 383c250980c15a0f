"""One training run from a config to a folder of results.

``out/config.json`` (the full config), ``out/metrics.jsonl`` (one row per epoch),
``out/steps.jsonl`` (with ``log_every_steps = k``: the probe metrics every ``k`` steps),
``out/summary.json`` and ``out/model.pt`` (the trained network's ``state_dict``, feedback
included), each written atomically. A diverging run stops with :class:`TrainingDiverged`
after writing what it had, with ``"status": "diverged"`` in its summary.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import data as datasets
from .. import losses, models, rules
from ..metrics import (feedback_alignment, output_feedback_angles, probe_metrics,
                       transport_report)
from .loop import TrainingDiverged, evaluate, train_epoch
from ..optimizers import make_optimizer, trainable
from .results import write_json, write_jsonl


@dataclass
class RunConfig:
    """Everything that defines a run; ``config.json`` is this, as a dict."""

    rule: str = "dfa"
    label: str = ""  # how tables and reports name the run (default: the rule)
    rule_options: dict[str, Any] = field(default_factory=dict)
    model: str = "mlp:2x800:tanh"
    model_options: dict[str, Any] = field(default_factory=dict)
    taps: list[str] = field(default_factory=list)  # where direct rules' signals enter a user's model
    data: str = "digits"
    data_dir: str | None = None
    download: bool = True
    normalize: str = "scale"
    validation: float = 0.0
    train_size: int | None = None   # keep the first N training examples (None: all)
    test_size: int | None = None    # keep the first N test examples (None: all)
    task: str = "classify"
    loss: str = "ce"
    loss_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    stop_train_error: float = 0.0   # stop once the train error is at most this (0: never)
    freeze: list[str] = field(default_factory=list)  # parameter names/globs kept fixed
    init_from: str | None = None    # start from the weights in this model.pt
    adversarial: float = 0.0        # train on fast-gradient-sign examples with this ε
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    probe_size: int = 256
    log_every_steps: int = 0  # also log the probe metrics every k steps to steps.jsonl (0: off)

    def validate(self) -> None:
        """Fail early, with a clear message, on names and values that cannot work."""
        rules.create(self.rule, **self.rule_options)
        losses.create(self.loss, **self.loss_options)
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
        if not 0.0 <= self.stop_train_error < 1.0 or not self.adversarial >= 0.0:
            raise ValueError("stop_train_error is a fraction in [0, 1) and adversarial an "
                             f"ε >= 0; got {self.stop_train_error} and {self.adversarial}")
        if not self.lr > 0:
            raise ValueError(f"the learning rate must be positive; got {self.lr}")
        resolve_device(self.device)


TASKS = ("classify", "autoencoder", "regress")


def check_task(config: RunConfig, dataset: datasets.Dataset) -> None:
    """Teacher data sets (float targets) go with the regress task, and only they."""
    if dataset.regression != (config.task == "regress"):
        raise ValueError(f"data set {config.data!r} has " + (
            "regression targets: use --task regress" if dataset.regression else
            f"class labels; the regress task needs a teacher data set (linear-teacher, "
            f"nonlinear-teacher, amit-linear)"))


def targets(config: RunConfig, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """What the network must output: the classes, or (autoencoder) the flattened input."""
    return x.flatten(1) if config.task == "autoencoder" else y


def num_outputs(config: RunConfig, dataset: datasets.Dataset) -> int:
    return math.prod(dataset.input_shape) if config.task == "autoencoder" \
        else dataset.num_classes


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but this torch build sees no CUDA "
                         "GPU; use --device cpu")
    return device


def seeded_generator(seed: int, stream: int) -> torch.Generator:
    """An independent CPU generator per random stream (feedback, data order) of a run."""
    return torch.Generator().manual_seed(seed * 1000 + stream)


def build(config: RunConfig, dataset: datasets.Dataset, device: torch.device):
    """The model (seeded), the rule attached to it, the loss and the optimizer."""
    torch.manual_seed(config.seed)
    model = models.create(config.model, dataset.input_shape, num_outputs(config, dataset),
                          **config.model_options).to(device)
    rule = rules.create(config.rule, **config.rule_options)
    example = None if hasattr(model, "example_input") else dataset.train_x[:1]
    net = rule.convert(model, generator=seeded_generator(config.seed, 1),
                       taps=(list(config.taps) or None) if rule.direct else None,
                       example_input=example)
    if config.init_from:
        load_weights(net, config.init_from)
    if config.freeze:
        freeze(net, config.freeze)
    optimizer = make_optimizer(config.optimizer, trainable(net), config.lr,
                               config.momentum, config.weight_decay)
    return net, rule, losses.create(config.loss, **config.loss_options), optimizer


def load_weights(net: torch.nn.Module, path: str) -> None:
    """Start from the weights of another run's ``model.pt`` (any rule): its parameters and
    running statistics replace ``net``'s; ``net``'s own feedback state is kept."""
    from ..layers import conversion_of
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"--init-from: no checkpoint at {path}") from None
    except Exception as err:
        raise ValueError(f"--init-from: {path} is not a readable model.pt ({err})") from None
    state = net.state_dict()
    keys = conversion_of(net).plain_keys
    missing = sorted(k for k in keys if k not in saved)
    if missing:
        raise ValueError(f"--init-from: {path} lacks {', '.join(missing[:5])}"
                         + (" …" if len(missing) > 5 else "") + "; was it saved from the "
                         "same model?")
    for key in keys:
        if saved[key].shape != state[key].shape:
            raise ValueError(f"--init-from: {key} has shape {tuple(saved[key].shape)} in "
                             f"{path}, {tuple(state[key].shape)} in this model")
        state[key] = saved[key]
    net.load_state_dict(state)


def freeze(net: torch.nn.Module, patterns: list[str]) -> None:
    """Keep the parameters whose names match a pattern (a name, a prefix ending in a module
    name, or a glob) fixed: they get no gradient and no optimizer state."""
    import fnmatch
    names = [n for n, _ in net.named_parameters()]
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)
                or n.startswith(pattern + ".")]
        if not hits:
            raise ValueError(f"--freeze {pattern!r} matches no parameter; parameters: "
                             + ", ".join(names))
        for name, p in net.named_parameters():
            if name in hits:
                p.requires_grad_(False)


def load_dataset(config: RunConfig, device: torch.device) -> datasets.Dataset:
    return datasets.load(config.data, data_dir=config.data_dir, device=device,
                         normalize=config.normalize, validation=config.validation,
                         download=config.download, train_size=config.train_size,
                         test_size=config.test_size)


EpochFn = Callable[[dict], None]


def run(config: RunConfig, out_dir: str | os.PathLike, *,
        dataset: datasets.Dataset | None = None,
        progress: Callable[[int, int, int, float], None] | None = None,
        on_epoch: EpochFn | None = None) -> dict:
    """Train as ``config`` says and write the results to ``out_dir``; returns the summary.

    ``progress(epoch, step, steps, mean_loss)`` is called during each epoch,
    ``on_epoch(row)`` after it. ``dataset`` may be given to share one loaded copy.
    """
    config.validate()
    device = resolve_device(config.device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", dataclasses.asdict(config))
    if dataset is None:
        dataset = load_dataset(config, device)
    dataset = dataset.to(device)
    check_task(config, dataset)
    net, rule, loss_fn, optimizer = build(config, dataset, device)
    order = seeded_generator(config.seed, 2)
    probe_x = dataset.train_x[:config.probe_size]
    train_t = targets(config, dataset.train_x, dataset.train_y)
    test_t = targets(config, dataset.test_x, dataset.test_y)
    val_t = None if dataset.val_x is None else targets(config, dataset.val_x, dataset.val_y)
    probe_y = train_t[:config.probe_size]

    rows: list[dict] = []
    step_rows: list[dict] = []  # with log_every_steps: the probe metrics every k steps
    steps_per_epoch = math.ceil(len(dataset.train_x) / config.batch_size)
    summary = {
        "rule": config.rule, "label": config.label or config.rule,
        "rule_options": config.rule_options, "model": config.model,
        "data": config.data, "task": config.task, "loss": config.loss,
        "optimizer": config.optimizer,
        "lr": config.lr, "batch_size": config.batch_size, "epochs": config.epochs,
        "seed": config.seed, "device": str(device),
        "parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
        "weight_transport": transport_report(net, probe_x[:2]).summary(),
        "status": "running",
    }
    total_seconds = 0.0
    try:
        for epoch in range(1, config.epochs + 1):
            def report(step, steps, mean, epoch=epoch):
                if progress is not None:
                    progress(epoch, step, steps, mean)

            on_step = None
            if config.log_every_steps > 0:
                def on_step(step, mean_loss, epoch=epoch,
                            offset=(epoch - 1) * steps_per_epoch):
                    if (offset + step) % config.log_every_steps == 0:
                        step_rows.append({"step": offset + step, "epoch": epoch,
                                          "train_loss": mean_loss(),
                                          **probe_metrics(net, rule, probe_x, probe_y,
                                                          loss_fn)})

            start = time.perf_counter()
            train_loss = train_epoch(net, rule, dataset.train_x, train_t, loss_fn,
                                     optimizer, config.batch_size, order, report,
                                     on_step=on_step, adversarial=config.adversarial)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - start
            total_seconds += seconds
            row = {"epoch": epoch, "train_loss": train_loss}
            _, row["train_error"] = evaluate(net, dataset.train_x, train_t, loss_fn)
            row["test_loss"], row["test_error"] = evaluate(net, dataset.test_x, test_t, loss_fn)
            if val_t is not None:
                _, row["val_error"] = evaluate(net, dataset.val_x, val_t, loss_fn)
            row["seconds"] = seconds
            row.update(probe_metrics(net, rule, probe_x, probe_y, loss_fn))
            row.update(feedback_alignment(net))
            row.update(output_feedback_angles(net, probe_x, probe_y, loss_fn))
            rows.append(row)
            write_jsonl(out / "metrics.jsonl", rows)
            if step_rows:
                write_jsonl(out / "steps.jsonl", step_rows)
            if on_epoch is not None:
                on_epoch(row)
            if row["train_error"] <= config.stop_train_error:
                break
        summary["status"] = "completed"
    except TrainingDiverged as err:
        summary["status"] = "diverged"
        summary["message"] = str(err)
        raise
    finally:
        last = rows[-1] if rows else {}
        summary.update({
            "epochs_completed": len(rows),
            "test_error": last.get("test_error"),
            "train_error": last.get("train_error"),
            "val_error": last.get("val_error"),
            "mean_angle_deg": _mean(last.get("angle_deg", [])),
            "first_mean_angle_deg": _mean(rows[0].get("angle_deg", [])) if rows else None,
            "min_test_error": min((r["test_error"] for r in rows), default=None),
            "mean_wb_correlation": _mean(last.get("wb_correlation", [])),
            "top_wb_correlation": _last(last.get("wb_correlation", [])),
            "hidden_angle_deg": last.get("hidden_angle_deg"),
            "pseudo_angle_deg": last.get("pseudo_angle_deg"),
            "seconds": total_seconds,
        })
        write_json(out / "summary.json", summary)
        if step_rows:
            write_jsonl(out / "steps.jsonl", step_rows)
        if rows:
            save_checkpoint(net, out / "model.pt")
            if config.task == "autoencoder":
                save_reconstructions(net, dataset, out)
    return summary


def save_reconstructions(net, dataset: datasets.Dataset, out: Path) -> None:
    """``reconstructions.png`` (ten test inputs above their reconstructions) and the
    reconstructions themselves in ``reconstructions.npy``."""
    from .autoencoder import (EXAMPLES, image_shape, reconstructions, save_array,
                              save_reconstruction_grid)
    recon = reconstructions(net, dataset.test_x)
    save_array(out / "reconstructions.npy", recon)
    inputs = dataset.test_x[:EXAMPLES].flatten(1).cpu().numpy()
    save_reconstruction_grid(out / "reconstructions.png", inputs, {"reconstruction": recon},
                             image_shape(dataset.input_shape))


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _last(values: list[float]) -> float | None:
    """The top layer's value (lists run from the input up), if finite."""
    return values[-1] if values and values[-1] is not None and math.isfinite(values[-1]) \
        else None


def save_checkpoint(net: torch.nn.Module, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(net.state_dict(), tmp)
    os.replace(tmp, path)
