"""A paper's claims as statements checked against our runs.

A :class:`Claim` is a Python comparison over the runs of a preset, e.g.
``dkp.test_error < dfa.test_error``: a name is a rule spec as run (``general:strategy=s1`` is
written ``general_strategy_s1``), in a preset of several steps prefixed by the step
(``deepnet.urfb.test_error``); an attribute is one of :data:`METRICS` from its summary. Only
comparisons, ``and``/``or``/``not``, arithmetic, numbers and ``abs``/``min``/``max`` are
allowed. With several seeds a claim *holds* when it holds for the seeds' mean values and for
more than half of the seeds taken one at a time.
"""

from __future__ import annotations

import ast
import re
import statistics
from dataclasses import dataclass

METRICS = ("test_error", "train_error", "val_error", "min_test_error", "mean_angle_deg",
           "first_mean_angle_deg", "mean_wb_correlation", "top_wb_correlation",
           "hidden_angle_deg", "pseudo_angle_deg", "epochs_completed")
FUNCTIONS = {"abs": abs, "min": min, "max": max}
_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub,
            ast.Compare, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.BinOp, ast.Add, ast.Sub,
            ast.Mult, ast.Div, ast.Attribute, ast.Name, ast.Load, ast.Constant, ast.Call)


@dataclass(frozen=True)
class Claim:
    """``statement`` (see the module doc), the paper's sentence it comes from (``quote``,
    verbatim from our copy), where (``source``), and the paper's own figure when our copy
    has it (``paper``; "lost in our copy" otherwise). ``note`` says what we chose where the
    paper is not numeric (e.g. a threshold for "very similar")."""

    statement: str
    quote: str
    source: str
    paper: str = ""
    note: str = ""

    def names(self) -> set[str]:
        """The runs the statement reads: ``rule`` or ``step.rule``."""
        return {run for run, _ in _reads(_parse(self.statement))}


@dataclass
class Verdict:
    claim: Claim
    status: str          # "holds", "does not hold", "not run"
    ours: str            # the values it read: mean ± std over seeds


def identifier(spec: str) -> str:
    """How a claim names the rule spec ``spec``: ``general:strategy=s1`` ->
    ``general_strategy_s1``."""
    return re.sub(r"\W", "_", spec)


def _run_name(node: ast.expr) -> str | None:
    """``dkp`` or ``deepnet.urfb`` for the run part of ``run.metric``; else ``None``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def _reads(tree: ast.Expression) -> list[tuple[str, str]]:
    """Every ``(run, metric)`` the statement reads, sorted."""
    return sorted({(_run_name(node.value), node.attr) for node in ast.walk(tree)
                   if isinstance(node, ast.Attribute) and node.attr in METRICS
                   and _run_name(node.value) is not None})


def _parse(statement: str) -> ast.Expression:
    tree = ast.parse(statement, mode="eval")
    selectors = {id(node.value) for node in ast.walk(tree)
                 if isinstance(node, ast.Attribute) and node.attr in METRICS}
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ValueError(f"claim {statement!r}: {type(node).__name__} is not allowed")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name)
                                               and node.func.id in FUNCTIONS):
            raise ValueError(f"claim {statement!r}: only {', '.join(FUNCTIONS)} may be called")
        if isinstance(node, ast.Attribute) and node.attr not in METRICS and \
                not (id(node) in selectors and _run_name(node) is not None):
            raise ValueError(f"claim {statement!r}: {node.attr!r} is not one of "
                             f"{', '.join(METRICS)}")
        if isinstance(node, ast.Attribute) and node.attr in METRICS and \
                _run_name(node.value) is None:
            raise ValueError(f"claim {statement!r}: {node.attr} must follow a rule or "
                             "step.rule name")
    return tree


class _Run:
    def __init__(self, values: dict):
        self.__dict__.update(values)


def _value(tree: ast.Expression, runs: dict[str, dict]) -> bool:
    """The statement's truth with ``runs``: run name (``rule`` or ``step.rule``) -> values."""
    namespace: dict = {}
    for name, values in runs.items():
        step, _, rule = name.rpartition(".")
        if step:
            namespace.setdefault(step, {})[rule] = _Run(values)
        else:
            namespace[rule] = _Run(values)
    namespace = {k: _Run(v) if isinstance(v, dict) else v for k, v in namespace.items()}
    return bool(eval(compile(tree, "<claim>", "eval"), {"__builtins__": {}, **FUNCTIONS},
                     namespace))


