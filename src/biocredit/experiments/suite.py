"""Running presets at a budget, resumably, and judging their claims.

A preset's folder holds one folder per step (or the step's runs directly, for a one-step
preset), ``step.json`` in each finished step's folder (its command line and wall time; a step
whose ``step.json`` records the same command is not run again) and, once every step is done,
``verdicts.md`` and ``reproduction.json`` (budget, commands, wall time, verdicts). A step
stopped part-way (a session's end, Ctrl-C) continues from its runs' last finished epochs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from ..training.folder import CHECKPOINT, CONFIG, RUN_RECORD
from ..training.results import read_json, write_json, write_text_atomic
from .claims import Verdict, evaluate, read_results, verdict_table
from .presets import Preset

Runner = Callable[[list[str]], int]   # runs one command line, returns its exit code
RECORD = "reproduction.json"
STEP_RECORD = "step.json"
STARTED = "step-started.json"      # a step's command line, written before it first runs


def choose(name: str, budget: str) -> tuple[list[Preset], list[Preset]]:
    """The presets ``name`` names (``all``: every one), and those of them to run at
    ``budget`` (``all`` leaves out the presets too slow for it)."""
    from . import PRESETS, preset
    listed = list(PRESETS.values()) if name == "all" else [preset(name)]
    return listed, [p for p in listed if name != "all" or budget in p.budgets]


def root_folder(name: str, budget: str, out: str | None) -> Path:
    """Where ``reproduce NAME`` writes (``out``, else under ``runs/``)."""
    return Path(out or (f"runs/reproduction-{budget}" if name == "all" else f"runs/{name}"))


def preset_folder(root: Path, preset: Preset, name: str) -> Path:
    """A preset's folder: ``root`` itself, or under it for ``all``."""
    return root / preset.name if name == "all" else root


def document_command(budget: str, out: str | None, extra: Sequence[str],
                     publish: str | None) -> str:
    """The command that writes a reproduction document, as the document quotes it."""
    return " ".join(["biocredit reproduce all --budget", budget,
                     *(["--out", out] if out else []), *extra,
                     *(["--publish", publish] if publish else [])])


def describe(preset: Preset, budget: str, folder: Path, extra: Sequence[str]) -> str:
    """A preset's settings (each traced to the paper or to our choice), its command lines at
    ``budget`` and its claims, as Markdown."""
    from ..report.markdown import markdown_table
    from .preset import settings_rows
    lines = [f"## {preset.name}: {preset.description}", ""]
    if preset.settings:
        lines += [markdown_table(settings_rows(preset)), ""]
    lines += [f"Commands at the {budget} budget (each flag once, at the value it takes):",
              "", "```"]
    lines += ["biocredit " + " ".join(effective(argv))
              for argv in commands(preset, budget, folder, extra)]
    lines += ["```", ""]
    lines += [f"- claim: `{c.statement}` — “{c.quote}” ({c.source})" for c in preset.claims]
    if preset.cost:
        lines.append(f"- cost at the paper budget: {preset.cost}")
    return "\n".join(lines) + "\n"


def effective(argv: Sequence[str]) -> list[str]:
    """``argv`` with each repeated ``--flag`` (and its value) kept only where it last occurs,
    the occurrence argparse uses: a budget's or the user's flags replace the preset's."""
    items: list[list[str]] = []
    for token in argv:
        if token.startswith("--") or not items or not items[-1][0].startswith("--") \
                or len(items[-1]) > 1:
            items.append([token])
        else:
            items[-1].append(token)          # the flag's value
    last = {item[0]: i for i, item in enumerate(items) if item[0].startswith("--")}
    return [token for i, item in enumerate(items)
            if not item[0].startswith("--") or last[item[0]] == i for token in item]


Say = Callable[[str], None]     # shows a line (the command line: prints it)


def reproduce(presets: Sequence[Preset], folders: dict[str, Path], budget: str,
              runner: Runner, extra: Sequence[str] = (), *, force: bool = False,
              say: Say = lambda text: None, warn: Say = lambda text: None
              ) -> tuple[int | None, list[str]]:
    """Run each preset at ``budget`` in its folder (``folders``, by name) with
    :func:`run_preset` (a finished one is not run again unless ``force``), telling each step
    (``say``) and each failure (``warn``); returns the exit code of a signal that stopped it
    (``None``: none did) and the names of the presets that failed."""
    failed = []
    for preset in presets:
        code = reproduce_one(preset, folders[preset.name], budget, runner, extra, force, say,
                             warn)
        if code in (130, 143):                  # Ctrl-C or SIGTERM: stop here
            return code, failed
        if code:
            failed.append(preset.name)
    return None, failed


def reproduce_one(preset: Preset, folder: Path, budget: str, runner: Runner,
                  extra: Sequence[str], force: bool, say: Say, warn: Say) -> int:
    """One preset of :func:`reproduce`: 0 when it is done (its verdicts said), else the
    exit code of the step that failed (1: its data is not installed)."""
    why_not = missing_data(preset, budget, extra)
    if why_not:
        warn(why_not)
        return 1
    say(f"== {preset.name}: {preset.description}"
        + (f"\npaper: {preset.paper}" if preset.paper else ""))
    if not force and is_done(preset, budget, folder, extra):
        say(f"(finished already in {folder}; --force runs it again)")
    else:
        record = run_preset(preset, budget, folder, runner, extra, force, lambda argv, skipped:
                            say(("(finished already) " if skipped else "") + "biocredit "
                                + " ".join(argv)))
        if record.get("exit_code") in (130, 143):
            warn(f"{preset.name} interrupted; the same command continues after the steps "
                 "that finished")
            return record["exit_code"]
        if record["status"] != "done":
            say(f"{preset.name} failed at step {record['failed_step']}; going on")
            return record.get("exit_code") or 1
    verdicts = root_verdicts(folder)
    if verdicts is not None:
        say(verdicts)
    return 0


