"""A paper's claims as statements checked against our runs.

A :class:`Claim` is a Python expression over the runs of a preset, e.g.
``dkp.test_error < dfa.test_error``: a name is a rule spec as run (``general:strategy=s1`` is
written ``general_strategy_s1``), in a preset of several steps prefixed by the step
(``deepnet.urfb.test_error``); an attribute is one of :data:`METRICS`. Only comparisons,
``and``/``or``/``not``, arithmetic, numbers, ``abs``/``min``/``max`` and ``near`` are allowed.
The seeds decide, with a margin, so that a few test images cannot:

- ``run.metric`` is a *sample*: one value per seed, paired across runs by seed (the first n
  seeds, n the fewest of the runs read). ``+ - * /``, ``abs``, ``min``, ``max`` act seed by
  seed (on a sample and a number too).
- ``L < R`` holds when the paired difference d = L − R lies below 0 by more than its
  standard error se = std(d) / √n: mean(d) + se < 0 (``<=``: ≤ 0; ``>``: mean(d) − se > 0;
  ``>=``: ≥ 0). ``a < b < c`` is ``a < b and b < c``. With one seed there is no standard
  error: the values are compared as they are, and the verdict says "one seed: no margin".
- ``near(x, paper, tol)`` holds when |mean(x) − paper| ≤ max(tol, 2·std(x)) (one seed: tol);
  ``paper`` and ``tol`` are numbers.
- ``and``/``or``/``not`` combine these as usual (``not a < b``: a < b is not shown).

Besides the summaries' values, from the run's ``metrics.jsonl``: ``test_error_area`` and
``train_error_area``, the mean of the per-epoch error over the epochs run (the normalised area
under the error curve, a speed measure: lower = learned faster), and ``first_train_error``,
the train error after the first epoch.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..training.seeds import paired_t

AREAS = {"test_error_area": "test_error", "train_error_area": "train_error"}
FIRST = {"first_train_error": "train_error"}
METRICS = ("test_error", "train_error", "val_error", "min_test_error", "mean_angle_deg",
           "first_mean_angle_deg", "mean_wb_correlation", "top_wb_correlation",
           "hidden_angle_deg", "pseudo_angle_deg", "epochs_completed", *AREAS, *FIRST,
           "test_loss", "test_bpc", "unigram_bpc")      # (the last three: language models)
FUNCTIONS = ("abs", "min", "max", "near")
_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub,
            ast.Compare, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.BinOp, ast.Add, ast.Sub,
            ast.Mult, ast.Div, ast.Attribute, ast.Name, ast.Load, ast.Constant, ast.Call)
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
               ast.Div: operator.truediv}
# a comparison's statistic from mean(d) and se(d), and how it must compare with 0
_COMPARISONS = {ast.Lt: (operator.add, operator.lt), ast.LtE: (operator.add, operator.le),
                ast.Gt: (operator.sub, operator.gt), ast.GtE: (operator.sub, operator.ge)}


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
    margin: str = ""     # what decided each comparison: mean ± se of the difference


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
        if isinstance(node, ast.Constant) and (isinstance(node.value, bool) or
                                               not isinstance(node.value, (int, float))):
            raise ValueError(f"claim {statement!r}: {node.value!r} is not a number")
        if isinstance(node, ast.Attribute) and node.attr not in METRICS and \
                not (id(node) in selectors and _run_name(node) is not None):
            raise ValueError(f"claim {statement!r}: {node.attr!r} is not one of "
                             f"{', '.join(METRICS)}")
        if isinstance(node, ast.Attribute) and node.attr in METRICS and \
                _run_name(node.value) is None:
            raise ValueError(f"claim {statement!r}: {node.attr} must follow a rule or "
                             "step.rule name")
    return tree


Value = float | tuple[float, ...]        # a number, or a sample: one value per seed


def _seedwise(f, *args: Value) -> Value:
    """``f`` seed by seed; a number stands for the same value at every seed."""
    n = max((len(a) for a in args if isinstance(a, tuple)), default=None)
    if n is None:
        return f(*args)
    return tuple(f(*(a[i] if isinstance(a, tuple) else a for a in args)) for i in range(n))


def _num(x: float) -> str:
    return f"{x:.4f}".replace("-", "−")


class _Judge:
    """Evaluates a statement over ``samples`` ((run, metric) -> per-seed values), noting
    in ``margins`` what decided each comparison and ``near``, in ``nears`` what each
    ``near`` read."""

    def __init__(self, statement: str, samples: dict[tuple[str, str], tuple[float, ...]]):
        self.statement, self.samples = statement, samples
        self.margins: list[str] = []
        self.nears: list[str] = []

    def _fail(self, node: ast.expr, what: str) -> ValueError:
        return ValueError(f"claim {self.statement!r}: {ast.unparse(node)} {what}")

    def truth(self, node: ast.expr) -> bool:
        if isinstance(node, ast.BoolOp):            # every operand, for its margin
            values = [self.truth(v) for v in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not self.truth(node.operand)
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            values = [self.quantity(s) for s in sides]
            return all([self.compare(op, values[i], values[i + 1], sides[i], sides[i + 1])
                        for i, op in enumerate(node.ops)])
        if isinstance(node, ast.Call) and node.func.id == "near":
            return self.near(node)
        raise self._fail(node, "is a number, not a statement (compare it, or use near)")

    def quantity(self, node: ast.expr) -> Value:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Attribute) and node.attr in METRICS:
            return self.samples[(_run_name(node.value), node.attr)]
        if isinstance(node, ast.BinOp):
            return _seedwise(_ARITHMETIC[type(node.op)], self.quantity(node.left),
                             self.quantity(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return _seedwise(operator.neg, self.quantity(node.operand))
        if isinstance(node, ast.Call) and node.func.id != "near":
            name = node.func.id
            if len(node.args) != 1 if name == "abs" else len(node.args) < 2:
                raise self._fail(node, "needs one argument" if name == "abs" else
                                 "needs two or more arguments")
            return _seedwise({"abs": abs, "min": min, "max": max}[name],
                             *(self.quantity(a) for a in node.args))
        raise self._fail(node, "is not a number")

    def compare(self, op: ast.cmpop, left: Value, right: Value, lnode: ast.expr,
                rnode: ast.expr) -> bool:
        statistic, side = _COMPARISONS[type(op)]
        d = _seedwise(operator.sub, left, right)
        if not isinstance(d, tuple):               # two numbers
            return side(d, 0)
        rtext = ast.unparse(rnode)
        label = f"{ast.unparse(lnode)} − " + (f"({rtext})" if isinstance(rnode, ast.BinOp)
                                                else rtext)
        if len(d) == 1:
            self.margins.append(f"{label} = {_num(d[0])} (one seed: no margin)")
            return side(d[0], 0)
        test = paired_t(d)          # the statistics compare --seeds prints
        mean, se = test["mean"], test["se"]
        self.margins.append(f"{label} = {_num(mean)} ± {_num(se)} (se, {len(d)} seeds; "
                            f"paired t p {_p(test['p'])})")
        return side(statistic(mean, se), 0)

    def near(self, node: ast.Call) -> bool:
        if len(node.args) != 3:
            raise self._fail(node, "must be near(x, paper, tol)")
        x, paper, tol = (self.quantity(a) for a in node.args)
        if isinstance(paper, tuple) or isinstance(tol, tuple):
            raise self._fail(node, "takes the paper's number and a tolerance as numbers")
        values = x if isinstance(x, tuple) else (x,)
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        within = max(tol, 2 * std)
        label = ast.unparse(node.args[0])
        spread = f" ± {_num(std)}" if len(values) > 1 else ""
        self.nears.append(f"{label} {_num(mean)}{spread} vs the paper's {paper:g} "
                          f"(tolerance {_num(within)})")
        holds = abs(mean - paper) <= within
        self.margins.append(f"mean {label} − {paper:g} = {_num(mean - paper)}, "
                            f"{'within' if holds else 'beyond'} ±{_num(within)}")
        return holds


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.2g}"


def evaluate(claim: Claim, results: dict[str, list[dict]]) -> Verdict:
    """Check ``claim`` against ``results``: run name (as :func:`read_results` gives it) ->
    the summaries of its seeds, in seed order (see the module doc for the rule)."""
    tree = _parse(claim.statement)
    names = claim.names()
    missing = sorted(n for n in names if not results.get(n))
    if missing:
        return Verdict(claim, "not run", f"no runs of {', '.join(missing)}")
    seeds = min((len(results[n]) for n in names), default=1)
    read = _reads(tree)
    lacking = [f"{name}.{attr}" for name, attr in read
               if any(s.get(attr) is None for s in results[name][:seeds])]
    if lacking:
        return Verdict(claim, "not run", f"no value of {', '.join(lacking)}")
    samples = {(name, attr): tuple(float(s[attr]) for s in results[name][:seeds])
               for name, attr in read}
    judge = _Judge(claim.statement, samples)
    holds = judge.truth(tree.body)
    described = [_describe(name, attr, samples[name, attr]) for name, attr in read]
    ours = "; ".join([*(d for d in described          # a near() states its own x already
                        if not any(n.startswith(d + " vs") for n in judge.nears)),
                      *judge.nears])
    if seeds == 1:
        ours += "; one seed: no margin"
    return Verdict(claim, "holds" if holds else "does not hold", ours, "; ".join(judge.margins))


def _describe(name: str, attr: str, values: tuple[float, ...]) -> str:
    digits = 1 if attr.endswith("angle_deg") else 0 if attr == "epochs_completed" else 4
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{name}.{attr} {mean:.{digits}f}"
    return f"{name}.{attr} {mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def verdict_rows(verdicts: list[Verdict]) -> list[list[str]]:
    """Header and one row per verdict: claim (with its quote), the paper's figure, ours,
    the margin, verdict (Markdown inline marks)."""
    rows = [["claim", "paper", "ours", "margin", "verdict"]]
    for v in verdicts:
        rows.append([f"`{v.claim.statement}` — “{v.claim.quote}” ({v.claim.source})",
                     v.claim.paper or "lost in our copy", v.ours, v.margin or "-",
                     f"**{v.status}**"])
    return rows


def verdict_table(verdicts: list[Verdict]) -> str:
    """A Markdown table: claim, the paper's figure, ours, margin, verdict."""
    from ..report.markdown import markdown_table
    return markdown_table(verdict_rows(verdicts))


