"""A preset is one experiment of a paper: its command lines (steps), every setting traced to
the paper's sentence or to our stated choice, and the paper's claims, checked against the runs
(:mod:`biocredit.experiments.claims`).

A step is written at the paper's settings: the ``paper`` budget runs it as written (the paper's
data set, architecture, loss, optimizer, learning rate, batch size, initialisations, stopping
rule, epochs, at least 3 seeds). The other budgets append flags (a later flag wins):

- ``short``: a quick look (a few minutes a preset): the preset's ``short`` flags (fewer
  epochs, one seed; image sets cut to :data:`SHORT_IMAGES`);
- ``smoke``: CI: :data:`SMOKE` and the preset's ``smoke`` flags, the papers' image sets given
  way to :data:`SMOKE_DATA` stand-ins (does every preset run and reach its claims).
"""

from __future__ import annotations

from dataclasses import dataclass

from .claims import Claim, identifier

BUDGETS = ("smoke", "short", "paper")
SMOKE_DATA = {"fashion-mnist": "synthetic", "mnist": "synthetic", "cifar10": "synthetic",
              "cifar100": "synthetic"}
SMOKE = ("--epochs", "1", "--train-size", "200", "--test-size", "200", "--seeds", "1",
         "--probe-size", "64", "--quiet")
SHORT_IMAGES = ("--train-size", "10000", "--test-size", "5000", "--seeds", "1")
SMOKE_SMALL = ("--train-size", "64", "--test-size", "64", "--probe-size", "16")  # deep nets
REPEATABLE = {"-O", "--rule-option"}     # flags a step may give more than once


@dataclass(frozen=True)
class Setting:
    """One setting of a preset: what (``name``), our value, and where it comes from: the
    paper's sentence, verbatim (``quote``), or why we chose it where the paper is silent
    (``choice``). Exactly one of ``quote`` and ``choice`` is given."""

    name: str
    value: str
    quote: str = ""
    choice: str = ""

    def source(self) -> str:
        return f"“{self.quote}”" if self.quote else f"not in the paper: our choice, {self.choice}"


@dataclass(frozen=True)
class Step:
    """One command line of a preset (without ``--out``); ``name`` names its folder and its
    runs in the claims (``name.rule.metric``); a one-step preset's step has no name.
    ``{root}`` in an argument is the preset's output folder (a later step may read an
    earlier one's checkpoint)."""

    argv: tuple[str, ...]
    name: str = ""

    def __post_init__(self):
        flags = [a for a in self.argv if a.startswith("--") or a == "-O"]
        twice = sorted({f for f in flags if flags.count(f) > 1} - REPEATABLE)
        if twice:
            raise ValueError(f"step {self.name or self.argv[:2]} gives {', '.join(twice)} "
                             "more than once (the last would silently win)")

    def flag(self, name: str) -> str | None:
        """The value of the last ``name`` flag, if any."""
        argv = list(self.argv)
        values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]
        return values[-1] if values else None

    def rule_specs(self) -> list[str]:
        specs = self.flag("--rules") or self.flag("--rule") or ""
        return [s for s in specs.split(",") if s]

    def run_names(self) -> set[str]:
        """How the claims name this step's runs."""
        prefix = f"{self.name}." if self.name else ""
        return {prefix + identifier(s) for s in self.rule_specs()}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    steps: tuple[Step, ...]
    paper: str = ""                   # what the paper reports for it, in words
    claims: tuple[Claim, ...] = ()
    source: str = ""                  # which paper: a key of PAPERS ("" for the demo)
    settings: tuple[Setting, ...] = ()  # every setting, traced to the paper or our choice
    short: tuple[str, ...] = ()       # flags appended at the short budget
    smoke: tuple[str, ...] = ()       # flags appended after the generic smoke flags
    figures: tuple[str, ...] = ("errors.png", "alignment.png")  # shown in REPRODUCTION.md
    budgets: tuple[str, ...] = BUDGETS  # where `reproduce all` runs it
    extension: bool = False           # our own experiment: its claims are not the paper's
    cost: str = ""                    # the paper budget's cost, where it cannot run here

    def command(self, step: Step, budget: str, root: str, extra=()) -> list[str]:
        """``step``'s command line at ``budget``, writing under the preset folder ``root``."""
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
        argv = [a.replace("{root}", root) for a in step.argv]
        if budget == "short":
            argv += self.short
        elif budget == "smoke":
            data = step.flag("--data")
            if data in SMOKE_DATA:
                argv += ["--data", SMOKE_DATA[data]]
            argv += SMOKE + (("--no-report",) if argv[0] == "compare" else ()) + self.smoke
        out = f"{root}/{step.name}" if step.name else root
        return [*argv, *extra, "--out", out]

    def data_sets(self, budget: str, extra=()) -> set[str]:
        """The data sets its steps read at ``budget`` (``--data`` in ``extra`` wins)."""
        found = set()
        for step in self.steps:
            argv = self.command(step, budget, "out", extra)
            values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--data"]
            if values:
                found.add(values[-1])
        return found


def one(*argv: str) -> tuple[Step, ...]:
    """The steps of a one-command preset."""
    return (Step(tuple(argv)),)


def cost(runs: int, epochs: int, cpu_seconds: float, gpu_seconds: float, note: str = "") -> str:
    """The paper budget's cost in words: ``runs`` runs of up to ``epochs`` epochs at
    ``cpu_seconds`` an epoch on 2 CPU cores (an AMD EPYC, measured or scaled from a measured
    2x800 MNIST epoch of about 10 s) and ``gpu_seconds`` on one H100 (estimated: small MLPs
    are bound by the per-step overhead there, about 1-2 ms a step)."""
    cpu, gpu = runs * epochs * cpu_seconds, runs * epochs * gpu_seconds
    return (f"{runs} runs × up to {epochs} epochs: about {duration(cpu)} on 2 CPU cores "
            f"({cpu_seconds:g} s an epoch), about {duration(gpu)} on one H100 (estimated)"
            + (f"; {note}" if note else ""))


def duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} minutes" if seconds < 5400 else f"{seconds / 3600:.0f} hours"


def settings_rows(preset: Preset) -> list[list[str]]:
    """Header and one row per setting: setting, our value, where it comes from."""
    return [["setting", "ours", "source"],
            *([s.name, s.value, s.source()] for s in preset.settings)]
