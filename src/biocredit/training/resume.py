"""Continuing a run from its folder: what its checkpoint and files say is left to do, and the
random states that make a resumed run go on bit for bit as if it had not stopped."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import distributed
from .config import RunConfig
from .folder import (CHECKPOINT, CONFIG, SUMMARY, RunFolderError, epochs_recorded,
                     load_checkpoint, prepare, read_file, read_file_or_none)

RESUMABLE_CHANGES = ("epochs", "device")   # what a resumed run may change in its config


@dataclass
class ResumeState:
    """What a run folder holds to continue from: its run id and, once an epoch finished,
    its checkpoint."""

    run_id: str
    checkpoint: dict | None


def resume_state(config: RunConfig, out: Path) -> ResumeState | None:
    """The run to continue in ``out`` (``None``: nothing there yet, start afresh)."""
    if not (out / CONFIG).is_file():
        return None
    saved = read_file(out, CONFIG)
    if "run_id" not in saved:
        raise RunFolderError(f"{out / CONFIG} is not a biocredit run's config; cannot resume "
                             "from it")
    check_unchanged(config, saved, out)
    if not (out / CHECKPOINT).exists() and not (out / CHECKPOINT).is_symlink():
        finished = epochs_recorded(out)
        if finished:
            raise RunFolderError(
                f"cannot resume {out}: its checkpoint {out / CHECKPOINT} is missing, but the "
                f"run finished {finished} epoch(s) (metrics.jsonl, summary.json); it cannot go "
                "on without the checkpoint, and nothing was changed. Put the checkpoint back, "
                "or start again with `overwrite=True`")
        prepare(out, overwrite=True)        # stopped before its first epoch: start again
        return ResumeState(saved["run_id"], None)
    checkpoint = load_checkpoint(out / CHECKPOINT)
    if checkpoint.get("run_id") != saved["run_id"]:
        raise RunFolderError(f"{out} mixes two runs: its checkpoint is run "
                             f"{checkpoint.get('run_id')}, its config.json run "
                             f"{saved['run_id']}; start again with `overwrite=True`")
    if checkpoint["epoch"] > config.epochs:
        raise RunFolderError(f"cannot resume {out}: the run has finished "
                             f"{checkpoint['epoch']} epochs already; `epochs` must be at "
                             "least that")
    return ResumeState(saved["run_id"], checkpoint)


def check_unchanged(config: RunConfig, saved: dict, out: Path) -> None:
    """A resumed run's config must be the run's own, but for :data:`RESUMABLE_CHANGES`."""
    mine = dataclasses.asdict(config)
    changed = sorted(k for k in mine if k not in RESUMABLE_CHANGES and k in saved
                     and saved[k] != mine[k])
    if changed:
        differences = ", ".join(f"{k}: {saved[k]!r} there, {mine[k]!r} now"
                                for k in changed[:3])
        raise RunFolderError(f"cannot resume {out}: the run was made with other settings "
                             f"({differences}); a resumed run may change only "
                             + " and ".join(RESUMABLE_CHANGES))


def stored_config(folder: Path) -> RunConfig:
    """The config a run folder's ``config.json`` holds (on the CPU where it names no
    device)."""
    return RunConfig.from_dict({"device": "cpu", **read_file(folder, CONFIG)},
                               str(folder / CONFIG))


def completed_summary(config: RunConfig, out: Path, state: ResumeState | None) -> dict | None:
    """The summary of a resumed run that has nothing left to do and says so; ``None`` when
    it must train on, or its summary is stale (a kill after its last checkpoint)."""
    if state is None or state.checkpoint is None:
        return None
    rows = state.checkpoint["rows"]
    if len(rows) < config.epochs and rows[-1]["train_error"] > config.stop_train_error:
        return None
    summary = read_file_or_none(out, SUMMARY)
    fits = summary is not None and summary.get("status") == "completed" and \
        summary.get("run_id") == state.run_id and summary.get("epochs_completed") == len(rows)
    return summary if fits else None


def received_from_writer() -> tuple[ResumeState | None, dict | None]:
    """On ranks other than 0: what rank 0 found in the run folder (or its error)."""
    kind, value = distributed.from_writer(None)
    if kind == "error":
        raise RunFolderError(f"rank 0: {value}")
    return value


def rng_states(order: torch.Generator, device: torch.device,
               ranks: distributed.Ranks = distributed.Ranks()) -> dict:
    """Every random state a run draws from after it is built: torch's global generator
    (dropout), CUDA's on a GPU, and the data order's generator; in a process group also
    every rank's own (``torch_ranks``, ``cuda_ranks``)."""
    states = {"torch": torch.get_rng_state(), "order": order.get_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    if ranks.parallel:
        for key in [k for k in ("torch", "cuda") if k in states]:
            states[f"{key}_ranks"] = distributed.gather(states[key])
    return states


def restore(checkpoint: dict, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
            order: torch.Generator, device: torch.device,
            ranks: distributed.Ranks = distributed.Ranks()) -> None:
    """Put a freshly built run back where ``checkpoint`` left it."""
    try:
        net.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, KeyError, ValueError) as err:
        raise RunFolderError(f"the checkpoint does not fit this run's model "
                             f"({str(err).splitlines()[0]})") from None
    rng = checkpoint["rng"]
    if ranks.parallel:      # each rank its own stream, if the run had as many ranks
        rng = {**rng, **{key: rng[f"{key}_ranks"][ranks.rank] for key in ("torch", "cuda")
                         if len(rng.get(f"{key}_ranks", ())) == ranks.world}}
    torch.set_rng_state(rng["torch"])
    order.set_state(rng["order"])
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)
