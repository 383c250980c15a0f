"""Several seeds of one run: which seeds, and the statistics over them (per rule, and
paired between rules over the same seeds)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

STAT_KEYS = ("test_error", "train_error", "val_error", "mean_angle_deg", "seconds",
             "test_loss", "test_bpc")          # (the last two: language models only)


def parse_seeds(text: str | None, first: int) -> list[int]:
    """``seeds``: ``N`` (the ``N`` seeds from ``first``) or a comma-separated list."""
    if not text:
        if not 0 <= first < MAX_SEED:
            raise ValueError(f"`seed` is a whole number in [0, 2^32); got {first}")
        return [first]
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            count = int(text)
            if count < 1:
                raise ValueError
            seeds = list(range(first, first + count))
    except ValueError:
        raise ValueError(f"`seeds` is a count (e.g. 3) or a list (e.g. 0,1,2); got {text!r}") \
            from None
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"`seeds` names a seed twice or none: {text!r}")
    if not all(0 <= s < MAX_SEED for s in seeds):
        raise ValueError(f"a seed is a whole number in [0, 2^32); `seeds={text!r}` from "
                         f"`seed={first}` goes outside")
    return seeds


MAX_SEED = 2 ** 32


def seed_statistics(summaries: Sequence[dict]) -> dict[str, dict]:
    """Per key of :data:`STAT_KEYS`: ``mean``, ``std`` (the sample standard deviation, 0
    for one seed), ``min``, ``max`` and ``n`` over the runs that have a value."""
    stats = {}
    for key in STAT_KEYS:
        values = [s[key] for s in summaries
                  if s.get(key) is not None and not math.isnan(s[key])]
        if values:
            stats[key] = {"mean": statistics.fmean(values),
                          "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                          "min": min(values), "max": max(values), "n": len(values)}
    return stats


# ----------------------------------------------------------------------------- paired t-test

def regularized_beta(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for ``a, b > 0`` and
    ``0 <= x <= 1``: the continued fraction of Numerical Recipes (§6.4, modified Lentz),
    on whichever side of the mean ``a / (a + b)`` it converges fast."""
    if not (a > 0 and b > 0):
        raise ValueError(f"regularized_beta needs a, b > 0; got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"regularized_beta needs 0 <= x <= 1; got {x}")
    if x == 0.0 or x == 1.0:
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(1.0 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float, eps: float = 1e-15,
                   max_terms: int = 10_000) -> float:
    tiny = 1e-300

    def nonzero(v: float) -> float:
        return v if abs(v) > tiny else tiny

    c, d = 1.0, 1.0 / nonzero(1.0 - (a + b) * x / (a + 1))
    h = d
    for m in range(1, max_terms + 1):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 / nonzero(1.0 + even * d)
        c = nonzero(1.0 + even / c)
        h *= d * c
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 / nonzero(1.0 + odd * d)
        c = nonzero(1.0 + odd / c)
        step = d * c
        h *= step
        if abs(step - 1.0) < eps:
            return h
    raise ArithmeticError(f"the incomplete beta fraction did not converge (x={x}, a={a}, "
                          f"b={b})")


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom:
    I_{df / (df + t²)}(df / 2, 1 / 2). 1 for t = 0, 0 for an infinite t."""
    if not df > 0:
        raise ValueError(f"a t distribution needs df > 0; got {df}")
    if math.isnan(t):
        raise ValueError("t is NaN")
    if math.isinf(t):
        return 0.0
    return min(1.0, regularized_beta(df / (df + t * t), df / 2, 0.5))


def paired_t(differences: Sequence[float]) -> dict:
    """The paired t-test of ``differences`` (one per seed) against 0: ``n``, ``mean``,
    ``std`` (sample standard deviation), ``se`` (its standard error, std / √n), ``t`` (mean
    / se), ``df`` (n − 1) and ``p`` (two-sided). With fewer than 2 differences only ``n``
    and ``mean`` (``None`` for none) are numbers, the others ``None``. Differences that are
    all equal have se 0: t is ±inf and p 0 (or t 0 and p 1 when they are all 0)."""
    n = len(differences)
    out = {"n": n, "mean": statistics.fmean(differences) if n else None,
           "std": None, "se": None, "t": None, "df": None, "p": None}
    if n < 2:
        return out
    mean = out["mean"]
    std = statistics.stdev(differences)
    se = std / math.sqrt(n)
    if se > 0:
        t = mean / se
    else:
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    out.update(std=std, se=se, t=t, df=n - 1, p=t_two_sided_p(t, n - 1))
    return out


def _paired_value(summary: dict | None, key: str) -> float | None:
    """``summary[key]`` when the run finished (neither diverged nor failed) and it is a
    finite number, else ``None``."""
    if not isinstance(summary, dict) or summary.get("status") in ("diverged", "failed",
                                                                   "interrupted"):
        return None
    value = summary.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        return None
    return float(value)


def _in_order(seeds: list) -> list:
    try:
        return sorted(seeds)
    except TypeError:       # seeds of mixed types: as given
        return seeds


def paired_differences(runs: Mapping[str, Mapping[Any, dict]], baseline: str,
                       key: str = "test_error") -> dict:
    """Each rule's ``key`` minus the ``baseline`` rule's, seed by seed, and the paired
    t-test of those differences (:func:`paired_t`).

    ``runs``: rule -> seed -> the run's summary (as ``compare --seeds`` keeps them). A seed
    is paired when both runs have a finite ``key`` and neither diverged nor failed; the
    others are listed in ``left_out``. Returns ``{"baseline", "key", "rules": {rule:
    {n, mean, std, se, t, df, p, seeds, left_out}}}`` for every rule but the baseline, in
    the order of ``runs``.
    """
    base = runs.get(baseline, {})
    result: dict = {"baseline": baseline, "key": key, "rules": {}}
    for rule, by_seed in runs.items():
        if rule == baseline:
            continue
        seeds, differences, left_out = [], [], []
        for seed in _in_order([*by_seed, *(s for s in base if s not in by_seed)]):
            mine, theirs = _paired_value(by_seed.get(seed), key), \
                _paired_value(base.get(seed), key)
            if mine is None or theirs is None:
                left_out.append(seed)
            else:
                seeds.append(seed)
                differences.append(mine - theirs)
        result["rules"][rule] = {**paired_t(differences), "seeds": seeds,
                                 "left_out": left_out}
    return result
