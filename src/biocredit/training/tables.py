"""Runs as text: an epoch's line, a run's line, the table of a comparison or of several seeds,
the paired differences, and the benchmark's table. The library does not print; the command
line prints these."""

from __future__ import annotations

import math
from pathlib import Path


def minus(text: str) -> str:
    """``text`` with its hyphen-minus signs as minus signs (−), as in the tables."""
    return text.replace("-", "−")


def epoch_line(rule: str, row: dict) -> str:
    """An epoch's row of metrics (see :func:`~biocredit.training.run`) as one line."""
    angles = ", ".join("-" if a is None else f"{a:.1f}" for a in row["angle_deg"])
    return (f"{rule} epoch {row['epoch']}: loss {row['train_loss']:.4f}  "
            f"train error {row['train_error']:.4f}  test error {row['test_error']:.4f}  "
            + (f"test loss {row['test_loss']:.4f} ({row['test_bpc']:.4f} bpc)  "
               if "test_bpc" in row else "")
            + f"angle to BP [{angles}]°  {row['seconds']:.1f}s "
            f"(+{row['overhead_seconds']:.1f}s evaluation and files)")


def run_line(summary: dict, folder: Path, name: str | None = None) -> str:
    """A finished run: its errors, its time and its folder."""
    errors = ", ".join(f"{key.replace('_', ' ')} {summary[key]:.4f}"
                       for key in ("test_error", "train_error") if summary.get(key) is not None)
    if summary.get("test_bpc") is not None:
        errors += f", test loss {summary['test_loss']:.4f} ({summary['test_bpc']:.4f} bpc)"
    overhead = summary.get("overhead_seconds") or 0.0
    share = overhead / (overhead + summary["seconds"]) if overhead else 0.0
    return (f"{name or summary['rule']}: {errors or 'no epoch finished'}, "
            f"{summary['seconds']:.1f}s training + {overhead:.1f}s evaluation and files "
            f"({100 * share:.0f}%) -> {folder}")


def transport_line(summary: dict) -> str | None:
    """How many parameters learn without weight transport (``None``: not measured)."""
    transport = summary.get("weight_transport")
    if not transport:
        return None
    return (f"weight transport: {transport['free']} of "
            f"{transport['free'] + transport['transport']} parameters learn without it"
            + (f"; the rule's feedback carries {transport['rule_note']}"
               if transport["rule_note"] else ""))


def format_table(summaries: dict[str, dict]) -> str:
    """One row per rule: a run's summary, or :func:`~.seeds.seed_statistics` over several
    seeds (shown as mean ± std, with the range of the test error)."""
    width = max(8, *(len(name) for name in summaries))
    several = any("test_error" in s and isinstance(s["test_error"], dict)
                  for s in summaries.values())
    if several:
        header = f"{'rule':<{width}} {'seeds':>5} {'test error':>17} {'(min-max)':>15} " \
                 f"{'train error':>17} {'time (s)':>9} {'angle to BP (°)':>16}"
    else:
        header = f"{'rule':<{width}} {'test error':>10} {'train error':>11} {'time (s)':>9} " \
                 f"{'angle to BP (°)':>16}"
    row = _seeds_row if several else _run_row
    lines = [header, "-" * len(header), *(row(name, s, width) for name, s in summaries.items())]
    if any(s.get("test_bpc") is not None for s in summaries.values()):     # language models
        lines = _with_bpc(lines, list(summaries.values()), several)
    return "\n".join(lines)


def _with_bpc(lines: list[str], summaries: list[dict], several: bool) -> list[str]:
    """The table's lines with a language model's test loss (nats per token) and bits per
    token added at the right; its error is the next-token error rate."""
    width = 17 if several else 9

    def cell(s, key):
        v = s.get(key)
        if v is None:
            return "-"
        return f"{v['mean']:.3f} ± {v['std']:.3f}" if several else f"{v:.3f}"
    added = [f" {'test loss':>{width}} {'bpc':>{width}}"]
    added += [" " + "-" * (2 * width + 1)]
    added += [f" {cell(s, 'test_loss'):>{width}} {cell(s, 'test_bpc'):>{width}}"
              for s in summaries]
    return [line + extra for line, extra in zip(lines, added)]


def _seeds_row(name: str, s: dict, width: int) -> str:
    def pm(key, digits=4):
        v = s.get(key)
        return "-" if v is None else f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}"
    test = s["test_error"]
    angle = s.get("mean_angle_deg")
    return (f"{name:<{width}} {test['n']:>5} {pm('test_error'):>17} "
            f"{test['min']:.4f}-{test['max']:.4f} {pm('train_error'):>17} "
            f"{s['seconds']['mean']:>9.1f} "
            f"{'-' if angle is None else pm('mean_angle_deg', 1):>16}")


def _run_row(name: str, s: dict, width: int) -> str:
    def value(key, digits=4):
        return "-" if s.get(key) is None else f"{s[key]:.{digits}f}"
    return (f"{name:<{width}} {value('test_error'):>10} {value('train_error'):>11} "
            f"{value('seconds', 1):>9} {value('mean_angle_deg', 1):>16}")


