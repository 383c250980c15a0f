"""``write_report``: run folders in, ``report.md`` + ``report.html`` + PNG figures out."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..training.folder import COMPARISON, CONFIG, make_folder, missing_folders, read_file, \
    remove_created
from ..training.run import load_dataset, resolve_device
from .colors import rule_color
from .content import Content, Section
from .figures import error_curves, layer_curves, receptive_fields, tsne_figure, unit_mosaic
from .files import slug, write_text
from .html import render_html
from .markdown import markdown_table, render_markdown
from .runs import (RunRecord, common_parent, expand_run_dirs, label_runs, load_trained,
                   read_run, run_config)
from .tsne import embed, hidden_features, subsample

RECONSTRUCTIONS = "reconstructions.png"  # an autoencoder run's own figure, shown as it is


@dataclass
class ReportFiles:
    """Where a report went: the two documents and every figure they show."""

    markdown: Path
    html: Path
    figures: list[Path]
    table: str = ""     # the summary table, one row per run, as Markdown


def default_out_dir(folders: Sequence[Path]) -> Path:
    """One run: its own folder. Several: their deepest common folder (the first run's
    folder if that would be the file-system root)."""
    folders = [Path(f) for f in folders]
    if len(folders) == 1:
        return folders[0]
    parent = common_parent(folders)
    return folders[0] if parent == Path(parent.anchor) else parent


def write_report(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike | None = None,
                 *, tsne_size: int = 500, seed: int = 0, units: int = 64,
                 device: str = "cpu", title: str | None = None,
                 comparison: dict | None = None) -> ReportFiles:
    """Compare the runs in ``run_dirs`` (a ``compare`` folder stands for all its runs) in
    ``out_dir``/``report.md`` and a self-contained ``out_dir``/``report.html``, with the
    figures as PNG files beside them; returns their paths.

    The figures: train and test error per epoch; the angle to BP's update per hidden layer;
    when logged, that angle every k steps, the W–B correlation, gradient norms and
    saturation; for every run that saved its network, a t-SNE map of each hidden layer's
    features for ``tsne_size`` test examples (the same ones for every run; 0: no t-SNE), and
    its first layer's first ``units`` units as images; an autoencoder run's
    ``reconstructions.png``. Networks are rebuilt on ``device``.

    ``comparison``: the ``comparison.json`` of ``compare --seeds`` (read from the folder
    when ``run_dirs`` is one such compare folder); the report then also shows each rule's
    mean ± std over its seeds and its paired differences from the baseline rule.
    """
    if tsne_size < 0:
        raise ValueError(f"tsne_size is a number of test examples (0: no t-SNE); got {tsne_size}")
    folders = expand_run_dirs(list(run_dirs))
    records = [read_run(f) for f in folders]
    label_runs(records)
    out = Path(out_dir) if out_dir is not None else default_out_dir(folders)
    created = missing_folders(out)
    make_folder(out)
    # The whole set is made in a folder of its own inside ``out`` and moved into place only
    # once complete (renames need no disk space): a failure (a full disk) leaves the
    # previous report, or none, never half of one; and no folder it made for it.
    done = False
    try:
        stage = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
        try:
            files = _write_report(records, run_dirs, out, stage, tsne_size=tsne_size,
                                  seed=seed, units=units, device=device, title=title,
                                  comparison=comparison)
            done = True
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    except OSError as err:      # name the file it was making, not its copy in the stage
        named = _staged_name(err.filename, out)
        if err.errno is None or named is None:
            raise
        raise type(err)(err.errno, err.strerror, str(named)) from None
    finally:
        if not done:
            remove_created(out, created, False)
    return files


def _staged_name(filename, out: Path) -> Path | None:
    """What a path in the report's stage folder stands for in ``out`` (the stage itself:
    ``out``); ``None`` for any other path."""
    if filename is None:
        return None
    path = Path(filename)
    if path.parent == out and path.name.startswith(".report-"):
        return out
    if path.parent.parent == out and path.parent.name.startswith(".report-"):
        return out / path.name
    return None


def _write_report(records, run_dirs, out: Path, stage: Path, *, tsne_size, seed,
                  units, device, title, comparison) -> ReportFiles:
    """:func:`write_report`'s work: every file made in ``stage``, then moved to ``out``."""
    notes: list[str] = []
    # Classifiers log the fraction misclassified (shown in %); autoencoders the mean squared
    # reconstruction error per pixel (shown as it is).
    autoencoders = [r.config.get("loss") in ("reconstruction", "mse") for r in records]
    regression = all(r.config.get("loss") == "mse" for r in records)
    scale, unit = (1.0, "NSE" if regression else "MSE per pixel") if all(autoencoders) \
        else (100.0, "%")
    if any(autoencoders) and not all(autoencoders):
        notes.append("Some runs are autoencoders: their errors are mean squared errors per "
                     "pixel, shown ×100 beside the others' percentages.")
    text = bool(records) and all(r.summary.get("test_bpc") is not None for r in records)
    sections = _curve_sections(records, stage, scale, unit)
    if comparison is None and len(run_dirs) == 1:
        comparison = _seed_comparison(Path(run_dirs[0]))
    if comparison is not None and comparison.get("seeds"):
        sections.insert(0, _seeds_section(comparison, scale, unit))
    sections += _network_sections(records, stage, notes, tsne_size=tsne_size, seed=seed,
                                  units=units, device=device)
    recon = [r for r in records if (r.folder / RECONSTRUCTIONS).is_file()]
    if recon:
        sections.append(Section(
            "Autoencoder reconstructions",
            "Each autoencoder run's own reconstructions figure (" + RECONSTRUCTIONS + "), for "
            + ", ".join(r.label for r in recon) + ".",
            [r.folder / RECONSTRUCTIONS for r in recon]))
    for r in records:
        status = r.summary.get("status")
        if status not in (None, "completed"):
            notes.append(f"{r.label}: status {status!r}"
                         + (f" ({r.summary['message']})" if r.summary.get("message") else ""))

    content = Content(
        title=title or _default_title(records),
        intro=[f"{len(records)} run{'s' if len(records) != 1 else ''}: "
               + ", ".join(f"{r.label} ({r.folder})" for r in records) + ".",
               _errors_sentence(text, scale, regression) + "Angles compare each rule's "
               "weight update with back-propagation's on a fixed probe batch of training "
               "examples, with the same weights."],
        table_header=["run", "rule", "model", "data", "epochs", f"test error ({unit})",
                      f"train error ({unit})", "time (s)", "mean angle to BP (°)",
                      "angle per hidden layer (°)"]
        + (["test loss", "bits per character"] if text else []),
        table_rows=[_table_row(r, scale) + (_text_cells(r) if text else []) for r in records],
        sections=sections, notes=notes)
    write_text(stage / "report.html", render_html(content, [rule_color(r.rule) for r in records]))
    made = [image for s in sections for image in s.images if image.parent == stage]
    for section in sections:            # as they will be: in out
        section.images = [out / image.name if image.parent == stage else image
                          for image in section.images]
    write_text(stage / "report.md", render_markdown(content, out))
    markdown, html = out / "report.md", out / "report.html"
    for path in [*made, stage / "report.md", stage / "report.html"]:   # the documents last
        os.replace(path, out / path.name)
    figures = [image for s in sections for image in s.images]
    table = markdown_table([content.table_header, *content.table_rows])
    return ReportFiles(markdown, html, figures, table)


