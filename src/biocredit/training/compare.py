"""Several runs as one: a comparison (several rules on the same model, data and seeds) and a
seed sweep (one rule, several seeds), each defined by a :class:`Plan`. Their runs go through
:func:`~.sweep.run_sweep`; their results are the files of the folder that holds them:
``run.json`` (the plan, with its id), ``seeds.json`` (a seed sweep's statistics) and
``comparison.json`` (each rule's summary or statistics, and the paired differences from a
baseline rule).

Nothing here prints: these functions return what happened, and the caller (the command line)
shows it. How each run trains (with a progress bar, say) is the caller's ``train``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import distributed
from .folder import (COMPARISON, RUN_RECORD, SEEDS, locked, new_run_id, prepare, read_file,
                     write_file)
from ..interrupt import stop_on_signals
from .results import RunFolderError, slug
from .config import RunConfig, resolve_device
from .run import build, check_task, load_dataset
from .seeds import paired_differences, seed_statistics
from .sweep import DoneFn, Outcome, Sweep, Task, run_sweep

COMMANDS = ("train", "compare")


@dataclass
class Plan:
    """Several runs as one, as ``run.json`` stores it (a resume reads it back): ``command``
    (``train``: one rule's seeds; ``compare``: several rules), the config of each rule spec
    (e.g. ``general:strategy=s2``), the seeds, the ``baseline`` rule of a comparison
    (``None``: the first), the caller's own settings (``options``: how it shows the runs,
    kept for a resume), the command line that made it (``argv``, a record) and its id.
    ``configs`` is ``None`` for a ``run.json`` from before plans were stored (it has only
    its command line)."""

    command: str
    configs: dict[str, RunConfig] | None
    seeds: list[int]
    baseline: str | None = None
    options: dict = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    run_id: str | None = None

    def folder_name(self) -> str:
        """A name for the plan's folder: its rule (or ``compare``), data, model, first seed
        (and how many seeds a rule's sweep has)."""
        spec, first = next(iter(self.configs.items()))
        what = f"{slug(first.data)}-{slug(first.model)}-s{first.seed}"
        if self.command == "compare":
            return f"compare-{what}"
        return f"{slug(spec)}-{what}" + (f"-n{len(self.seeds)}" if len(self.seeds) > 1 else "")

    def change(self, **changes) -> None:
        """Continue with ``changes`` (``epochs``, ``device``: what a resumed run may change)
        made to every config, each checked."""
        for config in self.configs.values():
            for name, value in changes.items():
                setattr(config, name, value)
            config.validate()

    def record(self) -> dict:
        """``run.json``'s contents (a new run id if it has none)."""
        return {"run_id": self.run_id or new_run_id(), "command": self.command,
                "argv": self.argv, "configs": {spec: dataclasses.asdict(config)
                                               for spec, config in self.configs.items()},
                "seeds": self.seeds, "baseline": self.baseline, "options": self.options}


def read_plan(folder: Path) -> Plan:
    """The :class:`Plan` in ``folder``'s ``run.json``; a record that is not one is a
    :class:`RunFolderError` naming the file."""
    path = folder / RUN_RECORD
    record = read_file(folder, RUN_RECORD)
    argv = record.get("argv")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv) or \
            record.get("command") not in COMMANDS:
        raise RunFolderError(f"{path} is not a biocredit run record (corrupt?)")
    if argv[:1] != [record["command"]]:
        raise RunFolderError(f"{path}: its command line is not one of biocredit "
                             f"{record['command']} (corrupt?)")
    run_id = record.get("run_id") if isinstance(record.get("run_id"), str) else None
    plan = Plan(record["command"], None, [], argv=argv, run_id=run_id)
    if "configs" not in record:                  # (written before plans were stored)
        return plan
    configs, seeds, baseline = record["configs"], record.get("seeds"), record.get("baseline")
    if not isinstance(configs, dict) or not configs or \
            not all(isinstance(c, dict) for c in configs.values()) or \
            (plan.command == "train" and len(configs) != 1):
        raise RunFolderError(f"{path}: configs must be an object of configs (one for a "
                             f"train run); got {configs!r}")
    if baseline is not None and (not isinstance(baseline, str) or baseline not in configs):
        raise RunFolderError(f"{path}: baseline must be one of its configs; got {baseline!r}")
    if not isinstance(seeds, list) or not seeds or \
            not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise RunFolderError(f"{path}: seeds must be a list of whole numbers; got {seeds!r}")
    plan.configs = {spec: RunConfig.from_dict(values, str(path))
                    for spec, values in configs.items()}
    plan.seeds, plan.baseline = seeds, baseline
    plan.options = record.get("options") if isinstance(record.get("options"), dict) else {}
    return plan


