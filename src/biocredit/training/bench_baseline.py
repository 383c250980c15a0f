"""``bench --baseline FILE``: an earlier ``bench --json`` result, checked and compared rule by
rule with this run's (step time and ratio to plain PyTorch, before → now, and the change).

A baseline timed on another workload (model, batch, input shape, classes, taps, optimizer,
loss, device type, bf16 autocast, compile) is refused: its times measure something else. A
different environment (CPU, threads, torch version, steps ...) is what comparing across
machines or upgrades is for: it is compared, with a warning naming each difference.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

# What a step computes: a baseline that differs in any of these is refused.
WORKLOAD = ("model", "batch_size", "input_shape", "classes", "taps", "optimizer", "loss",
            "device_type", "amp", "compile")
# Where and how it was timed: differences are named in a warning.
ENVIRONMENT = ("cpu", "device", "threads", "torch", "machine", "steps", "warmup")


def load_baseline(path: str | os.PathLike) -> dict:
    """The ``bench --json`` result in ``path``; a ``ValueError`` naming the file if it is
    missing, unreadable, not JSON or not a bench result."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ValueError(f"--baseline {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"--baseline {path}: cannot read it "
                         f"({getattr(err, 'strerror', None) or err})") from None
    try:
        result = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--baseline {path} is not JSON ({err.msg} at line {err.lineno}, "
                         f"column {err.colno}); give a file written by bench --json") from None
    problem = _not_a_result(result)
    if problem:
        raise ValueError(f"--baseline {path} is not a bench --json result: {problem}")
    return result


def _not_a_result(result: Any) -> str | None:
    """What keeps ``result`` from being a bench result (``None``: nothing)."""
    if not isinstance(result, dict):
        return f"its top level is a JSON {type(result).__name__}, not an object"
    missing = [key for key in ("model", "batch_size", "device", "rules") if key not in result]
    if missing:
        return "no " + ", ".join(missing)
    rules = result["rules"]
    if not isinstance(rules, dict) or not rules:
        return "its rules are not a table of rules"
    for name, row in rules.items():
        if not isinstance(row, dict) or not all(
                _number(row.get(key)) for key in ("step_ms", "ratio_to_torch")):
            return f"rule {name!r} has no step_ms and ratio_to_torch numbers"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def setting(result: dict, key: str) -> Any:
    """A result's setting (``device_type``: its device without the index; lists and tuples
    alike), or ``None`` if it does not record it."""
    if key == "device_type":
        device = result.get("device")
        return None if device is None else str(device).split(":")[0]
    value = result.get(key)
    return list(value) if isinstance(value, (list, tuple)) else value


def check_workload(baseline: dict, path: str | os.PathLike, current: dict) -> None:
    """Refuse (``ValueError``) a baseline timed on another workload than ``current``'s
    (a dict of :data:`WORKLOAD` settings), naming each difference."""
    differences = [f"{key} {setting(baseline, key)!r} (now {setting(current, key)!r})"
                   for key in WORKLOAD if key in baseline or key == "device_type"
                   if setting(baseline, key) != setting(current, key)]
    if differences:
        raise ValueError(f"--baseline {path} timed another workload: "
                         + ", ".join(differences)
                         + "; its step times are not comparable (rerun it with these "
                           "settings, or bench this run with the baseline's)")


def environment_warnings(baseline: dict, current: dict) -> list[str]:
    """Lines naming what differs between the baseline's environment and this run's, and the
    workload settings an older baseline does not record (assumed the same)."""
    lines = []
    differences = [f"{key} {baseline[key]!r} → {current.get(key)!r}" for key in ENVIRONMENT
                   if key in baseline and setting(baseline, key) != setting(current, key)]
    if differences:
        lines.append("the baseline was timed elsewhere or otherwise: " + ", ".join(differences)
                     + "; its step times compare loosely (the ratios to torch better)")
    unrecorded = [key for key in WORKLOAD if key != "device_type" and key not in baseline]
    if unrecorded:
        lines.append("the baseline does not record " + ", ".join(unrecorded)
                     + "; assumed the same as now")
    return lines


def change(before: float, now: float) -> str:
    """``now`` against ``before`` in per cent, signed, with a minus sign: ``−14 %``."""
    if before <= 0:
        return "-"
    percent = round(100 * (now / before - 1))
    return "±0 %" if percent == 0 else f"{percent:+d} %".replace("-", "−")


def describe(result: dict) -> str:
    """Where a result was timed: its commit (``+`` for a changed source), CPU, torch."""
    commit = result.get("git_commit")
    parts = [f"commit {commit[:10]}{'+' if result.get('git_dirty') else ''}" if commit
             else "commit unknown"]
    parts += [str(result[key]) for key in ("cpu",) if result.get(key)]
    if result.get("torch"):
        parts.append(f"torch {result['torch']}")
    return ", ".join(parts)


def format_comparison(baseline: dict, current: dict, path: str | os.PathLike) -> str:
    """Per rule, the baseline's and this run's step time and ratio to plain PyTorch with the
    change: ``fa  x torch 1.31 → 1.12 (−14 %)  step 2.10 → 1.84 ms (−12 %)``."""
    names = list(dict.fromkeys([*current["rules"], *baseline["rules"]]))
    width = max(8, *map(len, names))
    lines = [f"against --baseline {path} ({describe(baseline)}); now: {describe(current)}"]
    for name in names:
        old, new = baseline["rules"].get(name), current["rules"].get(name)
        if old is None or new is None:
            missing = "not in the baseline" if old is None else "only in the baseline"
            lines.append(f"{name:<{width}} {missing}")
            continue
        ratio = (f"x torch {old['ratio_to_torch']:.2f} → {new['ratio_to_torch']:.2f} "
                 f"({change(old['ratio_to_torch'], new['ratio_to_torch'])})")
        step = (f"step {old['step_ms']:.2f} → {new['step_ms']:.2f} ms "
                f"({change(old['step_ms'], new['step_ms'])})")
        lines.append(f"{name:<{width}} {ratio:<32} {step}")
    return "\n".join(lines)