def format_paired(paired: dict, alpha: float = 0.05) -> list[str]:
    """One line per rule: its mean paired difference from the baseline ± the standard
    error, the paired t-test, and what it says at ``alpha`` (see
    :func:`~biocredit.training.seeds.paired_differences`)."""
    return [_paired_line(rule, paired["baseline"], d, alpha)
            for rule, d in paired["rules"].items()]


def _paired_line(rule: str, base: str, d: dict, alpha: float) -> str:
    head = f"{rule} − {base}:"
    left = d["left_out"]
    gone = (f" (seed{'s' if len(left) > 1 else ''} {', '.join(map(str, left))} left out: "
            f"a run of {rule} or {base} failed or diverged)") if left else ""
    if d["n"] == 0:
        return f"{head} no seed where both finished{gone}"
    if d["n"] == 1:
        return (f"{head} {minus(format(d['mean'], '+.4f'))} on the one seed both "
                f"finished{gone} — too few paired seeds for a p-value (2 needed)")
    t = d["t"]
    t_text = minus(f"{t:.2f}") if math.isfinite(t) else ("∞" if t > 0 else "−∞")
    if d["p"] < alpha:
        verdict = (f"significant at {alpha:g}: {rule}'s test error is "
                   f"{'lower' if d['mean'] < 0 else 'higher'}")
    else:
        verdict = f"not significant at {alpha:g}"
    return (f"{head} {minus(format(d['mean'], '+.4f'))} ± {d['se']:.4f} (mean ± "
            f"standard error of the paired differences over {d['n']} seeds; paired "
            f"t = {t_text}, {d['df']} df, p = {d['p']:.2g}, two-sided) — {verdict}{gone}")


def format_benchmark(result: dict) -> str:
    """:func:`~biocredit.training.benchmark`'s result as a table, under a line naming the
    model, batch, device (and CPU) and threads, above one saying what the columns mean."""
    width = max(8, *map(len, result["rules"]))
    cuda = "cuda" in result["device"]
    lines = [f"{result['model']}, batch {result['batch_size']}, {result['device']}"
             f"{' (CPU: ' + result['cpu'] + ')' if result.get('cpu') else ''}"
             f"{', bf16 autocast' if result['amp'] else ''}"
             f"{', compiled' if result['compile'] else ''}, {result['threads']} threads, "
             f"median of {result['steps']} steps",
             f"{'rule':<{width}} {'step (ms)':>10} {'x BP':>6} {'x torch':>8} {'floor':>6} "
             f"{'GFLOP/s':>8} {'saved MB':>9}" + (f" {'peak MB':>8}" if cuda else "")]
    for name, r in result["rules"].items():
        floor = "-" if r["floor_ratio"] is None else f"{r['floor_ratio']:.2f}"
        gflops = "-" if r["gflops"] is None else f"{r['gflops']:.1f}"
        lines.append(f"{name:<{width}} {r['step_ms']:>10.2f} {r['ratio_to_bp']:>6.2f} "
                     f"{r['ratio_to_torch']:>8.2f} {floor:>6} {gflops:>8} {r['saved_mb']:>9.2f}"
                     + (f" {r['peak_mb']:>8.1f}" if "peak_mb" in r else ""))
    lines.append("floor: the rule's arithmetic (MACs per example from the layer shapes) over "
                 "BP's; saved MB: what autograd keeps for the backward pass")
    return "\n".join(lines)


def rules_table() -> str:
    """The learning rules, a line each: its name, what it does, its options."""
    from .. import rules
    width = max(len(name) for name in rules.available())
    lines = []
    for name in rules.available():
        cls = rules.get(name)
        opts = ", ".join(f"{k}={v!r}" for k, v in cls.defaults.items())
        lines.append(f"{name:<{width}} {cls.summary}" + (f"  [options: {opts}]" if opts else ""))
    return "\n".join(lines)


def models_table() -> str:
    """The model families: how to name an MLP or your own model, and the built-in models'
    parameter counts on 1x28x28 and 3x32x32 inputs."""
    from .. import models
    lines = ["mlp:DEPTHxWIDTH:ACTIVATION   e.g. mlp:2x800:tanh; activations: "
             + ", ".join(sorted(models.ACTIVATIONS)),
             "gpt:LAYERSxWIDTH:hHEADS      e.g. gpt:2x64:h4, a causal Transformer for text "
             "(--data python-reference or text:PATH)",
             "FILE.py:FUNCTION             your own model: FUNCTION(input_shape, num_classes) "
             "returns an nn.Module (direct rules: biocredit.Tap() in it, or --taps)",
             f"{'model':<24} {'params (1x28x28)':>17} {'params (3x32x32)':>17}"]
    for name in models.available():
        if name not in ("mlp", "gpt"):          # (gpt reads token windows, not images)
            counts = [f"{models.parameter_count(name, shape, 10):,}"
                      for shape in ((1, 28, 28), (3, 32, 32))]
            lines.append(f"{name:<24} {counts[0]:>17} {counts[1]:>17}")
    return "\n".join(lines)

