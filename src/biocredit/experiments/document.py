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
from .claims import verdict_rows
from .presets import PAPERS, Preset
from .preset import settings_rows
from .suite import RECORD, STARTED, STEP_RECORD, judge, results, step_folder

READING = "reading.md"    # beside a preset's runs: what its results say, written after reading them
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
    """The section of one preset, and its record: ``status`` "done", "partial" (some steps
    finished: their claims are judged, the others' are "not run") or "" (nothing ran), its
    wall time so far and its verdicts, judged again from the runs."""
    blocks = [Block("h3", f"{preset.name}: {preset.description}")]
    if preset.paper:
        blocks.append(Block("p", f"Paper: {preset.paper}"))
    if preset.settings:
        blocks.append(Block("table", rows=settings_rows(preset)))
    record_path = root / RECORD
    record = read_json(record_path) if record_path.is_file() else {}
    finished = [s for s in preset.steps if step_record(root, s, budget) is not None]
    if not finished:
        blocks.append(Block("p", "Not run at this budget" + (
            "" if budget in preset.budgets else
            f" (it runs at {', '.join(b for b in preset.budgets if b != 'smoke')} only)")
            + "." + (f" Its cost: {preset.cost}." if preset.cost else "")))
        blocks.append(Block("code", "\n".join(
            "biocredit " + " ".join(preset.command(step, budget, str(root)))
            for step in preset.steps)))
        return blocks, {"status": "", "seconds": 0.0, "verdicts": []}
    seconds = sum(step_record(root, s, budget).get("seconds", 0.0) for s in finished)
    done = len(finished) == len(preset.steps)
    blocks.append(Block("code", "\n".join(
        "biocredit " + " ".join(preset.command(step, budget, str(root))) for step in preset.steps)))
    blocks.append(Block("p", f"Wall time {seconds:.0f} s" + ("." if done else
                    f" for the {len(finished)} of {len(preset.steps)} steps finished so far "
                    f"({', '.join(s.name for s in finished)}); the same command continues.")))
    if record.get("status") == "failed" and not done:
        blocks.append(Block("p", f"The last attempt failed at step {record.get('failed_step')} "
                                 f"(exit code {record.get('exit_code')})."))
    found = results(preset, root)
    if found:
        blocks.append(Block("table", rows=[COLUMNS, *_result_rows(found)]))
    verdicts = judge(preset, root)
    if verdicts:
        blocks.append(Block("table", rows=verdict_rows(verdicts)))
        notes = [f"`{v.claim.statement}`: {v.claim.note}" for v in verdicts if v.claim.note]
        if notes:
            blocks.append(Block("p", "How we read the paper: " + "; ".join(notes) + "."))
    reading = root / READING
    if reading.is_file():
        blocks.append(Block("p", "What the results say: " + " ".join(
            reading.read_text().split())))
    for step in finished:
        for name in preset.figures:
            path = figure_file(step_folder(root, step), name)
            if path is not None:
                blocks.append(Block("image", f"{preset.name} {step.name} {path.name}".replace(
                    "  ", " "), image=path))
    return blocks, {"status": "done" if done else "partial", "seconds": seconds,
                    "verdicts": [v.status for v in verdicts]}


def figure_file(folder: Path, name: str) -> Path | None:
    """The figure ``name`` in a step's report ``folder``, or, where the report drew it per
    seed (``tsne-bp.png`` as ``tsne-bp-s0.png``, ``tsne-bp-s1.png`` ...), the first seed's;
    ``None`` if the report has neither."""
    path = folder / name
    if path.is_file():
        return path
    stem, suffix = Path(name).stem, Path(name).suffix
    seeds = {int(p.stem[len(stem) + 2:]): p for p in folder.glob(f"{stem}-s*{suffix}")
             if p.stem[len(stem) + 2:].isdigit()}
    return seeds[min(seeds)] if seeds else None


def step_record(root: Path, step, budget: str) -> dict | None:
    """The finished step's ``step.json`` when it ran at ``budget``, else ``None``."""
    marker = step_folder(root, step) / STEP_RECORD
    if not marker.is_file():
        return None
    record = read_json(marker)
    return record if record.get("budget", budget) == budget else None


