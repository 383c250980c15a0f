"""One colour per rule, the same in every figure of every report.

The colours come from matplotlib's tab20 palette, strong shades first (they are tab10's),
then the light ones, without its greys (grey marks reference lines such as 90°), assigned in
the order of :func:`biocredit.rules.available` so a rule keeps its colour whichever rules a
report compares. BP, the reference, is always black.
"""

from __future__ import annotations

import zlib

from .. import rules

# tab20's strong shades (= tab10), then its light shades; no greys.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
)
REFERENCE_COLOR = "#000000"  # bp
LINESTYLES = ("-", "--", ":", "-.")


def rule_color(rule: str) -> str:
    """The colour of ``rule`` (a hex string): black for ``bp``; a registered rule gets the
    palette entry of its position among the other registered rules; an unknown name a
    stable entry chosen from its hash."""
    if rule == "bp":
        return REFERENCE_COLOR
    others = [name for name in rules.available() if name != "bp"]
    if rule in others:
        return PALETTE[others.index(rule) % len(PALETTE)]
    return PALETTE[zlib.crc32(rule.encode()) % len(PALETTE)]


def run_linestyles(rule_names: list[str]) -> list[str]:
    """A line style per run: solid for each rule's first run, then dashed, dotted, … so runs
    of the same rule (same colour) stay apart."""
    seen: dict[str, int] = {}
    styles = []
    for name in rule_names:
        styles.append(LINESTYLES[seen.get(name, 0) % len(LINESTYLES)])
        seen[name] = seen.get(name, 0) + 1
    return styles
