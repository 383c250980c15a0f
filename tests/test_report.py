"""Reports over tiny runs on ``digits``: every file written, every figure a real image, the HTML
self-contained, the numbers in the table the runs' own; the pieces against NumPy."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import stat

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

import biocredit.rules as R
from biocredit.cli import main
from biocredit.report import (default_out_dir, expand_run_dirs, load_trained, read_run,
                              rule_color, write_report)
from biocredit.report.figures import unit_mosaic
from biocredit.report.tsne import embed, hidden_features, subsample
from biocredit.training import RunConfig, evaluate, run

TSNE_SIZE = 120
CURVES = {"errors.png", "alignment.png", "alignment-steps.png", "feedback-correlation.png",
          "grad-norm.png", "saturation.png"}
NETWORK_FIGURES = {"tsne-bp.png", "tsne-fa.png", "receptive-fields.png"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of mlp:2x16:tanh on digits (bp; fa with steps.jsonl and a reconstructions
    figure, as an autoencoder run would have), side by side in one folder."""
    root = tmp_path_factory.mktemp("runs")
    for rule, k in (("bp", 0), ("fa", 6)):
        run(RunConfig(rule=rule, model="mlp:2x16:tanh", epochs=2, batch_size=128, lr=3e-3,
                      log_every_steps=k), root / rule)
    picture = np.random.default_rng(0).random((28, 56))
    mpimg.imsave(root / "fa" / "reconstructions.png", picture, cmap="gray")
    return root


@pytest.fixture(scope="module")
def report(runs):
    return write_report([runs / "bp", runs / "fa"], tsne_size=TSNE_SIZE)


def colours(image: np.ndarray) -> int:
    """Distinct pixel colours of an image read by ``imread`` (floats in [0, 1])."""
    pixels = np.round(np.asarray(image) * 255).astype(np.uint32)
    pixels = pixels.reshape(-1, pixels.shape[-1]) if pixels.ndim == 3 else pixels.reshape(-1, 1)
    packed = np.zeros(len(pixels), dtype=np.uint32)
    for channel in range(pixels.shape[1]):
        packed = (packed << 8) | pixels[:, channel]
    return len(np.unique(packed))


def test_report_writes_every_expected_file_next_to_the_runs(runs, report):
    assert report.markdown == runs / "report.md" and report.html == runs / "report.html"
    names = {p.name for p in report.figures}
    assert names == CURVES | NETWORK_FIGURES | {"reconstructions.png"}
    for path in report.figures:
        assert path.is_file()
    assert runs / "fa" / "reconstructions.png" in report.figures
    assert not list(runs.glob(".*.tmp"))  # atomic writes leave no temporary files
    umask = os.umask(0o022)
    os.umask(umask)
    for path in [report.html, report.markdown, *report.figures]:
        if path.parent == runs:  # readable like any file written here, not private (0600)
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_every_figure_is_a_real_image_with_more_than_one_colour(report):
    for path in report.figures:
        image = mpimg.imread(path)
        assert image.ndim == 3 and image.shape[0] >= 28 and image.shape[1] >= 56, path
        assert colours(image) > 1, path
        if path.name != "reconstructions.png":
            assert image.shape[0] > 200 and colours(image) > 20, path  # drawn, not blank


def test_html_is_self_contained(report):
    html = report.html.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html, re.I)
    assert "http://" not in html and "https://" not in html
    for forbidden in ("<script", "<link", "@import", "url(", "href="):
        assert forbidden not in html.lower()
    sources = re.findall(r'<img src="([^"]*)"', html)
    assert len(sources) == len(report.figures)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        image = mpimg.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert colours(image) > 1


def test_summary_table_has_each_runs_numbers(runs, report):
    markdown = report.markdown.read_text()
    html = report.html.read_text()
    for rule in ("bp", "fa"):
        summary = json.loads((runs / rule / "summary.json").read_text())
        rows = [line for line in markdown.splitlines() if line.startswith(f"| {rule} |")]
        assert len(rows) == 1
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert cells[:5] == [rule, rule, "mlp:2x16:tanh", "digits", "2"]   # run, rule, …
        assert cells[5] == f"{100 * summary['test_error']:.2f}"
        assert cells[6] == f"{100 * summary['train_error']:.2f}"
        assert cells[7] == f"{summary['seconds']:.1f}"
        assert cells[8] == f"{summary['mean_angle_deg']:.1f}"
        assert f"<td>{100 * summary['test_error']:.2f}</td>" in html
    assert float(cells[8]) > 1.0  # fa's angle to BP; bp's is 0.0
    for path in report.figures:
        name = path.name if path.parent == runs else f"fa/{path.name}"
        assert f"]({name})" in markdown


def test_rules_keep_one_colour_each():
    names = R.available()
    palette = [rule_color(n) for n in names]
    assert len(set(palette)) == len(names)
    assert rule_color("bp") == "#000000"
    assert rule_color("fa") == rule_color("fa") and rule_color("not-a-rule").startswith("#")


