"""One training run from a config to a folder of results.

``out/config.json`` (the full config), ``out/metrics.jsonl`` (one row per epoch),
``out/steps.jsonl`` (with ``log_every_steps = k``: the probe metrics every ``k`` steps),
``out/summary.json``, ``out/model.pt`` (the network's ``state_dict`` after the last finished
epoch, feedback included) and ``out/checkpoint.ckpt`` (everything needed to resume), each
written atomically, each carrying the run's id. A diverging run stops with
:class:`TrainingDiverged` after writing what it had, with ``"status": "diverged"`` in its
summary; a signal stops it with ``"status": "interrupted"``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import data as datasets
from .. import distributed, losses, models, rules
from ..conversion import conversion_of, convert
from ..metrics import (feedback_alignment, output_feedback_angles, probe_metrics,
                       transport_report)
from .folder import (CHECKPOINT, CONFIG, METRICS, MODEL, STEPS, SUMMARY,
                     RunFolderError, load_model, locked, new_run_id, prepare, remove_if_unused,
                     save_checkpoint, save_model, write_file)
from ..interrupt import RunInterrupted, at_once, check_stop
from .loop import TrainingDiverged, check_shards, evaluate, train_epoch
from ..optimizers import compile_step, make_optimizer, trainable
from ..rules.fused_updates import options_for_compile
from .config import TASKS, RunConfig, resolve_device  # (imported from here too)
from .resume import (ResumeState, completed_summary, received_from_writer, restore,
                     resume_state, rng_states)


def check_task(config: RunConfig, dataset: datasets.Dataset) -> None:
    """Teacher data sets (float targets) go with the regress task, and only they; text (token
    ids) with next-token prediction by ``gpt`` or a model of the user's."""
    if dataset.sequence:
        check_text_run(config)
    if dataset.regression != (config.task == "regress"):
        raise ValueError(f"data set {config.data!r} has " + (
            "regression targets: use `task=regress`" if dataset.regression else
            "class labels; the regress task needs a teacher data set (linear-teacher, "
            "nonlinear-teacher, amit-linear)"))


def check_text_run(config: RunConfig) -> None:
    """A text data set is windows of token ids: a model that embeds them, the classify task
    with the ``ce`` loss (next-token prediction), no adversarial inputs."""
    text = f"data set {config.data!r} is text (windows of character ids)"
    if not models.is_user_spec(config.model) and config.model.split(":")[0] != "gpt":
        raise ValueError(f"{text}: use `model=gpt` (e.g. gpt:2x64:h4) or a model of your own; "
                         f"{config.model} reads images")
    if config.task != "classify" or config.loss != "ce":
        raise ValueError(f"{text}: it trains next-character prediction, `task=classify` with "
                         f"`loss=ce`; got task {config.task!r} with loss {config.loss!r}")
    if config.adversarial:
        raise ValueError(f"{text}: `adversarial` perturbs float inputs; ids have none")


