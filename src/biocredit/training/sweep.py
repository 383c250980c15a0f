"""Independent runs one after another, or in ``jobs`` worker processes at once.

A sweep (the rules of a comparison, the seeds of a run) is a list of :class:`Task`. With
``jobs = 1`` they run in this process; with ``jobs = N`` in ``N`` worker processes, each with
its share of the CPU threads (``torch.set_num_threads``), each loading the data once. With
as many threads, a run's numbers do not depend on where it ran. Every run ends as an :class:`Outcome`: completed,
diverged, failed (an error in that run alone) or interrupted; one run's failure does not stop
the others. A run folder that is damaged or in use stops the sweep with its
:class:`~biocredit.training.folder.RunFolderError` (in worker processes, once the other runs
ended). A signal to this process stops every worker after its current step (each writes
its run's summary, resumable), and the sweep says so.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..tracebacks import described
from .folder import SUMMARY, RunFolderError, read_file_or_none
from ..interrupt import (Interrupted, RunInterrupted, pending_stop, request_stop,
                        stop_on_signals)
from .loop import TrainingDiverged
from .config import RunConfig, resolve_device
from .run import load_dataset, run


@dataclass
class Task:
    """One run of a sweep: how the table names it, its config and its folder."""

    name: str
    config: RunConfig
    folder: Path


@dataclass
class Outcome:
    """How a run ended: ``status`` is completed, diverged, failed or interrupted;
    ``summary`` is its ``summary.json`` (``None`` if it failed before writing one)."""

    task: Task
    status: str
    summary: dict | None
    message: str = ""


RunFn = Callable[[Task], dict]
DoneFn = Callable[[Outcome], None]


@dataclass
class Sweep:
    """The outcomes of the runs that ended, in task order, and the signal that stopped the
    sweep (``None``: every run ended)."""

    outcomes: list[Outcome]
    interrupted: RunInterrupted | None = None


def run_sweep(tasks: list[Task], jobs: int, run_here: RunFn, on_done: DoneFn | None = None,
              *, resume: bool = False, reraise: bool = False) -> Sweep:
    """Run every task. ``jobs = 1``: ``run_here(task)`` runs each in this process (and may
    share a loaded data set, show progress); ``jobs > 1``: worker processes call
    :func:`~biocredit.training.run` themselves. ``on_done(outcome)`` is called as each run
    ends. ``reraise``: an error of one run propagates (for debugging) instead of becoming a
    failed outcome. Call it within :func:`~biocredit.interrupt.stop_on_signals`."""
    if jobs < 1:
        raise ValueError(f"`jobs` is a number of worker processes, at least 1; got {jobs}")
    if jobs == 1 or len(tasks) == 1:
        return _serial(tasks, run_here, on_done, reraise)
    return _parallel(tasks, min(jobs, len(tasks)), on_done, resume)


def _ended(call: Callable[[], dict], folder: Path,
           reraise: bool = False) -> tuple[str, dict | None, str]:
    """How one run, ``call()``, ended: its status, summary and message (completed, diverged
    or failed). A signal, and a run folder damaged or in use, propagate."""
    try:
        return "completed", call(), ""
    except TrainingDiverged as err:
        return "diverged", err.summary, str(err)
    except (RunInterrupted, KeyboardInterrupt, RunFolderError):
        raise
    except Exception as err:
        if reraise:
            raise
        return "failed", _summary(folder), described(err)


def _serial(tasks, run_here, on_done, reraise) -> Sweep:
    outcomes = []
    for task in tasks:
        try:
            outcome = Outcome(task, *_ended(lambda: run_here(task), task.folder, reraise))
        except RunInterrupted as err:
            return Sweep(outcomes, err)
        except Interrupted as err:      # at once, in the run's set-up: the others are kept
            return Sweep(outcomes, RunInterrupted(err.signum))
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return Sweep(outcomes)


def _parallel(tasks, jobs, on_done, resume) -> Sweep:
    threads = max(1, torch.get_num_threads() // jobs)
    context = multiprocessing.get_context("spawn")
    outcomes: dict[int, Outcome] = {}
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context,
                                                initializer=_start_worker,
                                                initargs=(threads,)) as pool:
        futures = {pool.submit(_run_in_worker, dataclasses.asdict(t.config), str(t.folder),
                               resume): i for i, t in enumerate(tasks)}
        forwarded = False
        while futures:
            done, _ = concurrent.futures.wait(futures, timeout=0.5,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                i = futures.pop(future)
                if future.cancelled():
                    continue
                try:
                    status, summary, message = future.result()
                except Exception as err:             # the worker process itself died
                    status, summary, message = "failed", _summary(tasks[i].folder), \
                        f"its worker process ended: {described(err)}"
                outcomes[i] = Outcome(tasks[i], status, summary, message)
                if on_done is not None:
                    on_done(outcomes[i])
            signum = pending_stop()
            if signum is not None and not forwarded:    # stop the runs after their step
                forwarded = True
                for future in futures:
                    future.cancel()
                for process in list(getattr(pool, "_processes", {}).values()):
                    if process.is_alive():
                        os.kill(process.pid, signum)
    damaged = [o.message for o in outcomes.values() if o.status == FOLDER_ERROR]
    if damaged:                         # as a serial sweep would have stopped at it
        raise RunFolderError(damaged[0])
    signum = pending_stop()
    ended = [outcomes[i] for i in sorted(outcomes) if outcomes[i].status != "interrupted"]
    return Sweep(ended, None if signum is None else RunInterrupted(signum))


def _start_worker(threads: int) -> None:
    """A worker: its own process group (a Ctrl-C reaches it once, forwarded by the parent),
    its share of the threads; a signal between runs means: start no other."""
    os.setpgrp()
    torch.set_num_threads(threads)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: request_stop(signum))


FOLDER_ERROR = "folder error"       # a worker's run found its folder damaged or in use
_DATA: dict[tuple, object] = {}    # a worker's loaded data sets, by what defines them
_stopped: list[bool] = []          # a stop reached this worker: it starts no other run


def _run_in_worker(values: dict, folder: str, resume: bool) -> tuple[str, dict | None, str]:
    if _stopped or pending_stop() is not None:
        _stopped.append(True)
        return "interrupted", None, "not started"
    config = RunConfig.from_dict(values)
    key = (config.data, config.data_dir, config.normalize, config.validation, config.download,
           config.train_size, config.test_size, config.device)

    def train() -> dict:
        if key not in _DATA:
            _DATA[key] = load_dataset(config, resolve_device(config.device))
        return run(config, folder, dataset=_DATA[key], resume=resume)

    with stop_on_signals():
        try:
            return _ended(train, Path(folder))
        except (RunInterrupted, KeyboardInterrupt) as err:
            _stopped.append(True)
            return "interrupted", _summary(Path(folder)), str(err) or "interrupted"
        except RunFolderError as err:
            return FOLDER_ERROR, None, str(err)


def _summary(folder: Path) -> dict | None:
    return read_file_or_none(folder, SUMMARY)