def test_unit_mosaic_tiles_each_unit_scaled_by_its_largest_weight():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(7, 12))
    weight[5] = 0.0
    mosaic = unit_mosaic(weight, (1, 3, 4), units=6)  # 2 rows of 3 tiles, 1-pixel gaps
    assert mosaic.shape == (2 * 3 + 1, 3 * 4 + 2)
    for k in range(6):
        r, c = divmod(k, 3)
        tile = mosaic[r * 4:r * 4 + 3, c * 5:c * 5 + 4]
        scale = np.abs(weight[k]).max() or 1.0  # unit 5 is all zero: it stays zero
        np.testing.assert_allclose(tile, weight[k].reshape(3, 4) / scale, rtol=1e-12)
    assert np.isnan(mosaic[3]).all() and np.isnan(mosaic[:, [4, 9]]).all()
    rgb = unit_mosaic(rng.normal(size=(4, 3 * 2 * 2)), (3, 2, 2))
    assert rgb.shape == (5, 5, 3) and rgb.min() >= 0 and rgb.max() <= 1


def test_subsample_and_tsne_are_fixed_by_the_seed():
    idx = subsample(360, 100, seed=0)
    assert len(idx) == 100 and len(set(idx)) == 100 and idx.min() >= 0 and idx.max() < 360
    assert np.array_equal(idx, subsample(360, 100, seed=0))
    assert not np.array_equal(idx, subsample(360, 100, seed=1))
    assert np.array_equal(subsample(50, 100), np.arange(50))
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 1, (30, 8)), rng.normal(8, 1, (30, 8))])
    points = embed(features, seed=0)
    assert points.shape == (60, 2) and np.array_equal(points, embed(features, seed=0))
    # two well-separated clusters stay apart: each point's nearest neighbour is in its cluster
    d = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(60) * 1e9
    assert ((d.argmin(1) < 30) == (np.arange(60) < 30)).all()


def test_load_trained_rebuilds_the_saved_network(runs):
    net, data = load_trained(runs / "fa")
    summary = read_run(runs / "fa").summary
    from biocredit.losses import create
    assert evaluate(net, data.test_x, data.test_y, create("ce"))[1] == summary["test_error"]
    state = torch.load(runs / "fa" / "model.pt", weights_only=True)
    assert torch.equal(net.head.layer.feedback, state["head.layer.feedback"])
    features = hidden_features(net, data.test_x[:10])
    assert [f.shape for f in features] == [(10, 16), (10, 16)]
    with torch.no_grad():
        np.testing.assert_allclose(features[1], net.features(data.test_x[:10])[1].double(),
                                   rtol=1e-12)


def test_run_folders_and_default_out(runs, tmp_path):
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "comparison.json").write_text(json.dumps({"rules": {"fa": {}, "bp": {}}}))
    assert expand_run_dirs([tmp_path / "cmp"]) == [tmp_path / "cmp" / "fa", tmp_path / "cmp" / "bp"]
    assert default_out_dir([runs / "bp"]) == runs / "bp"
    assert default_out_dir([runs / "bp", runs / "fa"]) == runs.resolve()
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        read_run(tmp_path)


def test_report_command_writes_to_out(runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(runs / "fa"), str(runs / "bp"), "--out", str(out),
                 "--tsne-size", "0", "--title", "two runs"]) == 0
    printed = capsys.readouterr().out
    assert str(out / "report.html") in printed
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| run | rule | model | data | epochs | test error")
    assert [row.split(" | ")[0] for row in table[1:]] == ["| fa", "| bp"]   # a row per run
    assert (out / "report.md").read_text().startswith("# two runs")
    assert not list(out.glob("tsne-*.png")) and (out / "receptive-fields.png").is_file()
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert main(["report", str(runs / "bp"), "--tsne-size", "-1"]) == 2


def test_compare_ends_with_the_report_unless_told_not_to(tmp_path, capsys):
    args = ["compare", "--rules", "bp,dfa", "--model", "mlp:1x16:tanh", "--data", "digits",
            "--epochs", "1", "--batch-size", "128", "--quiet", "--tsne-size", "60"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert f"report written to {tmp_path / 'a' / 'report.html'}" in printed
    assert {"tsne-bp.png", "tsne-dfa.png"} <= {p.name for p in (tmp_path / "a").iterdir()}
    assert main([*args, "--out", str(tmp_path / "b"), "--no-report"]) == 0
    assert "report" not in capsys.readouterr().out
    assert not (tmp_path / "b" / "report.md").exists()


def test_autoencoder_errors_are_shown_as_mean_squared_errors(runs, tmp_path):
    folder = tmp_path / "ae"
    shutil.copytree(runs / "bp", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "loss": "reconstruction"}))
    files = write_report([folder], tsne_size=0)
    assert files.markdown == folder / "report.md"
    summary = json.loads((folder / "summary.json").read_text())
    markdown = files.markdown.read_text()
    assert "| test error (MSE per pixel) |" in markdown
    assert f"| {summary['test_error']:.4g} |" in markdown
