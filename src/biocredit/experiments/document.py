"""``REPRODUCTION.md`` and a self-contained ``REPRODUCTION.html``: every paper, every
experiment, every claim with its verdict, the numbers and the figures, from the preset
folders :func:`biocredit.experiments.suite.run_preset` wrote."""

from __future__ import annotations

import platform
import shutil
import statistics
from dataclasses import dataclass
from html import escape
from pathlib import Path

import torch

from ..report.html import STYLE, data_uri
from ..report.markdown import markdown_table
from ..training.results import read_json, write_text_atomic
from .claims import Claim, Verdict, verdict_rows
from .presets import PAPERS, Preset
from .suite import RECORD, results, step_folder

COLUMNS = ["run", "seeds", "test error", "train error", "angle to BP (°)", "epochs"]


@dataclass
class Block:
    kind: str                 # "h1", "h2", "h3", "p", "code", "table", "image"
    text: str = ""
    rows: list[list[str]] | None = None
    image: Path | None = None


def _mean_std(values: list[float], digits: int) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _result_rows(found: dict[str, list[dict]]) -> list[list[str]]:
    return [[name, str(len(runs)),
             _mean_std([r.get("test_error") for r in runs], 4),
             _mean_std([r.get("train_error") for r in runs], 4),
             _mean_std([r.get("mean_angle_deg") for r in runs], 1),
             _mean_std([r.get("epochs_completed") for r in runs], 0)]
            for name, runs in found.items()]


def preset_blocks(preset: Preset, root: Path, budget: str) -> tuple[list[Block], dict]:
    """The section of one preset, and its record (``{}`` when it has not run)."""
    blocks = [Block("h3", f"{preset.name}: {preset.description}")]
    if preset.paper:
        blocks.append(Block("p", f"Paper: {preset.paper}"))
    record_path = root / RECORD
    if not record_path.is_file() or read_json(record_path).get("budget") != budget:
        blocks.append(Block("p", "Not run at this budget" + (
            "" if budget in preset.budgets else
            f" (it runs at {', '.join(b for b in preset.budgets if b != 'smoke')} only)")
            + "."))
        return blocks, {}
    record = read_json(record_path)
    blocks.append(Block("code", "\n".join("biocredit " + " ".join(argv)
                                          for argv in record["commands"])))
    if record["status"] != "done":
        blocks.append(Block("p", f"Failed at step {record.get('failed_step')} (exit code "
                                 f"{record.get('exit_code')}); its claims were not judged."))
        return blocks, record
    blocks.append(Block("p", f"Wall time {record['seconds']:.0f} s."))
    found = results(preset, root)
    if found:
        blocks.append(Block("table", rows=[COLUMNS, *_result_rows(found)]))
    if record["verdicts"]:
        verdicts = [Verdict(Claim(**{k: v[k] for k in ("statement", "quote", "source",
                                                       "paper", "note")}),
                            v["status"], v["ours"]) for v in record["verdicts"]]
        blocks.append(Block("table", rows=verdict_rows(verdicts)))
        notes = [f"`{v.claim.statement}`: {v.claim.note}" for v in verdicts if v.claim.note]
        if notes:
            blocks.append(Block("p", "How we read the paper: " + "; ".join(notes) + "."))
    for step in preset.steps:
        for name in preset.figures:
            path = step_folder(root, step) / name
            if path.is_file():
                blocks.append(Block("image", f"{preset.name} {step.name} {name}".replace(
                    "  ", " "), image=path))
    return blocks, record


def reproduction_blocks(presets: list[Preset], root: Path, budget: str,
                        command: str) -> list[Block]:
    """The whole document: a summary table, then every paper's presets."""
    sections: list[Block] = []
    summary = [["paper", "experiment", "holds", "does not hold", "not run", "wall time (s)"]]
    total = 0.0
    for key, title in [("", "The demo"), *PAPERS.items()]:
        chosen = [p for p in presets if p.source == key]
        if not chosen:
            continue
        sections.append(Block("h2", title))
        for preset in chosen:
            blocks, record = preset_blocks(preset, root / preset.name, budget)
            sections += blocks
            statuses = [v["status"] for v in record.get("verdicts", [])]
            ran = record.get("status") == "done"
            total += record.get("seconds", 0.0) if ran else 0.0
            summary.append([title.split(",")[0], preset.name,
                            str(statuses.count("holds")), str(statuses.count("does not hold")),
                            str(statuses.count("not run") + (0 if ran else len(preset.claims))),
                            f"{record['seconds']:.0f}" if ran else "-"])
    intro = [
        Block("h1", f"Reproducing the papers (budget: {budget})"),
        Block("p", f"Made by `{command}` with torch {torch.__version__} on "
                   f"{platform.machine()} with {torch.get_num_threads()} threads; the presets "
                   f"took {total / 60:.0f} minutes of training in all. A claim holds when it "
                   "holds for the mean over seeds and for more than half of the seeds one at "
                   "a time. Claims are relative (orderings, thresholds), so they transfer "
                   "from MNIST to Fashion-MNIST; the papers' own figures are shown beside "
                   "ours, not asserted. Errors are fractions (0.1 = 10 %); autoencoders' "
                   "are mean squared errors per pixel."),
        Block("table", rows=summary)]
    return intro + sections


def render_markdown(blocks: list[Block], image_link) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "code":
            out.append("```\n" + b.text + "\n```")
        elif b.kind == "table":
            out.append(markdown_table(b.rows))
        elif b.kind == "image":
            out.append(f"![{b.text}]({image_link(b.image)})")
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    """Markdown's inline code, bold and links would be noise in HTML: escape, then mark
    ``code`` spans."""
    parts = escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p.replace("**", "")
                   for i, p in enumerate(parts))


def render_html(blocks: list[Block], title: str) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>"]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "code":
            out.append(f"<pre><code>{escape(b.text)}</code></pre>")
        elif b.kind == "table":
            header, *body = b.rows
            out.append("<table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header)
                       + "</tr>" + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>"
                                                             for c in r) + "</tr>"
                                           for r in body) + "</table>")
        elif b.kind == "image":
            out.append(f'<figure><img src="{data_uri(b.image)}" alt="{escape(b.text)}">'
                       f"<figcaption>{escape(b.text)}</figcaption></figure>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


def write_reproduction(presets: list[Preset], root: str | Path, budget: str, command: str,
                       publish: str | Path | None = None) -> list[Path]:
    """``root/REPRODUCTION.md`` and ``root/REPRODUCTION.html``; with ``publish``, also
    ``publish/REPRODUCTION.md`` with its figures copied to ``publish/reproduction/`` (the
    form committed as ``docs/REPRODUCTION.md``). Returns the files written."""
    root = Path(root)
    blocks = reproduction_blocks(presets, root, budget, command)
    title = f"Reproducing the papers (budget: {budget})"
    written = [root / "REPRODUCTION.md", root / "REPRODUCTION.html"]
    write_text_atomic(written[0], render_markdown(
        blocks, lambda p: p.relative_to(root).as_posix()))
    write_text_atomic(written[1], render_html(blocks, title))
    if publish is not None:
        publish = Path(publish)
        figures = publish / "reproduction"

        def copy(path: Path) -> str:
            target = figures / "-".join(path.relative_to(root).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            return target.relative_to(publish).as_posix()
        written.append(publish / "REPRODUCTION.md")
        write_text_atomic(written[-1], render_markdown(blocks, copy))
    return written