def _errors_sentence(text: bool, scale: float, regression: bool) -> str:
    """What the report's errors are."""
    if text:
        return ("Errors are percentages of mispredicted next characters; test loss is in nats "
                "per character. ")
    if scale == 100.0:
        return "Errors are percentages of misclassified examples. "
    return ("Errors are normalized squared errors. " if regression else
            "Errors are mean squared reconstruction errors per pixel. ")


def _text_cells(record) -> list[str]:
    """A language model's test loss (nats per character) and bits per character."""
    return [f"{record.summary['test_loss']:.4f}", f"{record.summary['test_bpc']:.4f}"]


def _seed_comparison(folder: Path) -> dict | None:
    """The ``comparison.json`` of a ``compare --seeds`` folder, else ``None``."""
    if not (folder / COMPARISON).is_file() or (folder / CONFIG).is_file():
        return None
    comparison = read_file(folder, COMPARISON)
    return comparison if isinstance(comparison.get("seeds"), list) and \
        len(comparison["seeds"]) > 1 else None


def _seeds_section(comparison: dict, scale: float, unit: str) -> Section:
    """Mean ± std per rule over its seeds, and each rule's paired differences in test error
    from the baseline rule (computed from the runs for a ``comparison.json`` older than
    them)."""
    stats = comparison.get("rules", {})

    digits = 2 if scale == 100 else 4

    def pm(stat, factor=scale, places=digits):
        if not isinstance(stat, dict):
            return "–"
        return f"{_fmt(stat.get('mean'), factor, places)} ± " \
               f"{_fmt(stat.get('std'), factor, places)}"

    rows = [["rule", "seeds", f"test error ({unit})", f"test error range ({unit})",
             f"train error ({unit})", "time (s)", "mean angle to BP (°)"]]
    for rule, s in stats.items():
        test = s.get("test_error") or {}
        low, high = _fmt(test.get("min"), scale, digits), _fmt(test.get("max"), scale, digits)
        rows.append([rule, str(test.get("n", 0)), pm(test), f"{low}–{high}",
                     pm(s.get("train_error")), pm(s.get("seconds"), 1.0, 1),
                     pm(s.get("mean_angle_deg"), 1.0, 1)])
    tables = [rows]
    paired = comparison.get("paired_differences")
    if paired is None and isinstance(comparison.get("runs"), dict) and comparison["runs"]:
        from ..training.seeds import paired_differences
        paired = paired_differences(comparison["runs"], next(iter(comparison["runs"])))
    text = (f"Each rule over its seeds ({', '.join(map(str, comparison['seeds']))}): mean ± "
            "sample standard deviation; seeds counts the runs with a test error.")
    if paired and paired.get("rules"):
        base = paired["baseline"]
        diff_unit = "percentage points" if scale == 100 else unit
        text += (f" Below, each rule's test error minus {base}'s on the same seed: the mean "
                 "of these paired differences ± its standard error, and the paired t-test "
                 "(two-sided) of whether it is 0. A seed where either run failed or diverged "
                 "is left out.")
        diffs = [[f"rule − {base}", "paired seeds", f"test error difference ({diff_unit})",
                  "paired t", "df", "p (two-sided)", "at 0.05"]]
        for rule, d in paired["rules"].items():
            n = d.get("n", 0)
            mean = "–" if d.get("mean") is None else f"{d['mean'] * scale:+.{digits}f}"
            if d.get("se") is not None:
                mean += f" ± {_fmt(d['se'], scale, digits)}"
            p = d.get("p")
            verdict = ("–" if p is None else "not significant" if p >= 0.05 else
                       f"significant ({'lower' if d['mean'] < 0 else 'higher'})")
            diffs.append([f"{rule} − {base}", str(n), mean.replace("-", "−"),
                          "–" if d.get("t") is None else f"{d['t']:.2f}".replace("-", "−"),
                          "–" if d.get("df") is None else str(d["df"]),
                          "fewer than 2 paired seeds" if p is None else f"{p:.2g}", verdict])
        tables.append(diffs)
    return Section("Over seeds", text, tables=tables)


