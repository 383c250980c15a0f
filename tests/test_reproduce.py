"""Every preset of the papers' experiments runs (smoke budget), resumes, and is written up."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import biocredit
from biocredit.cli import main
from biocredit.experiments import PRESETS
from biocredit.experiments.claims import Claim, evaluate
from biocredit.experiments.document import figure_file, write_reproduction
from biocredit.experiments.presets import Preset, Step
from biocredit.experiments.suite import RECORD, is_done, run_preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_runs_at_the_smoke_budget_and_judges_every_claim(name, tmp_path, capsys):
    preset = PRESETS[name]
    out = tmp_path / name
    assert main(["reproduce", name, "--budget", "smoke", "--out", str(out)]) == 0
    record = json.loads((out / RECORD).read_text())
    assert record["status"] == "done" and record["budget"] == "smoke"
    for step in preset.steps:                      # each step wrote its table
        folder = out / step.name if step.name else out
        assert any((folder / f).is_file() for f in ("comparison.json", "seeds.json",
                                                    "summary.json"))
    verdicts = record["verdicts"]
    assert len(verdicts) == len(preset.claims)
    assert all(v["status"] in ("holds", "does not hold") for v in verdicts), verdicts
    if preset.claims:
        assert (out / "verdicts.md").read_text().count("| `") == len(preset.claims)


def summary(test_error, train_error=0.1, angle=45.0):
    return {"test_error": test_error, "train_error": train_error, "mean_angle_deg": angle,
            "val_error": None, "label": None}


def fake_runner(values: dict[str, float], calls: list):
    """Stands in for the command line: writes a comparison with the given test errors."""
    def run(argv):
        calls.append(argv)
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        specs = argv[argv.index("--rules") + 1].split(",")
        step = out.name
        rules = {s: summary(values[f"{step}.{s}"]) for s in specs}
        (out / "comparison.json").write_text(json.dumps({"rules": rules}))
        (out / "errors.png").write_bytes(PNG)
        return 0
    return run


# A 1x1 PNG, enough to be embedded and copied.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")

TWO_STEPS = Preset("two-steps", "a preset of two steps", (
    Step(("compare", "--rules", "bp,fa", "--data", "digits"), "small"),
    Step(("compare", "--rules", "bp,fa", "--data", "digits"), "large")),
    claims=(Claim("large.fa.test_error - large.bp.test_error < "
                  "small.fa.test_error - small.bp.test_error", "a quote", "a paper"),
            Claim("small.fa.test_error < 0.1", "another", "a paper")),
    source="nokland")


def test_a_preset_resumes_and_its_claims_read_every_step(tmp_path):
    values = {"small.bp": 0.1, "small.fa": 0.3, "large.bp": 0.1, "large.fa": 0.2}
    calls = []
    record = run_preset(TWO_STEPS, "short", tmp_path, fake_runner(values, calls))
    assert record["status"] == "done" and len(calls) == 2
    assert [v["status"] for v in record["verdicts"]] == ["holds", "does not hold"]
    assert is_done(TWO_STEPS, "short", tmp_path)
    assert not is_done(TWO_STEPS, "paper", tmp_path)
    # a second run finds both steps finished; --force runs them again
    run_preset(TWO_STEPS, "short", tmp_path, fake_runner(values, calls))
    assert len(calls) == 2
    run_preset(TWO_STEPS, "short", tmp_path, fake_runner(values, calls), force=True)
    assert len(calls) == 4
    # other flags make other commands: the finished steps do not count
    assert not is_done(TWO_STEPS, "short", tmp_path, ["--epochs", "2"])


def test_a_failed_step_stops_the_preset_and_is_run_again(tmp_path):
    calls = []

    def failing(argv):
        calls.append(argv)
        return 2
    record = run_preset(TWO_STEPS, "short", tmp_path, failing)
    assert record["status"] == "failed" and record["failed_step"] == "small"
    assert len(calls) == 1 and not is_done(TWO_STEPS, "short", tmp_path)


def test_budgets_change_the_commands():
    preset = PRESETS["nokland-7x240"]
    step = preset.steps[0]
    paper = preset.command(step, "paper", "out")
    short = preset.command(step, "short", "out")
    smoke = preset.command(step, "smoke", "out")
    assert paper == [*step.argv, "--out", "out/uniform"]  # the paper budget: as written
    for argv, expected in ((paper, {"--data": "mnist", "--epochs": "300", "--seeds": "3"}),
                           (short, {"--data": "mnist", "--epochs": "3", "--seeds": "1"}),
                           (smoke, {"--data": "synthetic", "--epochs": "1", "--seeds": "1"})):
        last = {flag: argv[len(argv) - argv[::-1].index(flag)] for flag in expected}
        assert last == expected
    with pytest.raises(ValueError, match="budget"):
        preset.command(step, "huge", "out")


def test_a_step_that_gives_a_flag_twice_is_refused():
    """The last of two --lr would silently win (the old flam-shepherd-grid ran at the wrong
    rate that way)."""
    with pytest.raises(ValueError, match="--lr more than once"):
        Step(("compare", "--lr", "0.01", "--rules", "bp", "--lr", "3e-4"), "grid")
    Step(("compare", "-O", "a=1", "-O", "b=2"))            # rule options repeat


@pytest.mark.parametrize("name", [n for n, p in PRESETS.items() if "paper" in p.budgets])
def test_every_paper_preset_runs_the_papers_data_with_three_seeds_and_traces_its_settings(name):
    preset = PRESETS[name]
    assert preset.settings and all(bool(s.quote) != bool(s.choice) for s in preset.settings)
    for step in preset.steps:
        argv = preset.command(step, "paper", "out")
        seeds = argv[len(argv) - argv[::-1].index("--seeds")]
        assert int(seeds) >= 3, (step.name, seeds)
        if preset.source in ("nokland", "flam-shepherd") or name == "lillicrap-mnist":
            assert step.flag("--data") == "mnist"


def test_dry_run_prints_each_setting_with_its_source(capsys):
    assert main(["reproduce", "flam-shepherd-b1-b7", "--budget", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "| setting | ours | source |" in out
    assert "“Stochastic gradient descent with a learning rate of 0.001 was used " in out
    assert "not in the paper: our choice, the paper gives none" in out
    assert "--data mnist" in out and "--lr 0.016 --batch-size 16" in out


def test_dry_run_shows_each_flag_once_at_the_value_it_takes(capsys):
    """A budget's flags come after the preset's and replace them (argparse keeps the last):
    the dry run prints the command as it acts."""
    assert main(["reproduce", "launay-char-lm", "--budget", "smoke", "--dry-run"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines()
                if l.startswith("biocredit compare"))
    flags = [token for token in line.split() if token.startswith("--")]
    assert len(flags) == len(set(flags)), line
    assert "--model gpt:1x16:h2" in line and "gpt:2x64:h4" not in line
    assert "--epochs 1 " in line and "--seeds 1 " in line


def test_a_paper_budget_run_without_its_data_stops_with_the_way_to_get_it(
        tmp_path, capsys, monkeypatch):
    import biocredit.data.download as download

    def offline(*args, **kwargs):
        raise OSError("no network")
    monkeypatch.setattr(download, "urlopen", offline)
    monkeypatch.setenv("BIOCREDIT_DATA", str(tmp_path / "empty"))
    code = main(["reproduce", "nokland-ifa", "--budget", "paper", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "nokland-ifa needs mnist, which is not installed here; to get it:" \
        in err
    assert not (tmp_path / "o").exists()                     # nothing ran, nothing swapped


def test_a_step_stopped_part_way_continues_with_resume(tmp_path):
    calls = []

    def stopped_then_done(argv):
        calls.append(argv)
        out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else Path(argv[2])
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.json").write_text("{}")
        (out / "checkpoint.ckpt").write_bytes(b"")
        if len(calls) == 1:
            return 143                                      # SIGTERM after an epoch
        return fake_runner({"small.bp": 0.1, "small.fa": 0.2, "large.bp": 0.1,
                            "large.fa": 0.2}, [])(argv if "--out" in argv else
                                                  [*TWO_STEPS.command(TWO_STEPS.steps[0],
                                                                      "short", str(tmp_path))])
    record = run_preset(TWO_STEPS, "short", tmp_path, stopped_then_done)
    assert record["status"] == "failed" and calls[0][-1] == "--overwrite"
    run_preset(TWO_STEPS, "short", tmp_path, stopped_then_done)
    assert calls[1] == ["compare", "--resume", str(tmp_path / "small")]


def test_the_document_has_every_paper_claim_and_figure(tmp_path, monkeypatch):
    values = {"small.bp": 0.1, "small.fa": 0.3, "large.bp": 0.1, "large.fa": 0.2}
    run_preset(TWO_STEPS, "short", tmp_path / "two-steps", fake_runner(values, []))
    not_run = Preset("never", "not run", (Step(("train", "--rule", "bp")),),
                     claims=(Claim("bp.test_error < 1", "q", "s"),), source="amit")
    files = write_reproduction([TWO_STEPS, not_run], tmp_path, "short",
                               "biocredit reproduce all --budget short",
                               publish=tmp_path / "docs")
    assert files[-1] == tmp_path / "docs" / "REPRODUCTION-short.md"
    markdown = (tmp_path / "REPRODUCTION.md").read_text()
    assert "## Nøkland 2016" in markdown and "## Amit 2019" in markdown
    assert "| Nøkland 2016 | two-steps | 1 | 1 | 0 |" in markdown
    assert "| Amit 2019 | never | 0 | 0 | 1 | - |" in markdown
    assert "**holds**" in markdown and "Not run at this budget." in markdown
    assert "](two-steps/small/errors.png)" in markdown
    html = (tmp_path / "REPRODUCTION.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html
    published = (tmp_path / "docs" / "REPRODUCTION-short.md").read_text()
    assert "](reproduction-short/two-steps-large-errors.png)" in published
    assert (tmp_path / "docs" / "reproduction-short" / "two-steps-large-errors.png"
            ).read_bytes() == PNG
    assert len(files) == 3


def test_claims_name_runs_of_a_step():
    claim = Claim("deep.urfb.test_error < deep.frfb.test_error and urfb.test_error < 0.5",
                  "q", "s")
    assert claim.names() == {"deep.urfb", "deep.frfb", "urfb"}
    runs = {"deep.urfb": [summary(0.2)], "deep.frfb": [summary(0.3)], "urfb": [summary(0.4)]}
    assert evaluate(claim, runs).status == "holds"
    runs["urfb"] = [summary(0.6)]
    assert evaluate(claim, runs).status == "does not hold"
    for bad in ("deep.urfb.frfb.test_error < 1", "deep.urfb < 1", "(1).test_error < 1"):
        with pytest.raises(ValueError):
            evaluate(Claim(bad, "", ""), runs)


def test_reproduce_reports_a_failing_preset_and_goes_on(tmp_path, capsys, monkeypatch):
    import biocredit.experiments as experiments
    import biocredit.experiments.suite as suite
    lacking = Preset("lacking", "a preset whose data is not installed",
                     (Step(("train", "--rule", "bp", "--data", "digits")),))
    monkeypatch.setattr(experiments, "PRESETS", {"lacking": lacking, "demo": PRESETS["demo"]})
    monkeypatch.setattr(suite, "missing_data", lambda p, budget, extra=(): (
        "lacking needs a data set, which is not installed here" if p is lacking else None))
    code = main(["reproduce", "all", "--budget", "smoke", "--out", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "lacking needs a data set" in err and "1 preset(s) failed: lacking" in err
    assert json.loads((tmp_path / "demo" / RECORD).read_text())["status"] == "done"
    assert (tmp_path / "REPRODUCTION.md").is_file() and (tmp_path / "REPRODUCTION.html").is_file()


def test_reproduce_refuses_a_wrong_step_before_anything_runs(tmp_path, capsys, monkeypatch):
    import biocredit.experiments as experiments
    bad = Preset("bad", "a preset whose command is wrong", (Step(("train", "--nope")),))
    monkeypatch.setattr(experiments, "PRESETS", {"demo": PRESETS["demo"], "bad": bad})
    assert main(["reproduce", "all", "--budget", "smoke", "--out", str(tmp_path)]) == 2
    assert "--nope" in capsys.readouterr().err
    assert not tmp_path.joinpath("demo").exists()


# -- what the new experiments need --------------------------------------------------------------

def test_teacher_tasks_are_regressions_a_linear_fit_solves():
    from biocredit.data import load
    linear = load("linear-teacher")
    assert linear.regression and linear.input_shape == (30,) and linear.num_classes == 10
    solution = torch.linalg.lstsq(linear.train_x.double(), linear.train_y.double()).solution
    residual = linear.test_x.double() @ solution - linear.test_y.double()
    assert residual.abs().max() < 1e-4                   # y = T x exactly
    nonlinear = load("nonlinear-teacher")
    solution = torch.linalg.lstsq(nonlinear.train_x.double(), nonlinear.train_y.double()).solution
    nse = ((nonlinear.test_x.double() @ solution - nonlinear.test_y).pow(2).sum()
           / nonlinear.test_y.double().pow(2).sum())
    assert 0.05 < nse < 0.9                              # a linear fit is not enough
    amit = load("amit-linear")
    assert torch.equal(amit.train_x, torch.eye(40)) and amit.train_y.shape == (40, 10)
    assert abs(amit.train_y.std().item() - 0.2) < 0.02


def test_mse_error_is_the_normalized_squared_error():
    from biocredit import losses
    loss = losses.create("mse")
    y = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    yhat = torch.tensor([[1.5, 2.0], [2.0, -1.0]])
    assert loss(yhat, y).item() == pytest.approx(0.5 * (0.25 + 1.0) / 2)
    assert loss.errors(yhat, y).item() / 2 == pytest.approx(1.25 / 15)


def test_regress_task_needs_a_teacher_set(tmp_path, capsys):
    assert main(["train", "--rule", "fa", "--task", "regress", "--data", "digits",
                 "--quiet", "--out", str(tmp_path / "a")]) == 2
    assert "teacher data set" in capsys.readouterr().err
    assert main(["train", "--rule", "bp", "--data", "linear-teacher", "--model",
                 "mlp:1x20:linear", "--quiet", "--out", str(tmp_path / "b")]) == 2
    assert "--task regress" in capsys.readouterr().err


def test_synthetic_set_is_fixed_and_subsets_take_the_first_examples():
    from biocredit.data import load
    a, b = load("synthetic"), load("synthetic", train_size=100, test_size=50)
    assert a.input_shape == (1, 28, 28) and len(a.train_x) == 2000 and len(b.test_x) == 50
    assert torch.equal(a.train_x[:100], b.train_x) and torch.equal(a.train_y[:100], b.train_y)
    assert sorted(a.train_y.unique().tolist()) == list(range(10))
    with pytest.raises(ValueError, match="train_size"):
        load("synthetic", train_size=0)


def run_config(**overrides):
    from biocredit.training import RunConfig
    return RunConfig(**{"rule": "bp", "model": "mlp:2x16:tanh", "data": "digits", "epochs": 2,
                        "batch_size": 64, **overrides})


def test_freeze_keeps_a_layer_and_init_from_starts_where_a_run_ended(tmp_path):
    from biocredit.training import run
    from biocredit.training.run import build, load_dataset
    run(run_config(freeze=["blocks.0"]), tmp_path / "frozen")
    saved = torch.load(tmp_path / "frozen" / "model.pt")
    config = run_config(rule="dfa", init_from=str(tmp_path / "frozen" / "model.pt"))
    dataset = load_dataset(config, torch.device("cpu"))
    net, *_ = build(config, dataset, torch.device("cpu"))
    for key in ("blocks.0.layer.weight", "blocks.1.layer.weight", "head.layer.bias"):
        assert torch.equal(net.state_dict()[key], saved[key])
    fresh, *_ = build(run_config(), dataset, torch.device("cpu"))
    assert torch.equal(saved["blocks.0.layer.weight"], fresh.state_dict()["blocks.0.layer.weight"])
    assert not torch.equal(saved["blocks.1.layer.weight"], fresh.state_dict()["blocks.1.layer.weight"])
    with pytest.raises(ValueError, match="matches no parameter"):
        build(run_config(freeze=["blocks.9"]), dataset, torch.device("cpu"))


def test_stop_train_error_ends_the_run_early(tmp_path):
    from biocredit.training import run
    summary = run(run_config(epochs=20, stop_train_error=0.5, lr=0.01), tmp_path)
    assert summary["epochs_completed"] < 20 and summary["train_error"] <= 0.5


def test_fast_gradient_sign_uses_the_true_gradient_whatever_the_rule():
    from biocredit import losses, models, rules
    from biocredit.training.loop import fast_gradient_sign
    torch.manual_seed(0)
    plain = models.create("mlp:2x16:tanh", (1, 8, 8), 10).double()
    converted = biocredit.convert(plain, rules.create("fa"))
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 10, (5,))
    loss = losses.create("ce")
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(plain(xr), y), xr)
    expected = x + 0.1 * grad.sign()
    assert torch.equal(fast_gradient_sign(converted, loss, x, y, 0.1), expected)


def test_sparse_conv_nets_keep_their_masked_connections_at_zero(tmp_path):
    from biocredit import models
    torch.manual_seed(0)
    net = models.create("amit-simpnet", (1, 28, 28), 10, forward_density=0.5)
    masks = {n: m for n, m in net.named_buffers() if n.endswith("weight_mask")}
    assert len(masks) == 3
    assert all(abs(m.mean().item() - 0.5) < 0.05 for m in masks.values())
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    optimizer.step()
    for name, mask in masks.items():
        layer = net.get_submodule(name.rsplit(".", 1)[0])
        assert (layer.effective_weight()[mask == 0] == 0).all()


def test_output_feedback_angles_follow_lillicraps_definitions():
    from biocredit import losses, models, rules
    from biocredit.metrics import output_feedback_angles
    torch.manual_seed(0)
    plain = models.create("mlp:1x6:linear", (5,), 3, init_scale=0.3).double()
    assert plain.blocks[0].layer.weight.abs().max() <= 0.3
    net = biocredit.convert(plain, rules.create("fa"))
    x, y = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    loss = losses.create("mse")
    angles = output_feedback_angles(net, x, y, loss)
    head = net.head.layer
    w, b = head.weight.detach().numpy(), head.feedback.numpy()        # both 3 x 6
    e = (net(x).detach().numpy() - y.numpy()) / len(x)

    def angle(u, v):
        return np.degrees(np.arccos(np.sum(u * v) / np.linalg.norm(u) / np.linalg.norm(v)))
    assert angles["hidden_angle_deg"] == pytest.approx(angle(e @ b, e @ w), abs=1e-9)
    assert angles["pseudo_angle_deg"] == pytest.approx(angle(e @ b, e @ np.linalg.pinv(w).T),
                                                       abs=1e-9)
    assert output_feedback_angles(biocredit.convert(plain, rules.create("dfa")), x, y, loss) == {}
    with pytest.raises(ValueError, match="init_scale"):
        models.create("mlp:1x6:linear", (5,), 3, init="xavier", init_scale=0.3)


def test_a_started_step_without_a_checkpoint_starts_afresh(tmp_path):
    """A clone of the committed results holds a step's run files but no checkpoint."""
    from biocredit.experiments.suite import STARTED, continued
    argv = ["compare", "--rules", "bp", "--out", str(tmp_path)]
    (tmp_path / STARTED).write_text(json.dumps({"argv": argv}))
    (tmp_path / "run.json").write_text("{}")
    assert continued(argv, tmp_path) is None
    (tmp_path / "bp").mkdir()
    (tmp_path / "bp" / "checkpoint.ckpt").write_bytes(b"")
    assert continued(argv, tmp_path) == ["compare", "--resume", str(tmp_path)]
    assert continued(argv[:-2], tmp_path) is None          # another command line


def test_a_figure_drawn_per_seed_is_shown_from_the_first_seed(tmp_path):
    """nokland-tsne lists ``tsne-bp.png``; a report over 3 seeds draws ``tsne-bp-s0.png``
    to ``-s2``: the document shows seed 0's (not seed 10's, nor another figure's)."""
    for name in ("tsne-bp-s10.png", "tsne-bp-s2.png", "tsne-bp-s0.png", "tsne-bp-sx.png",
                 "tsne-bpx-s0.png", "errors.png"):
        (tmp_path / name).write_bytes(b"png")
    assert figure_file(tmp_path, "tsne-bp.png") == tmp_path / "tsne-bp-s0.png"
    assert figure_file(tmp_path, "errors.png") == tmp_path / "errors.png"
    assert figure_file(tmp_path, "tsne-fa.png") is None
    (tmp_path / "tsne-bp.png").write_bytes(b"png")               # one seed: its own name
    assert figure_file(tmp_path, "tsne-bp.png") == tmp_path / "tsne-bp.png"