def paper_sections(presets: list[Preset], root: Path, budget: str):
    """Every paper's section, and the summary rows: per preset of the papers, and of our
    extensions, its verdicts' counts and wall time (the papers' with a total row); the
    presets left unfinished, and the wall time of them all."""
    sections: list[Block] = []
    header = ["paper", "experiment", "holds", "does not hold", "not run", "wall time (s)"]
    summary, extensions = [header], [header]
    totals = [0, 0, 0]
    total = 0.0
    left = [["experiment", "status", "cost at this budget"]]
    for key, title in [("", "The demo"), *PAPERS.items()]:
        chosen = [p for p in presets if p.source == key
                  and (budget in p.budgets or p.cost or budget != "paper")]
        if not chosen:
            continue
        sections.append(Block("h2", title))
        for preset in chosen:
            blocks, record = preset_blocks(preset, root / preset.name, budget)
            sections += blocks
            statuses = record["verdicts"] or ["not run"] * len(preset.claims)
            counts = [statuses.count(s) for s in ("holds", "does not hold", "not run")]
            total += record["seconds"]
            row = [title.split(",")[0], preset.name, *map(str, counts),
                   f"{record['seconds']:.0f}" + ("" if record["status"] != "partial" else
                                                 " (so far)") if record["status"] else "-"]
            (extensions if preset.extension else summary).append(row)
            if record["status"] != "done" and preset.cost:
                left.append([preset.name, unfinished(preset, root, budget, record),
                             preset.cost])
            if not preset.extension:
                totals = [a + b for a, b in zip(totals, counts)]
    summary.append(["**all**", "", *(f"**{n}**" for n in totals), f"**{total:.0f}**"])
    return sections, summary, extensions, left, total


def unfinished(preset: Preset, root: Path, budget: str, record: dict) -> str:
    """Why a preset has not finished at ``budget``."""
    started = any((step_folder(root / preset.name, step) / STARTED).is_file()
                  for step in preset.steps)
    return "partly run" if record["status"] else "started" if started else (
        "not run yet" if budget in preset.budgets else "its data is not here")


def reproduction_blocks(presets: list[Preset], root: Path, budget: str,
                        command: str) -> list[Block]:
    """The whole document: a summary table (the papers' claims; our extensions apart), then
    every paper's presets."""
    sections, summary, extensions, left, total = paper_sections(presets, root, budget)
    intro = [
        Block("h1", title_of(budget)),
        Block("p", f"Made by `{command}` with torch {torch.__version__} on "
                   f"{platform.machine()} ({cpu_name()}) with {torch.get_num_threads()} "
                   f"threads; the presets took {total / 60:.0f} minutes of training in all "
                   "so far. Every comparison in a claim holds only when the paired "
                   "difference over seeds lies on the claimed side by more than its "
                   "standard error (with one seed there is no margin, and the verdict says "
                   "so); `near(x, paper, tol)` holds when our mean is within max(tol, two "
                   "standard deviations over seeds) of the paper's number. Errors are "
                   "fractions (0.1 = 10 %); autoencoders' are mean squared errors per pixel; "
                   "teacher tasks' are normalised squared errors. Each preset's settings "
                   "table traces every value to the paper's sentence or to our stated choice."),
        Block("table", rows=summary)]
    if " --data " in f" {command} ":
        other = command.split(" --data ", 1)[1].split()[0]
        intro.insert(2, Block("p", f"**These verdicts are on {other}, not on the papers' data "
                                   "sets** (`--data` overrides every preset's)."))
    if len(left) > 1:
        intro += [Block("p", "Not finished at this budget (each section below gives the exact "
                             "commands; the same `reproduce` command continues the suite):"),
                  Block("table", rows=left)]
    if len(extensions) > 1:
        intro += [Block("p", "Our own extensions (their claims are our expectations, not the "
                             "papers', and are not counted above):"),
                  Block("table", rows=extensions)]
    return intro + sections


def title_of(budget: str) -> str:
    return f"Reproducing the papers (budget: {budget})"


def cpu_name() -> str:
    """The CPU's model name (timings mean little without it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


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


def document_name(budget: str) -> str:
    """``REPRODUCTION.md`` for the paper budget, ``REPRODUCTION-short.md`` beside it."""
    return "REPRODUCTION.md" if budget == "paper" else f"REPRODUCTION-{budget}.md"


def write_reproduction(presets: list[Preset], root: str | Path, budget: str, command: str,
                       publish: str | Path | None = None) -> list[Path]:
    """``root/REPRODUCTION.md`` and ``root/REPRODUCTION.html``; with ``publish``, also
    ``publish/`` :func:`document_name` with its figures copied beside it (the form committed
    as ``docs/REPRODUCTION.md``, or ``docs/REPRODUCTION-short.md``). Returns the files
    written."""
    root = Path(root)
    blocks = reproduction_blocks(presets, root, budget, command)
    title = title_of(budget)
    written = [root / "REPRODUCTION.md", root / "REPRODUCTION.html"]
    write_text_atomic(written[0], render_markdown(
        blocks, lambda p: p.relative_to(root).as_posix()))
    write_text_atomic(written[1], render_html(blocks, title))
    if publish is not None:
        publish = Path(publish)
        figures = publish / ("reproduction" if budget == "paper" else f"reproduction-{budget}")

        def copy(path: Path) -> str:
            target = figures / "-".join(path.relative_to(root).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            return target.relative_to(publish).as_posix()
        written.append(publish / document_name(budget))
        write_text_atomic(written[-1], render_markdown(blocks, copy))
    return written