def targets(config: RunConfig, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """What the network must output: the classes, or (autoencoder) the flattened input."""
    return x.flatten(1) if config.task == "autoencoder" else y


def num_outputs(config: RunConfig, dataset: datasets.Dataset) -> int:
    return math.prod(dataset.input_shape) if config.task == "autoencoder" \
        else dataset.num_classes


def seeded_generator(seed: int, stream: int) -> torch.Generator:
    """An independent CPU generator per random stream (feedback, data order) of a run."""
    return torch.Generator().manual_seed(seed * 1000 + stream)


@at_once()      # set-up: a signal stops it at once
def build(config: RunConfig, dataset: datasets.Dataset, device: torch.device):
    """The model (seeded), the rule attached to it, the loss and the optimizer."""
    torch.manual_seed(config.seed)
    model = models.create(config.model, dataset.input_shape, num_outputs(config, dataset),
                          **config.model_options).to(device)
    rule = rules.create(config.rule, **options_for_compile(config.rule, config.rule_options,
                                                           config.compile))
    taps = models.convert_taps(model, config.model, config.taps) if rule.direct else None
    example = None if hasattr(model, "example_input") else dataset.train_x[:1]
    net = convert(model, rule, generator=seeded_generator(config.seed, 1), taps=taps,
                  example_input=example)
    if config.init_from:
        load_weights(net, config.init_from.replace("{seed}", str(config.seed)))
    if config.freeze:
        freeze(net, config.freeze)
    optimizer = make_optimizer(config.optimizer, trainable(net), config.lr,
                               config.momentum, config.weight_decay)
    if config.compile:
        compile_step(optimizer)
    return net, rule, losses.create(config.loss, **config.loss_options), optimizer


def load_weights(net: torch.nn.Module, path: str) -> None:
    """Start from the weights of another run's ``model.pt`` (any rule): its parameters and
    running statistics replace ``net``'s; ``net``'s own feedback state is kept."""
    try:
        saved = load_model(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"`init_from`: no checkpoint at {path}") from None
    except IsADirectoryError:
        raise ValueError(f"`init_from`: {path} is a folder; name the model.pt in it") from None
    except RunFolderError as err:
        raise ValueError(f"`init_from`: {err}") from None
    state = net.state_dict()
    keys = conversion_of(net).plain_keys
    missing = sorted(k for k in keys if k not in saved)
    if missing:
        raise ValueError(f"`init_from`: {path} lacks {', '.join(missing[:5])}"
                         + (" …" if len(missing) > 5 else "") + "; was it saved from the "
                         "same model?")
    for key in keys:
        if saved[key].shape != state[key].shape:
            raise ValueError(f"`init_from`: {key} has shape {tuple(saved[key].shape)} in "
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
            raise ValueError(f"`freeze={pattern!r}` matches no parameter; parameters: "
                             + ", ".join(names))
        for name, p in net.named_parameters():
            if name in hits:
                p.requires_grad_(False)


@at_once()      # set-up: a signal stops it at once
def load_dataset(config: RunConfig, device: torch.device) -> datasets.Dataset:
    return datasets.load(config.data, data_dir=config.data_dir, device=device,
                         normalize=config.normalize, validation=config.validation,
                         download=config.download, train_size=config.train_size,
                         test_size=config.test_size)


EpochFn = Callable[[dict], None]


def run(config: RunConfig, out_dir: str | os.PathLike, *,
        dataset: datasets.Dataset | None = None,
        progress: Callable[[int, int, int, float], None] | None = None,
        on_epoch: EpochFn | None = None, resume: bool = False,
        overwrite: bool = False) -> dict:
    """Train as ``config`` says and write the results to ``out_dir``; returns the summary.

    ``out_dir`` is locked while the run writes. A folder holding another run is refused
    unless ``overwrite`` (clear it first) or ``resume``: continue from its checkpoint (the
    config must be the run's own, ``epochs`` and ``device`` aside), bit for bit as if it had
    not stopped; a finished run only gets its summary rewritten. ``progress(epoch, step, steps,
    mean_loss)`` is called during each epoch, ``on_epoch(row)`` after it. ``dataset`` may be
    given to share one loaded copy. A diverging run raises :class:`TrainingDiverged`, a
    signal :class:`~biocredit.interrupt.RunInterrupted`, each after writing the
    summary (status ``diverged`` / ``interrupted``).
    """
    config.validate()
    device = resolve_device(config.device)
    out = Path(out_dir)
    if not distributed.current().writer:      # rank 0 holds the folder; the others follow
        state, done = received_from_writer()
        return done if done is not None else \
            _train(config, out, device, dataset, None, None, state)
    created = not out.exists()
    try:
        with locked(out):
            try:
                prepare(out, overwrite=overwrite, resume=resume)
                state = resume_state(config, out) if resume else None
                done = completed_summary(config, out, state)
            except Exception as err:
                distributed.from_writer(("error", str(err)))
                raise
            distributed.from_writer(("go", (state, done)))
            if done is not None:
                return done
            return _train(config, out, device, dataset, progress, on_epoch, state)
    except BaseException:
        if created:
            remove_if_unused(out)      # a run that failed while setting up leaves nothing
        raise


@dataclass
class Training:
    """A run while it trains: what its set-up made, and the rows its epochs recorded
    (``saved``: how many of them the checkpoint on disk holds)."""

    config: RunConfig
    out: Path
    device: torch.device
    dataset: datasets.Dataset
    run_id: str
    net: torch.nn.Module
    rule: Any
    loss_fn: Any
    optimizer: torch.optim.Optimizer
    forward: Callable               # what computes the training steps
    ranks: distributed.Ranks
    order: torch.Generator          # the data order
    probe_x: torch.Tensor
    probe_y: torch.Tensor
    train_t: torch.Tensor
    test_t: torch.Tensor
    val_t: torch.Tensor | None
    rows: list[dict]
    step_rows: list[dict]           # with log_every_steps: the probe metrics every k steps
    initial_loss: float
    saved: int
    loss_bound: float


def _train(config: RunConfig, out: Path, device: torch.device, dataset, progress, on_epoch,
           state: ResumeState | None) -> dict:
    t = _set_up(config, out, device, dataset, state)
    summary = _start_summary(t)
    try:
        stopped_early = bool(t.rows) and t.rows[-1]["train_error"] <= config.stop_train_error
        for epoch in range(len(t.rows) + 1, len(t.rows) if stopped_early else config.epochs + 1):
            row = _epoch(t, epoch, progress)
            if on_epoch is not None:
                on_epoch(row)
            if row["train_error"] <= config.stop_train_error:
                break
            check_stop()
        summary["status"] = "completed"
    except BaseException as err:
        _set_status(summary, err)
        raise
    finally:
        _finish(t, summary)
    return summary


def _set_up(config: RunConfig, out: Path, device: torch.device, dataset,
            state: ResumeState | None) -> Training:
    """The data, the model, rule, loss and optimizer (restored from the checkpoint when
    resuming), ``config.json``, and the probe batch and targets."""
    run_id = state.run_id if state is not None else new_run_id()
    if dataset is None:
        dataset = load_dataset(config, device)
    dataset = dataset.to(device)
    check_task(config, dataset)
    net, rule, loss_fn, optimizer = build(config, dataset, device)
    ranks = distributed.current()
    forward = net
    if ranks.parallel:
        distributed.check_same_on_every_rank(net)
        torch.manual_seed(config.seed * 1000 + 100 + ranks.rank)   # each rank its dropout
        forward = distributed.data_parallel(net, device)
    if config.compile:
        forward = torch.compile(forward)
    check_shards(len(dataset.train_x), config.batch_size, ranks)
    if ranks.writer:
        write_file(out, CONFIG, {**dataclasses.asdict(config), "run_id": run_id})
    order = seeded_generator(config.seed, 2)
    train_t = targets(config, dataset.train_x, dataset.train_y)
    val_t = None if dataset.val_x is None else targets(config, dataset.val_x, dataset.val_y)
    t = Training(config, out, device, dataset, run_id, net, rule, loss_fn, optimizer, forward,
                 ranks, order, probe_x=dataset.train_x[:config.probe_size],
                 probe_y=train_t[:config.probe_size], train_t=train_t,
                 test_t=targets(config, dataset.test_x, dataset.test_y), val_t=val_t,
                 rows=[], step_rows=[], initial_loss=math.nan, saved=0, loss_bound=math.inf)
    checkpoint = state.checkpoint if state is not None else None
    if checkpoint is not None:
        restore(checkpoint, net, optimizer, order, device, ranks)
        t.rows, t.step_rows = list(checkpoint["rows"]), list(checkpoint["step_rows"])
        t.initial_loss = checkpoint["initial_loss"]
    else:
        t.initial_loss = evaluate(net, t.probe_x, t.probe_y, loss_fn)[0]
    t.saved = len(t.rows)
    if config.divergence_factor > 0:
        t.loss_bound = config.divergence_factor * max(t.initial_loss, 1.0)
    return t


def _start_summary(t: Training) -> dict:
    """The run's summary as it starts (status running), written."""
    config = t.config
    summary = {
        "run_id": t.run_id,
        "rule": config.rule, "label": config.label or config.rule,
        "rule_options": config.rule_options, "model": config.model,
        "data": config.data, "task": config.task, "loss": config.loss,
        "optimizer": config.optimizer,
        "lr": config.lr, "batch_size": config.batch_size, "epochs": config.epochs,
        "seed": config.seed, "device": str(t.device), "amp": config.amp,
        "compile": config.compile, "world_size": t.ranks.world,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "biocredit": package_version(),
        "parameters": sum(p.numel() for p in t.net.parameters() if p.requires_grad),
        "weight_transport": transport_report(t.net, t.probe_x[:2]).summary(),
        "status": "running",
    }
    if t.dataset.chars is not None:      # text: the baseline that ignores the context
        from ..data.text import unigram_bits
        summary["unigram_bpc"] = unigram_bits(t.dataset)
    if t.ranks.writer:
        write_file(t.out, SUMMARY, summary)
    return summary


def _epoch(t: Training, epoch: int, progress) -> dict:
    """Train one epoch, measure the network, and save it: the epoch's row of metrics."""
    start = time.perf_counter()
    running = torch.zeros((), dtype=torch.float64, device=t.device) \
        if t.config.train_error == "running" else None

    def report(step, steps, mean):
        if progress is not None:
            progress(epoch, step, steps, mean)

    train_loss = train_epoch(t.net, t.rule, t.dataset.train_x, t.train_t, t.loss_fn,
                             t.optimizer, t.config.batch_size, t.order, report,
                             on_step=_step_logger(t, epoch), adversarial=t.config.adversarial,
                             loss_bound=t.loss_bound, amp=t.config.amp, forward=t.forward,
                             error_sum=running, ranks=t.ranks)
    if t.device.type == "cuda":
        torch.cuda.synchronize(t.device)
    seconds = time.perf_counter() - start
    distributed.share_buffers(t.net)
    row = _measure(t, epoch, train_loss, running)
    row["seconds"] = seconds
    row.update(probe_metrics(t.net, t.probe_x, t.probe_y, t.loss_fn))
    row.update(feedback_alignment(t.net))
    row.update(output_feedback_angles(t.net, t.probe_x, t.probe_y, t.loss_fn))
    check_finite(t.net, row)
    t.rows.append(row)
    _save_epoch(t, epoch, row, start, seconds)
    return row


def _step_logger(t: Training, epoch: int):
    """With ``log_every_steps = k``: the ``on_step`` that records the probe metrics every
    ``k`` steps (counted over the whole run); else ``None``."""
    if t.config.log_every_steps <= 0:
        return None
    offset = (epoch - 1) * math.ceil(len(t.dataset.train_x) / t.config.batch_size)

    def on_step(step, mean_loss):
        if (offset + step) % t.config.log_every_steps == 0:
            t.step_rows.append({"run_id": t.run_id, "step": offset + step, "epoch": epoch,
                                "train_loss": mean_loss(),
                                **probe_metrics(t.net, t.probe_x, t.probe_y, t.loss_fn)})
    return on_step


def _measure(t: Training, epoch: int, train_loss: float, running) -> dict:
    """The errors after an epoch: train (re-evaluated, or ``running``: the epoch's own
    batches), test and validation."""
    row = {"run_id": t.run_id, "epoch": epoch, "train_loss": train_loss}
    if running is None:
        _, row["train_error"] = evaluate(t.net, t.dataset.train_x, t.train_t, t.loss_fn,
                                         ranks=t.ranks)
    else:
        row["train_error"] = running.item() / len(t.dataset.train_x)
    row["test_loss"], row["test_error"] = evaluate(t.net, t.dataset.test_x, t.test_t,
                                                   t.loss_fn, ranks=t.ranks)
    if t.val_t is not None:
        val_loss, row["val_error"] = evaluate(t.net, t.dataset.val_x, t.val_t, t.loss_fn,
                                              ranks=t.ranks)
    if t.dataset.sequence:      # a language model: losses in nats and bits per token
        row["test_bpc"] = row["test_loss"] / math.log(2)
        if t.val_t is not None:
            row["val_loss"], row["val_bpc"] = val_loss, val_loss / math.log(2)
    return row


def _save_epoch(t: Training, epoch: int, row: dict, start: float, seconds: float) -> None:
    """The writer: the model, the checkpoint and the metrics after an epoch (the row's
    ``overhead_seconds``: the time after training, evaluation and files)."""
    rng = rng_states(t.order, t.device, t.ranks)
    if t.ranks.writer:
        if t.step_rows:
            write_file(t.out, STEPS, t.step_rows)
        save_model(t.net, t.out / MODEL, t.run_id)
        row["overhead_seconds"] = time.perf_counter() - start - seconds  # (so far)
        save_checkpoint(t.out / CHECKPOINT, {
            "run_id": t.run_id, "epoch": epoch, "model": t.net.state_dict(),
            "optimizer": t.optimizer.state_dict(), "rng": rng,
            "rows": t.rows, "step_rows": t.step_rows, "initial_loss": t.initial_loss})
    t.saved = len(t.rows)
    row["overhead_seconds"] = time.perf_counter() - start - seconds  # with the checkpoint
    if t.ranks.writer:
        write_file(t.out, METRICS, t.rows)


def _set_status(summary: dict, err: BaseException) -> None:
    """The summary's status and message for a run that ``err`` stopped."""
    if isinstance(err, TrainingDiverged):
        summary["status"] = "diverged"
        summary["message"] = str(err)
        err.summary = summary
    elif isinstance(err, (RunInterrupted, KeyboardInterrupt)):
        summary["status"] = "interrupted"
        summary["message"] = str(err) or "stopped by KeyboardInterrupt"
    elif isinstance(err, Exception):
        summary["status"] = "failed"
        summary["message"] = f"{type(err).__name__}: {str(err).strip()[:500]}"


def _finish(t: Training, summary: dict) -> None:
    """The summary's final metrics, written (the writer), however the run ended; a
    completed autoencoder's reconstructions."""
    # Only what the checkpoint holds: an epoch whose checkpoint could not be written (a
    # full disk) is not claimed, so the summary never names an epoch a resume lacks.
    summary.update(final_metrics(t.rows[:t.saved]))
    summary["resume_epoch"] = t.saved
    if t.ranks.writer:
        write_file(t.out, SUMMARY, summary)
        if t.step_rows:
            write_file(t.out, STEPS, t.step_rows)
        if t.rows and summary["status"] == "completed" and t.config.task == "autoencoder":
            save_reconstructions(t.net, t.dataset, t.out)


def final_metrics(rows: list[dict]) -> dict:
    """The summary's view of the epoch rows: the last epoch's errors and angles, the first
    epoch's mean angle, the best test error, the training time."""
    last = rows[-1] if rows else {}
    return {
        **{k: last[k] for k in SEQUENCE_METRICS if "test_bpc" in last and k in last},
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
        "seconds": sum(r["seconds"] for r in rows),
        # evaluation, probe metrics and writing the files (not counted in seconds)
        "overhead_seconds": sum(r.get("overhead_seconds", 0.0) for r in rows),
    }


SEQUENCE_METRICS = ("test_loss", "test_bpc", "val_loss", "val_bpc")   # language models


def check_finite(net: torch.nn.Module, row: dict) -> None:
    """Stop with :class:`TrainingDiverged` when a weight or a gradient (an angle to BP)
    is no longer finite, though the loss may still be."""
    params = [p.detach() for p in net.parameters()]
    if params and not torch.stack([torch.isfinite(p).all() for p in params]).all():
        raise TrainingDiverged(f"weights became infinite or NaN in epoch {row['epoch']}; try "
                               "a smaller learning rate")
    if any(a is not None and math.isinf(a) for a in row.get("angle_deg", [])):
        raise TrainingDiverged(f"the gradients became infinite or NaN in epoch {row['epoch']} "
                               "(the angles to BP cannot be measured); try a smaller "
                               "learning rate")


def package_version() -> str:
    from .. import __version__
    return __version__


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