def evaluate(claim: Claim, results: dict[str, list[dict]]) -> Verdict:
    """Check ``claim`` against ``results``: run name (as :func:`read_results` gives it) ->
    the summaries of its seeds."""
    tree = _parse(claim.statement)
    by_name = results
    names = claim.names()
    missing = sorted(n for n in names if not by_name.get(n))
    if missing:
        return Verdict(claim, "not run", f"no runs of {', '.join(missing)}")
    read = _reads(tree)
    if any(s.get(attr) is None for name, attr in read for s in by_name[name]):
        return Verdict(claim, "not run", "a run lacks a value the claim reads")
    seeds = min(len(by_name[n]) for n in names)
    means = {n: {a: statistics.fmean(s[a] for s in by_name[n]) for m, a in read if m == n}
             for n in names}
    per_seed = [_value(tree, {n: {a: by_name[n][i][a] for m, a in read if m == n}
                              for n in names}) for i in range(seeds)]
    holds = _value(tree, means) and sum(per_seed) > seeds / 2
    ours = "; ".join(_describe(name, attr, [s[attr] for s in by_name[name]])
                     for name, attr in read)
    if seeds > 1:
        ours += f" (holds for {sum(per_seed)} of {seeds} seeds)"
    return Verdict(claim, "holds" if holds else "does not hold", ours)


def _describe(name: str, attr: str, values: list[float]) -> str:
    digits = 1 if attr.endswith("angle_deg") else 0 if attr == "epochs_completed" else 4
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{name}.{attr} {mean:.{digits}f}"
    return f"{name}.{attr} {mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def verdict_rows(verdicts: list[Verdict]) -> list[list[str]]:
    """Header and one row per verdict: claim (with its quote), the paper's figure, ours,
    verdict (Markdown inline marks)."""
    rows = [["claim", "paper", "ours", "verdict"]]
    for v in verdicts:
        rows.append([f"`{v.claim.statement}` — “{v.claim.quote}” ({v.claim.source})",
                     v.claim.paper or "lost in our copy", v.ours, f"**{v.status}**"])
    return rows


def verdict_table(verdicts: list[Verdict]) -> str:
    """A Markdown table: claim, the paper's figure, ours, verdict."""
    from ..report.markdown import markdown_table
    return markdown_table(verdict_rows(verdicts))


def read_results(folder, step: str = "") -> dict[str, list[dict]]:
    """Run name -> its seeds' summaries, from a ``compare`` or ``train`` output folder: the
    :func:`identifier` of each rule spec, prefixed by ``step.`` when ``step`` is given."""
    prefix = f"{step}." if step else ""
    return {prefix + identifier(spec): summaries
            for spec, summaries in _read_summaries(folder).items()}


def _read_summaries(folder) -> dict[str, list[dict]]:
    from pathlib import Path

    from ..training.results import read_json
    folder = Path(folder)
    if (folder / "comparison.json").is_file():
        comparison = read_json(folder / "comparison.json")
        if "runs" in comparison:
            return {spec: list(runs.values()) for spec, runs in comparison["runs"].items()}
        return {spec: [summary] for spec, summary in comparison["rules"].items()}
    if (folder / "seeds.json").is_file():
        summaries = [read_json(folder / f / "summary.json")
                     for f in read_json(folder / "seeds.json")["folders"]]
        return {summaries[0]["label"]: summaries}
    if (folder / "summary.json").is_file():
        summary = read_json(folder / "summary.json")
        return {summary["label"]: [summary]}
    return {}