def root_verdicts(root: Path) -> str | None:
    """The verdicts a finished preset wrote (its ``verdicts.md`` below the heading)."""
    verdicts = root / "verdicts.md"
    return verdicts.read_text().split("\n", 2)[2] if verdicts.is_file() else None


def step_folder(root: Path, step) -> Path:
    return root / step.name if step.name else root


def is_done(preset: Preset, budget: str, root: Path, extra: Sequence[str] = ()) -> bool:
    """Whether ``root`` holds this preset's finished run at this budget, same commands."""
    record = root / RECORD
    if not record.is_file():
        return False
    done = read_json(record)
    return done.get("status") == "done" and done.get("budget") == budget and \
        done.get("commands") == commands(preset, budget, root, extra)


def commands(preset: Preset, budget: str, root: Path, extra: Sequence[str] = ()) -> list[list[str]]:
    return [preset.command(step, budget, str(root), list(extra)) for step in preset.steps]


def run_preset(preset: Preset, budget: str, root: str | Path, runner: Runner,
               extra: Sequence[str] = (), force: bool = False,
               on_step: Callable[[list[str], bool], None] | None = None) -> dict:
    """Run ``preset``'s steps at ``budget`` into ``root`` (skipping finished steps unless
    ``force``), then judge its claims; returns the record written to ``reproduction.json``
    (``status`` "done", or "failed" with the exit code of the step that failed).
    ``on_step(argv, skipped)`` is told about each step before it runs."""
    root = Path(root)
    record = {"preset": preset.name, "budget": budget,
              "commands": commands(preset, budget, root, extra), "status": "done"}
    for step, argv in zip(preset.steps, record["commands"]):
        folder = step_folder(root, step)
        marker = folder / STEP_RECORD
        skipped = not force and marker.is_file() and read_json(marker).get("argv") == argv
        if on_step is not None:
            on_step(argv, skipped)
        if skipped:
            continue
        step_start = time.perf_counter()
        command = continued(argv, folder)
        if command is None:
            command = argv + ["--overwrite"]
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / STARTED, {"argv": argv})
        code = runner(command)
        if code != 0:
            record.update(status="failed", exit_code=code, failed_step=step.name or preset.name)
            break
        write_json(marker, {"argv": argv, "budget": budget,
                            "seconds": time.perf_counter() - step_start})
    verdicts = judge(preset, root) if record["status"] == "done" else []
    record["verdicts"] = [{**asdict(v.claim), "status": v.status, "ours": v.ours}
                          for v in verdicts]
    # Wall time of every step when it ran (a resumed preset counts its earlier steps too).
    record["seconds"] = sum(
        read_json(step_folder(root, s) / STEP_RECORD).get("seconds", 0.0)
        for s in preset.steps if (step_folder(root, s) / STEP_RECORD).is_file())
    if verdicts:
        write_text_atomic(root / "verdicts.md",
                          f"# {preset.name}\n\n{verdict_table(verdicts)}\n")
    write_json(root / RECORD, record)
    return record


def continued(argv: list[str], folder: Path) -> list[str] | None:
    """The command that continues ``argv``'s unfinished run in ``folder`` from its last
    finished epoch (``--resume``), or ``None`` when the folder holds no started run of this
    command line with a checkpoint to go on from (then it starts afresh: a clone of the
    committed results has the runs' files but not their checkpoints)."""
    marker = folder / STARTED
    if not marker.is_file() or read_json(marker).get("argv") != argv or not (
            (folder / RUN_RECORD).is_file() or (folder / CONFIG).is_file()):
        return None
    if not any(folder.rglob(CHECKPOINT)):
        return None
    return [argv[0], "--resume", str(folder)]


def missing_data(preset: Preset, budget: str, extra: Sequence[str] = ()) -> str | None:
    """Why ``preset`` cannot run at ``budget`` here: a data set that is not installed, with
    the one-line way to get it; ``None`` when every data set it reads is found."""
    from .. import data
    for name in sorted(preset.data_sets(budget, extra)):
        try:
            data.load(name, train_size=1, test_size=1)
        except data.DatasetNotFoundError as err:
            lines = str(err).splitlines()
            how = next((l.strip(" -") for l in lines[lines.index("To get it:") + 1:]), "") \
                if "To get it:" in lines else ""
            return f"{preset.name} needs {name}, which is not installed here" + \
                (f"; to get it: {how}" if how else "")
        except (ValueError, OSError):
            continue                 # a synthetic or teacher set: nothing to install
    return None


def results(preset: Preset, root: Path) -> dict[str, list[dict]]:
    """Every run of the preset's steps, named as the claims name them."""
    found: dict[str, list[dict]] = {}
    for step in preset.steps:
        found.update(read_results(step_folder(root, step), step.name))
    return found


def judge(preset: Preset, root: str | Path) -> list[Verdict]:
    """The verdict on each of the preset's claims, from the runs in ``root``."""
    found = results(preset, Path(root))
    return [evaluate(claim, found) for claim in preset.claims]