def _default_title(records: list[RunRecord]) -> str:
    models = sorted({r.config.get("model", "?") for r in records})
    data = sorted({r.config.get("data", "?") for r in records})
    return f"biocredit report: {', '.join(r.label for r in records)} " \
           f"on {', '.join(models)}, {', '.join(data)}"


def _fmt(value, scale: float = 1.0, digits: int = 2) -> str:
    """``value × scale`` with ``digits`` decimals (significant digits if ``digits < 0``)."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    if digits < 0:
        return f"{value * scale:.{-digits}g}"
    return f"{value * scale:.{digits}f}"


def _table_row(r: RunRecord, scale: float = 100.0) -> list[str]:
    last = r.metrics[-1] if r.metrics else {}
    s = r.summary
    angles = last.get("angle_deg") or []
    finite = [a for a in angles if a is not None and math.isfinite(a)]
    mean_angle = s.get("mean_angle_deg", sum(finite) / len(finite) if finite else None)
    seconds = s.get("seconds", sum(row.get("seconds", 0.0) for row in r.metrics))
    return [r.label, r.rule, r.config.get("model", "?"), r.config.get("data", "?"),
            str(s.get("epochs_completed", len(r.metrics))),
            _fmt(s.get("test_error", last.get("test_error")), scale, 2 if scale == 100 else -4),
            _fmt(s.get("train_error", last.get("train_error")), scale, 2 if scale == 100 else -4),
            _fmt(seconds, digits=1), _fmt(mean_angle, digits=1),
            ", ".join(_fmt(a, digits=1) for a in angles) or "–"]


def _curve_sections(records: list[RunRecord], out: Path, scale: float,
                    unit: str) -> list[Section]:
    hidden = max((r.hidden_layers for r in records), default=0)

    def hidden_title(i, n):
        return f"hidden layer {i + 1}"

    def weight_title(i, n):
        return "output layer" if i == hidden and n == hidden + 1 else f"hidden layer {i + 1}"

    def feedback_title(i, n):
        if n == hidden:  # layer feedback: weight layers 2 … L
            return f"weight layer {i + 2}" + (" (output)" if i == n - 1 else "")
        return f"feedback matrix {i + 1}"

    sections = [Section("Error curves", "Train and test error after each epoch.",
                        [error_curves(records, out / "errors.png", scale=scale, unit=unit)])]
    figures = [
        ("Alignment with back-propagation",
         "Angle between each rule's weight update and BP's, per hidden layer, on the probe "
         "batch after each epoch (Lillicrap et al. 2016, Fig. 2b). Below the dashed 90° line "
         "the rule's update still descends BP's loss; BP itself stays at 0°.",
         dict(key="angle_deg", path=out / "alignment.png", ylabel="angle to BP's update (°)",
              panel_title=hidden_title, right_angle=True)),
        ("Alignment during training",
         "The same angle every k training steps (runs trained with --log-every-steps k).",
         dict(key="angle_deg", path=out / "alignment-steps.png", rows="steps", x="step",
              ylabel="angle to BP's update (°)", panel_title=hidden_title, right_angle=True)),
        ("Forward–feedback weight correlation",
         "Pearson correlation between each forward weight matrix W and its feedback matrix "
         "(Bᵀ, in W's layout) after each epoch, for the rules with a feedback matrix per "
         "layer (Amit 2019). Rules that learn their feedback (KP, URFB) drive it towards 1.",
         dict(key="wb_correlation", path=out / "feedback-correlation.png",
              ylabel="corr(W, Bᵀ)", panel_title=feedback_title)),
        ("Gradient norms",
         "Frobenius norm of each rule's weight gradient on the probe batch, per weight layer, "
         "after each epoch (log scale).",
         dict(key="grad_norm", path=out / "grad-norm.png", ylabel="‖ΔW‖ (gradient norm)",
              panel_title=weight_title, log=True)),
        ("Saturated units",
         "Percentage of hidden units on the probe batch whose bounded activation is "
         "saturated (tanh |h| > 0.99; logistic h < 0.01 or > 0.99; hardtanh |a| > 1). "
         "Unbounded activations (ReLU) have none and are left out.",
         dict(key="saturation", path=out / "saturation.png", ylabel="saturated units (%)",
              panel_title=hidden_title, scale=100.0, from_zero=True)),
    ]
    for name, text, kwargs in figures:
        path = layer_curves(records, **kwargs)
        if path is not None:
            sections.append(Section(name, text, [path]))
    return sections


def _network_sections(records: list[RunRecord], out: Path, notes: list[str], *,
                      tsne_size: int, seed: int, units: int, device: str) -> list[Section]:
    """t-SNE maps and receptive fields, from each run's saved network."""
    datasets: dict[tuple, object] = {}
    tsne_images, fields = [], []
    torch_device = resolve_device(device)
    for r in records:
        try:
            config = run_config(r.config, device, str(r.folder / CONFIG))
            key = (config.data, config.data_dir, config.normalize, config.validation)
            if key not in datasets:
                datasets[key] = load_dataset(config, torch_device)
            net, dataset = load_trained(r.folder, device, dataset=datasets[key])
        except (FileNotFoundError, ValueError, RuntimeError, KeyError) as err:
            notes.append(f"{r.label}: no t-SNE or receptive fields, the network could not be "
                         f"rebuilt ({err})")
            continue
        if not len(getattr(net, "blocks", ())) or not hasattr(net, "features"):
            note = (f"no t-SNE or receptive fields for {config.model} (they read the layered "
                    "built-in models' blocks; a model of your own or gpt has none)")
            if note not in notes:                   # once per model, not once per run
                notes.append(note)
            continue
        if tsne_size > 0:
            idx = subsample(len(dataset.test_x), tsne_size, seed)
            features = hidden_features(net, dataset.test_x[idx])
            labels = dataset.test_y[idx].cpu().numpy()
            maps = [embed(f, seed=seed) for f in features]
            tsne_images.append(tsne_figure(maps, labels, out / f"tsne-{slug(r.label)}.png",
                                           label=r.label, rule=r.rule,
                                           num_classes=dataset.num_classes))
        mosaic = _first_layer_mosaic(net, units)
        if mosaic is None:
            notes.append(f"{r.label}: the first layer's weights are not input-shaped; no "
                         "receptive fields")
        else:
            fields.append((r.label, r.rule, *mosaic))
    sections = []
    if tsne_images:
        sections.append(Section(
            "t-SNE of the hidden layers",
            f"t-SNE maps (scikit-learn; features wider than 50 reduced to 50 principal "
            f"components; PCA initialisation, random_state={seed}) of each "
            f"hidden layer's output for the same {tsne_size} (or all, if fewer) test examples, "
            "coloured by class (Nøkland 2016, Fig. 3). One figure per run, one panel per "
            "hidden layer.", tsne_images))
    if fields:
        sections.append(Section(
            "Receptive fields of the first layer",
            f"The incoming weights of the first {units} (or all, if fewer) units of hidden "
            "layer 1, each shown as an input image and scaled by its largest absolute weight: "
            "mid-grey is 0 (Lillicrap et al. 2016, Fig. S1).",
            [receptive_fields(fields, out / "receptive-fields.png")]))
    return sections


def _first_layer_mosaic(net, units: int):
    """The mosaic of the first weight layer's first ``units`` units (the effective weight,
    with any connectivity mask) and a line saying what it shows; ``None`` when they are not
    shaped like an input image (or like convolution kernels)."""
    layer = net.blocks[0].layer
    weight = layer.effective_weight() if hasattr(layer, "effective_weight") else layer.weight
    weight = weight.detach()
    if weight.dim() == 4:  # convolution kernels: out × C × kh × kw
        shape, what = tuple(weight.shape[1:]), "kernels of the first convolution"
    elif weight.dim() == 2 and len(net.input_shape) == 3 and \
            weight.shape[1] == math.prod(net.input_shape):
        shape, what = tuple(net.input_shape), "units of hidden layer 1"
    else:
        return None
    flat = weight.reshape(len(weight), -1).double().cpu().numpy()
    return unit_mosaic(flat, shape, units), f"first {min(units, len(flat))} {what}"
