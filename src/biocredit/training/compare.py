"""Several runs as one: a comparison (several rules on the same model, data and seeds) and a
seed sweep (one rule, several seeds). Their runs go through :func:`~.sweep.run_sweep`; their
results are the files of the folder that holds them: ``run.json`` (its id and the command
that made it), ``seeds.json`` (a seed sweep's statistics) and ``comparison.json`` (each
rule's summary or statistics, and the paired differences from a baseline rule).

Nothing here prints: these functions return what happened, and the caller (the command line)
shows it. How each run trains (with a progress bar, say) is the caller's ``train``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import distributed
from .folder import locked, new_run_id, prepare
from .interrupt import stop_on_signals
from .results import read_json, slug, write_json
from .config import RunConfig, resolve_device
from .run import build, check_task, load_dataset
from .seeds import paired_differences, seed_statistics
from .sweep import DoneFn, Outcome, Sweep, Task, run_sweep

RUN_RECORD = "run.json"


def write_run_record(out: Path, command: str, argv: list[str], run_id: str | None = None) -> None:
    """``run.json`` of a folder of several runs: its id (``run_id``, else a new one) and the
    command line that made it (``--resume`` re-reads it)."""
    write_json(out / RUN_RECORD, {"run_id": run_id or new_run_id(), "command": command,
                                  "argv": argv})


def recorded_run_id(out: Path) -> str:
    return read_json(out / RUN_RECORD)["run_id"]


# -- seed sweeps -------------------------------------------------------------------------------

@dataclass
class SeedSweep:
    """How a seed sweep ended: the sweep, the summaries of the runs that did not fail (in
    seed order), the statistics over them (``None`` when ``seeds.json`` was not written: no
    run ended, this process is not the writer, or a signal stopped the sweep), and the
    statuses other than completed among the runs (sorted)."""

    sweep: Sweep
    summaries: list[dict]
    statistics: dict | None
    marks: list[str]


def seed_tasks(config: RunConfig, seeds: Sequence[int], out: Path, name: str) -> list[Task]:
    """One task per seed: ``config`` with that seed, named ``"NAME sSEED"``, in
    ``out/seed-SEED``."""
    tasks = []
    for seed in seeds:
        seeded = copy.deepcopy(config)
        seeded.seed = seed
        tasks.append(Task(f"{name} s{seed}", seeded, out / f"seed-{seed}"))
    return tasks


def run_seeds(config: RunConfig, seeds: list[int], out: Path, train: Callable[[Task], dict],
              *, name: str, jobs: int = 1, on_done: DoneFn | None = None,
              resume: bool = False, overwrite: bool = False, argv: list[str] | None = None,
              run_id: str | None = None, reraise: bool = False) -> SeedSweep:
    """Train ``config`` once per seed into ``out/seed-SEED`` (``train(task)`` runs one in
    this process; see :func:`~.sweep.run_sweep` for ``jobs``, ``on_done`` and ``reraise``),
    then write ``seeds.json``. The writer process (rank 0 under torchrun) holds the folder's
    lock and writes ``run.json`` (``argv``, ``run_id``) and ``seeds.json``."""
    tasks = seed_tasks(config, seeds, out, name)
    writer = distributed.current().writer
    with stop_on_signals(), contextlib.ExitStack() as stack:
        if writer:
            stack.enter_context(locked(out))
            prepare(out, overwrite=overwrite, resume=resume)
            write_run_record(out, "train", argv or [], run_id)
        sweep = run_sweep(tasks, jobs, train, on_done, resume=resume, reraise=reraise)
        summaries = [o.summary for o in sweep.outcomes  # a failed run has no statistics
                     if o.summary is not None and o.status != "failed"]
        statistics = None
        if sweep.outcomes and writer and sweep.interrupted is None:
            statistics = write_seeds(out, seeds, summaries)
    marks = sorted({o.status for o in sweep.outcomes if o.status != "completed"})
    return SeedSweep(sweep, summaries, statistics, marks)


def write_seeds(out: Path, seeds: list[int], summaries: list[dict]) -> dict:
    """``seeds.json``: the statistics over ``summaries`` (returned), the seeds and their
    folders."""
    statistics = seed_statistics(summaries)
    write_json(out / "seeds.json", {"run_id": recorded_run_id(out), "seeds": seeds,
                                    "statistics": statistics,
                                    "folders": [f"seed-{s}" for s in seeds]})
    return statistics


# -- comparisons -------------------------------------------------------------------------------

@dataclass
class Comparison:
    """How a comparison ended. ``runs``: per rule (as given, e.g. ``general:strategy=s2``)
    and seed, its summary (or a failed run's :func:`failed_summary`), for the rules with a
    run that ended; ``folders``: each run's folder by task name; ``marks``: the rules with a
    diverged or failed run, and how; ``rules``: what ``comparison.json`` holds per rule
    (one seed: the run's summary; several: :func:`seed_statistics`); ``paired``: several
    seeds: the paired differences from the baseline; ``record``: several seeds: the whole
    ``comparison.json`` (for the report's statistics)."""

    sweep: Sweep
    runs: dict[str, dict[int, dict]]
    folders: dict[str, Path]
    marks: dict[str, str]
    dataset: object
    rules: dict[str, dict] = dataclasses.field(default_factory=dict)
    paired: dict | None = None
    record: dict | None = None


def baseline_rule(baseline: str | None, specs: list[str]) -> str:
    """``--baseline`` (default: the first rule), checked to be one of ``specs``."""
    baseline = (baseline or "").strip() or specs[0]
    if baseline not in specs:
        raise ValueError(f"--baseline {baseline!r} is not one of the rules compared: "
                         f"{', '.join(specs)}")
    return baseline


def comparison_tasks(configs: dict[str, RunConfig], seeds: list[int],
                     out: Path) -> tuple[list[Task], dict[str, tuple[str, int]]]:
    """Every rule's run for every seed (rule by rule), in ``out/RULE`` (several seeds:
    ``out/RULE/seed-SEED``, named ``"RULE sSEED"``); and each task's rule and seed by name."""
    tasks, of_task = [], {}
    for spec, seed in ((spec, seed) for spec in configs for seed in seeds):
        config = copy.deepcopy(configs[spec])
        config.seed = seed
        name = spec
        if len(seeds) > 1:
            config.label = name = f"{spec} s{seed}"
        folder = out / slug(spec) / f"seed-{seed}" if len(seeds) > 1 else out / slug(spec)
        tasks.append(Task(name, config, folder))
        of_task[name] = (spec, seed)
    return tasks, of_task


def check_compatible(configs: dict[str, RunConfig], dataset, device) -> None:
    """Build every run of a comparison once (model, rule, optimizer) before any trains, so
    a rule that does not fit the model fails now, not after the others trained."""
    for spec, config in configs.items():
        check_task(config, dataset)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            try:
                build(config, dataset, device)
            except ValueError as err:
                raise ValueError(f"{spec}: {err}") from None


def run_comparison(configs: dict[str, RunConfig], seeds: list[int], out: Path,
                   train: Callable[[Task, object], dict], *, baseline: str | None = None,
                   jobs: int = 1, on_done: DoneFn | None = None, resume: bool = False,
                   overwrite: bool = False, argv: list[str] | None = None,
                   run_id: str | None = None, reraise: bool = False) -> Comparison:
    """Train every rule of ``configs`` (by their spec; the same data, model and settings)
    for every seed in ``out`` (see :func:`comparison_tasks`), then write
    ``comparison.json`` (and, for autoencoders, ``reconstructions.png``) of the runs that
    ended. The data set is loaded once and every rule built once before any trains;
    ``train(task, dataset)`` runs one in this process (see :func:`~.sweep.run_sweep` for
    the rest)."""
    specs = list(configs)
    device = resolve_device(configs[specs[0]].device)
    tasks, of_task = comparison_tasks(configs, seeds, out)
    with locked(out):
        prepare(out, overwrite=overwrite, resume=resume)
        with stop_on_signals():         # set-up: a signal stops it at once, the lock goes
            dataset = load_dataset(configs[specs[0]], device)
            check_compatible(configs, dataset, device)
        write_run_record(out, "compare", argv or [], run_id)
        with stop_on_signals():
            sweep = run_sweep(tasks, jobs, lambda task: train(task, dataset), on_done,
                              resume=resume, reraise=reraise)
        result = Comparison(sweep, {spec: {} for spec in specs}, {}, {}, dataset)
        for outcome in sweep.outcomes:
            spec, seed = of_task[outcome.task.name]
            result.runs[spec][seed] = outcome.summary or failed_summary(outcome)
            result.folders[outcome.task.name] = outcome.task.folder
            if outcome.status != "completed":
                result.marks[spec] = outcome.status
        result.runs = {spec: r for spec, r in result.runs.items() if r}
        if result.runs:
            write_comparison(result, out, configs, seeds, baseline_rule(baseline, specs))
    return result


def failed_summary(outcome: Outcome) -> dict:
    """A table row for a run that failed before writing its summary."""
    config = outcome.task.config
    return {"rule": config.rule, "label": config.label or config.rule, "seed": config.seed,
            "status": outcome.status, "message": outcome.message}


def write_comparison(result: Comparison, out: Path, configs: dict[str, RunConfig],
                     seeds: list[int], baseline: str) -> None:
    """``comparison.json`` of the runs that ended (``result.runs``), filling in
    ``result.rules``, ``.paired`` and ``.record``; an autoencoder comparison's
    reconstructions side by side."""
    runs, specs = result.runs, list(result.runs)
    first = configs[next(iter(configs))]
    shared = dataclasses.asdict(configs[specs[0]])
    for key in ("rule", "label", "rule_options", "seed"):
        shared.pop(key)
    run_id = recorded_run_id(out)
    if len(seeds) == 1:
        result.rules = {spec: runs[spec][seeds[0]] for spec in specs}
        write_json(out / "comparison.json", {"run_id": run_id,
                                             "config": {**shared, "seed": seeds[0]},
                                             "rules": result.rules})
    else:
        result.rules = {spec: seed_statistics(list(runs[spec].values())) for spec in specs}
        result.paired = paired_differences(runs, baseline)
        result.record = {
            "run_id": run_id, "config": shared, "seeds": seeds, "rules": result.rules,
            "paired_differences": result.paired,
            "runs": {spec: {str(seed): s for seed, s in runs[spec].items()} for spec in specs},
            "folders": [str(f.relative_to(out)) for f in result.folders.values()]}
        write_json(out / "comparison.json", result.record)
    if first.task == "autoencoder":
        from .autoencoder import combine_reconstructions
        combine_reconstructions(out / "reconstructions.png", result.dataset, result.folders)
