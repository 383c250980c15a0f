"""Reading run folders back: their files, and the trained network they saved."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..training.folder import (COMPARISON, CONFIG, METRICS, MODEL, SEEDS, STEPS, SUMMARY,
                                load_model, model_run_id, read_file)
from ..training.results import slug
from ..training.run import RunConfig, build, load_dataset


@dataclass
class RunRecord:
    """What a run folder holds: ``config.json``, ``summary.json`` (may be missing for a run
    that is still going), the ``metrics.jsonl`` rows and, when logged, the ``steps.jsonl``
    rows. ``label`` names the run in tables and legends."""

    folder: Path
    config: dict
    summary: dict
    metrics: list[dict]
    steps: list[dict] = field(default_factory=list)
    label: str = ""

    @property
    def rule(self) -> str:
        return self.config.get("rule", "?")

    @property
    def hidden_layers(self) -> int:
        """Hidden layers with a logged angle (0 if no epoch was logged)."""
        return max((len(r.get("angle_deg") or []) for r in self.metrics), default=0)


def read_run(folder: str | os.PathLike) -> RunRecord:
    """Read a run folder (see :mod:`biocredit.training.run`); files of different runs in
    one folder (their ``run_id`` differs) are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such run folder")
    if (folder / CONFIG).is_file() and not (folder / METRICS).is_file() \
            and (folder / SUMMARY).is_file():
        status = read_file(folder, SUMMARY).get("status", "running")
        raise ValueError(f"{folder}: its run finished no epoch (status {status}); there is "
                         "nothing to report")
    for name in (CONFIG, METRICS):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} is not a run folder: it has no {name}")
    summary = read_file(folder, SUMMARY) if (folder / SUMMARY).is_file() else {}
    steps = read_file(folder, STEPS) if (folder / STEPS).is_file() else []
    config = read_file(folder, CONFIG)
    metrics = read_file(folder, METRICS)
    check_one_run(folder, {CONFIG: [config], SUMMARY: [summary], METRICS: metrics,
                           STEPS: steps})
    label = config.get("label") or config.get("rule", folder.name)
    return RunRecord(folder, config, summary, metrics, steps, label=str(label))


def check_one_run(folder: Path, files: dict[str, list[dict]]) -> None:
    """Every ``run_id`` in a run folder's files must be the same (folders written before
    run ids existed have none, and pass)."""
    seen: dict[str, str] = {}
    for name, rows in files.items():
        for row in rows:
            run_id = row.get("run_id")
            if run_id is not None:
                seen.setdefault(str(run_id), name)
    if len(seen) > 1:
        which = ", ".join(f"{name} is run {run_id}" for run_id, name in seen.items())
        raise ValueError(f"{folder} mixes files of different runs ({which}); run it again "
                         "with `overwrite=True`")


def expand_run_dirs(paths: list[str | os.PathLike]) -> list[Path]:
    """Run folders from ``paths``: a ``compare`` folder (one holding ``comparison.json``)
    stands for its rules' run folders, in its order; a folder of run folders (a sweep's,
    one run per job) for those of them that finished an epoch, by name."""
    folders = []
    for path in map(Path, paths):
        if (path / COMPARISON).is_file() and not (path / CONFIG).is_file():
            comparison = read_file(path, COMPARISON)
            if "folders" in comparison:           # several seeds: every run
                runs = [path / str(f) for f in comparison["folders"]]
            else:
                runs = [path / slug(str(name)) for name in comparison.get("rules", {})]
            folders += [f for f in runs if finished_an_epoch(f)]
        elif (path / SEEDS).is_file() and not (path / CONFIG).is_file():
            runs = [path / str(f) for f in read_file(path, SEEDS).get("folders", [])]
            folders += [f for f in runs if finished_an_epoch(f)]
        elif path.is_dir() and not (path / CONFIG).is_file() and runs_inside(path):
            folders += [f for f in expand_run_dirs(runs_inside(path)) if finished_an_epoch(f)]
        else:
            folders.append(path)
    if not folders:
        raise ValueError("a report needs at least one run folder")
    return folders


def runs_inside(folder: Path) -> list[Path]:
    """The sub-folders of ``folder`` that hold a run, a comparison or several seeds."""
    return sorted(d for d in folder.iterdir() if d.is_dir() and any(
        (d / name).is_file() for name in (CONFIG, COMPARISON, SEEDS)))


def finished_an_epoch(folder: Path) -> bool:
    """Whether a run of a comparison or of several seeds has epochs to report (a run that
    diverged in its first epoch has none)."""
    return (folder / METRICS).is_file() or not (folder / CONFIG).is_file()


def label_runs(records: list[RunRecord]) -> None:
    """Name each run by its label (its rule, or the rule spec it was run as in ``compare``),
    or by its folder where labels repeat."""
    names = [r.label or r.rule for r in records]
    if len(set(names)) == len(names):
        for r, name in zip(records, names):
            r.label = name
        return
    root = common_parent([r.folder for r in records])
    for r in records:
        try:
            r.label = str(r.folder.resolve().relative_to(root))
        except ValueError:
            r.label = str(r.folder)
        if r.label in ("", "."):
            r.label = r.folder.resolve().name


def common_parent(folders: list[Path]) -> Path:
    """The deepest folder holding all of ``folders`` (resolved)."""
    return Path(os.path.commonpath([str(f.resolve()) for f in folders]))


def run_config(config: dict, device: str = "cpu", source: str = CONFIG) -> RunConfig:
    """A :class:`RunConfig` from a ``config.json`` dict (keys this version does not know are
    dropped), moved to ``device``."""
    return RunConfig.from_dict({**config, "device": device}, source)


def load_trained(folder: str | os.PathLike, device: str = "cpu", dataset=None):
    """The trained network of a run folder (in eval mode, on ``device``) and its data set.

    The network is rebuilt from ``config.json`` (the same model, rule and seed) and
    ``model.pt`` is loaded into it; torch's global random state is left as it was. Pass
    ``dataset`` to reuse one already loaded (it is moved to ``device``).
    """
    folder = Path(folder)
    if not (folder / MODEL).is_file():
        raise FileNotFoundError(f"{folder} has no model.pt (the run saved no network)")
    saved = read_file(folder, CONFIG)
    config = run_config(saved, device, str(folder / CONFIG))
    torch_device = torch.device(device)
    if dataset is None:
        dataset = load_dataset(config, torch_device)
    dataset = dataset.to(torch_device)
    with torch.random.fork_rng(devices=[torch_device] if torch_device.type == "cuda" else []):
        net, _, _, _ = build(config, dataset, torch_device)
    state = load_model(folder / MODEL, torch_device)
    try:
        net.load_state_dict(state)
    except Exception as err:
        raise ValueError(f"{folder / MODEL} cannot be loaded into the run's model: it "
                         f"is truncated, corrupt or from another run "
                         f"({type(err).__name__})") from None
    check_one_run(folder, {CONFIG: [saved], MODEL: [{"run_id": model_run_id(state)}]})
    net.eval()
    return net, dataset
