"""Several seeds of one run: which seeds, and the statistics over them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

STAT_KEYS = ("test_error", "train_error", "val_error", "mean_angle_deg", "seconds")


def parse_seeds(text: str | None, first: int) -> list[int]:
    """``--seeds``: ``N`` (the ``N`` seeds from ``first``) or a comma-separated list."""
    if not text:
        if not 0 <= first < MAX_SEED:
            raise ValueError(f"--seed is a whole number in [0, 2^32); got {first}")
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
        raise ValueError(f"--seeds is a count (e.g. 3) or a list (e.g. 0,1,2); got {text!r}") \
            from None
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"--seeds names a seed twice or none: {text!r}")
    if not all(0 <= s < MAX_SEED for s in seeds):
        raise ValueError(f"a seed is a whole number in [0, 2^32); --seeds {text!r} from "
                         f"--seed {first} goes outside")
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