def read_results(folder, step: str = "") -> dict[str, list[dict]]:
    """Run name -> its seeds' summaries, from a ``compare`` or ``train`` output folder: the
    :func:`identifier` of each rule spec, prefixed by ``step.`` when ``step`` is given."""
    prefix = f"{step}." if step else ""
    return {prefix + identifier(spec): summaries
            for spec, summaries in _read_summaries(folder).items()}


def _read_summaries(folder) -> dict[str, list[dict]]:
    """Rule spec -> its seeds' summaries in seed order, each with the :data:`AREAS` and
    :data:`FIRST` of its run folder."""
    from ..training.folder import COMPARISON, SEEDS, SUMMARY, read_file
    from ..training.results import slug
    folder = Path(folder)
    if (folder / COMPARISON).is_file():
        comparison = read_file(folder, COMPARISON)
        if "runs" in comparison:                 # several seeds: RULE/seed-S/
            return {spec: [_with_areas(s, folder / slug(spec) / f"seed-{seed}")
                           for seed, s in sorted(runs.items(), key=lambda r: int(r[0]))]
                    for spec, runs in comparison["runs"].items()}
        return {spec: [_with_areas(summary, folder / slug(spec))]
                for spec, summary in comparison["rules"].items()}
    if (folder / SEEDS).is_file():
        runs = [folder / f for f in read_file(folder, SEEDS)["folders"]]
        summaries = sorted((_with_areas(read_file(f, SUMMARY), f) for f in runs),
                           key=lambda s: s.get("seed") or 0)
        return {summaries[0]["label"]: summaries}
    if (folder / SUMMARY).is_file():
        summary = _with_areas(read_file(folder, SUMMARY), folder)
        return {summary["label"]: [summary]}
    return {}


def _with_areas(summary: dict, run: Path) -> dict:
    """``summary`` with the :data:`AREAS` and :data:`FIRST` of ``run/metrics.jsonl`` (``None``
    without one; a value the summary has already is kept)."""
    from ..training.folder import METRICS, read_file
    rows = read_file(run, METRICS) if (run / METRICS).is_file() else []
    found = {name: rows[0].get(key) if rows else None for name, key in FIRST.items()}
    for area, key in AREAS.items():
        values = [r[key] for r in rows if r.get(key) is not None]
        found[area] = statistics.fmean(values) if values else None
    return {**summary, **{k: v for k, v in found.items() if summary.get(k) is None}}