def write_plan(out: Path, plan: Plan) -> None:
    """``run.json``: the plan and its id (a new one if it has none)."""
    write_file(out, RUN_RECORD, plan.record())


def recorded_run_id(out: Path) -> str:
    return read_file(out, RUN_RECORD)["run_id"]


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


def run_seeds(plan: Plan, out: Path, train: Callable[[Task], dict], *, jobs: int = 1,
              on_done: DoneFn | None = None, resume: bool = False, overwrite: bool = False,
              reraise: bool = False) -> SeedSweep:
    """Train the plan's one config once per seed into ``out/seed-SEED`` (``train(task)``
    runs one in this process; see :func:`~.sweep.run_sweep` for ``jobs``, ``on_done`` and
    ``reraise``), then write ``seeds.json``. The writer process (rank 0 under torchrun)
    holds the folder's lock and writes ``run.json`` and ``seeds.json``."""
    (name, config), = plan.configs.items()
    tasks = seed_tasks(config, plan.seeds, out, name)
    writer = distributed.current().writer
    with stop_on_signals(), contextlib.ExitStack() as stack:
        if writer:
            stack.enter_context(locked(out))
            prepare(out, overwrite=overwrite, resume=resume)
            write_plan(out, plan)
        sweep = run_sweep(tasks, jobs, train, on_done, resume=resume, reraise=reraise)
        summaries = [o.summary for o in sweep.outcomes  # a failed run has no statistics
                     if o.summary is not None and o.status != "failed"]
        statistics = None
        if sweep.outcomes and writer and sweep.interrupted is None:
            statistics = write_seeds(out, plan.seeds, summaries)
    marks = sorted({o.status for o in sweep.outcomes if o.status != "completed"})
    return SeedSweep(sweep, summaries, statistics, marks)


def write_seeds(out: Path, seeds: list[int], summaries: list[dict]) -> dict:
    """``seeds.json``: the statistics over ``summaries`` (returned), the seeds and their
    folders."""
    statistics = seed_statistics(summaries)
    write_file(out, SEEDS, {"run_id": recorded_run_id(out), "seeds": seeds,
                            "statistics": statistics, "folders": [f"seed-{s}" for s in seeds]})
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
    """The baseline rule (default: the first), checked to be one of ``specs``."""
    baseline = (baseline or "").strip() or specs[0]
    if baseline not in specs:
        raise ValueError(f"`baseline={baseline!r}` is not one of the rules compared: "
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


def run_comparison(plan: Plan, out: Path, train: Callable[[Task, object], dict], *,
                   jobs: int = 1, on_done: DoneFn | None = None, resume: bool = False,
                   overwrite: bool = False, reraise: bool = False) -> Comparison:
    """Train every rule of the plan (by their spec; the same data, model and settings) for
    every seed in ``out`` (see :func:`comparison_tasks`), then write ``comparison.json``
    (and, for autoencoders, ``reconstructions.png``) of the runs that ended. The data set
    is loaded once and every rule built once before any trains; ``train(task, dataset)``
    runs one in this process (see :func:`~.sweep.run_sweep` for the rest)."""
    configs, seeds = plan.configs, plan.seeds
    specs = list(configs)
    device = resolve_device(configs[specs[0]].device)
    tasks, of_task = comparison_tasks(configs, seeds, out)
    with locked(out):
        prepare(out, overwrite=overwrite, resume=resume)
        with stop_on_signals():         # set-up: a signal stops it at once, the lock goes
            dataset = load_dataset(configs[specs[0]], device)
            check_compatible(configs, dataset, device)
        write_plan(out, plan)
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
            write_comparison(result, out, configs, seeds, baseline_rule(plan.baseline, specs))
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
        write_file(out, COMPARISON, {"run_id": run_id, "config": {**shared, "seed": seeds[0]},
                                     "rules": result.rules})
    else:
        result.rules = {spec: seed_statistics(list(runs[spec].values())) for spec in specs}
        result.paired = paired_differences(runs, baseline)
        result.record = {
            "run_id": run_id, "config": shared, "seeds": seeds, "rules": result.rules,
            "paired_differences": result.paired,
            "runs": {spec: {str(seed): s for seed, s in runs[spec].items()} for spec in specs},
            "folders": [str(f.relative_to(out)) for f in result.folders.values()]}
        write_file(out, COMPARISON, result.record)
    if first.task == "autoencoder":
        from .autoencoder import combine_reconstructions
        combine_reconstructions(out / "reconstructions.png", result.dataset, result.folders)
