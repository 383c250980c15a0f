"""The command line end to end on the embedded ``digits`` data."""

import json

import pytest

from biocredit.cli import main


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def train(tmp_path, *extra, name="run"):
    out = tmp_path / name
    code = main(["train", "--model", "mlp:1x32:tanh", "--data", "digits", "--epochs", "2",
                 "--batch-size", "64", "--quiet", "--out", str(out), *extra])
    return code, out


def test_train_writes_config_metrics_and_summary(tmp_path, capsys):
    code, out = train(tmp_path, "--rule", "dfa", "--model", "mlp:2x32:tanh", "--lr", "0.01")
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["rule"] == "dfa" and config["model"] == "mlp:2x32:tanh"
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        assert set(row) >= {"epoch", "train_loss", "train_error", "test_error", "seconds",
                            "angle_deg"}
        assert 0 <= row["train_error"] <= 1 and 0 <= row["test_error"] <= 1
        assert len(row["angle_deg"]) == 2 and all(0 < a < 90 for a in row["angle_deg"])
    summary = json.loads((out / "summary.json").read_text())
    for key in ("rule", "model", "data", "epochs", "seed", "test_error", "train_error",
                "seconds"):
        assert key in summary
    assert summary["status"] == "completed"
    assert summary["test_error"] == rows[-1]["test_error"]
    assert summary["test_error"] < 0.25  # two epochs already learn digits
    assert (out / "model.pt").exists()
    assert "test error" in capsys.readouterr().out


def test_same_seed_same_numbers_on_the_cpu(tmp_path):
    numbers = []
    for name in ("a", "b"):
        assert train(tmp_path, "--rule", "fa", "--dropout-hidden", "0.2", name=name)[0] == 0
        rows = read_jsonl(tmp_path / name / "metrics.jsonl")
        numbers.append([(r["train_loss"], r["test_error"], r["angle_deg"]) for r in rows])
    assert numbers[0] == numbers[1]
    assert train(tmp_path, "--rule", "fa", "--dropout-hidden", "0.2", "--seed", "1",
                 name="c")[0] == 0
    other = read_jsonl(tmp_path / "c" / "metrics.jsonl")
    assert [r["train_loss"] for r in other] != [n[0] for n in numbers[0]]


def test_compare_trains_each_rule_and_prints_a_table(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--rules", "bp,fa,dfa", "--model", "mlp:1x32:tanh", "--data",
                 "digits", "--epochs", "1", "--quiet", "--out", str(out)])
    assert code == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert list(comparison["rules"]) == ["bp", "fa", "dfa"]
    for rule in ("bp", "fa", "dfa"):
        assert (out / rule / "summary.json").exists()
    assert comparison["rules"]["bp"]["mean_angle_deg"] < 1e-3
    table = capsys.readouterr().out
    assert "test error" in table and all(r in table for r in ("bp", "fa", "dfa"))


def test_bench_reports_median_step_and_ratio(tmp_path):
    path = tmp_path / "bench.json"
    code = main(["bench", "--model", "mlp:2x64:tanh", "--batch-size", "16", "--rules",
                 "fa,dfa", "--steps", "3", "--warmup", "1", "--json", str(path)])
    assert code == 0
    result = json.loads(path.read_text())
    assert set(result["rules"]) == {"torch", "bp", "fa", "dfa"}   # torch: the unconverted model
    assert result["rules"]["bp"]["ratio_to_bp"] == 1.0
    assert result["rules"]["torch"]["ratio_to_torch"] == 1.0
    for r in result["rules"].values():
        assert r["step_ms"] > 0 and r["gflops"] > 0 and r["saved_mb"] > 0
    # the arithmetic floor from the layer shapes: forward MACs F = [784·64, 64·64, 64·10]
    assert result["forward_macs"] == [784 * 64, 64 * 64, 64 * 10]
    total = 784 * 64 + 64 * 64 + 64 * 10
    bp = 2 * total + 64 * 64 + 64 * 10                # forward, weight and input gradients
    assert result["rules"]["bp"]["floor_macs"] == result["rules"]["fa"]["floor_macs"] == bp
    assert result["rules"]["dfa"]["floor_macs"] == 2 * total + 10 * (64 + 64)
    assert result["rules"]["dfa"]["floor_ratio"] == pytest.approx((2 * total + 1280) / bp)


@pytest.mark.parametrize("args, message", [
    (["train", "--rule", "nope"], "available rules: bp, brsf, dfa, dkp, fa"),
    (["train", "--model", "cnn:3"], "available models: amit-deepernet"),
    (["train", "--model", "mlp:2y8:tanh"], "DEPTHxWIDTH"),
    (["train", "--model", "mlp:2x8:swish"], "choose from hardtanh, linear, logistic, relu, tanh"),
    (["train", "--data", "imagenet"], "available datasets"),
    (["train", "--loss", "l1"], "available losses"),
    (["train", "--device", "cuda:0"], "no CUDA"),
    (["train", "-O", "nope=1"], "has the option 'nope'"),
    (["train", "--rule", "dfa", "-O", "fa.feedback_scale=0.1"], "'fa' is not a rule of this run"),
    (["compare", "--rules", "bp,fa", "-O", "fa.epsilon=0.1"], "rule 'fa' has no option 'epsilon'"),
    (["compare", "--rules", "bp,zz"], "available rules"),
    (["train", "--forward-density", "5"], "forward_density is the fraction"),
    (["bench", "--steps", "0"], "steps must be an integer of at least 1"),
    (["bench", "--batch-size", "0"], "batch_size must be an integer of at least 1"),
    (["bench", "--classes", "0"], "num_classes must be an integer of at least 2"),
    (["bench", "--input-shape", "0x28x28"], "input_shape needs positive sizes"),
])
def test_bad_input_gives_a_clear_error(tmp_path, capsys, args, message):
    code = main([*args, "--quiet", "--out", str(tmp_path / "x")] if args[0] != "bench"
                else args)
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("biocredit: error:")
    assert message in err


def test_missing_dataset_says_where_it_looked(tmp_path, capsys, monkeypatch):
    import biocredit.data.locate as locate
    monkeypatch.setattr(locate, "SYSTEM_DIRS", {}, raising=False)
    monkeypatch.setenv("BIOCREDIT_DATA", str(tmp_path / "cache"))
    code = main(["train", "--data", "mnist", "--data-dir", str(tmp_path / "nowhere"),
                 "--no-download",
                 "--quiet", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2
    assert str(tmp_path / "nowhere") in err


def test_diverging_run_stops_with_a_message_and_keeps_its_files(tmp_path, capsys):
    code, out = train(tmp_path, "--rule", "bp", "--model", "mlp:1x32:relu",
                      "--optimizer", "sgd", "--lr", "1e30")
    assert code == 1
    assert "diverged" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and "learning rate" in summary["message"]
    assert (out / "config.json").exists()


def test_compare_takes_rule_specs_and_the_strategy_flags(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--rules", "dfa,general:strategy=s2,general:strategy=s1",
                 "--aux-errors", "--model", "mlp:2x16:tanh", "--data", "digits",
                 "--epochs", "1", "--quiet", "--no-report", "--out", str(out)])
    assert code == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert list(comparison["rules"]) == ["dfa", "general:strategy=s2", "general:strategy=s1"]
    config = json.loads((out / "general-strategy-s2" / "config.json").read_text())
    assert config["rule"] == "general"
    assert config["rule_options"] == {"strategy": "s2", "aux_errors": True}
    assert json.loads((out / "dfa" / "config.json").read_text())["rule_options"] == \
        {"aux_errors": True}
    assert "general:strategy=s1" in capsys.readouterr().out


def test_train_autoencoder_reports_reconstruction_error_and_saves_the_image(tmp_path):
    code, out = train(tmp_path, "--rule", "dfa", "--task", "autoencoder", "--lr", "0.01")
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "autoencoder"
    rows = read_jsonl(out / "metrics.jsonl")
    assert 0 < rows[-1]["test_error"] < rows[0]["test_error"] < 0.2   # per-pixel MSE falls
    from matplotlib.image import imread
    image = imread(out / "reconstructions.png")
    assert image.shape[0] > 100 and image.std() > 0.05


def test_autoencoder_with_a_class_loss_is_refused(tmp_path, capsys):
    code, _ = train(tmp_path, "--task", "autoencoder", "--loss", "ce")
    assert code == 2
    assert "reconstruction loss" in capsys.readouterr().err


def test_reproduce_lists_presets_and_runs_one_with_overrides(tmp_path, capsys):
    assert main(["reproduce"]) == 0
    listing = capsys.readouterr().out
    assert "amit-mlp" in listing and "flam-shepherd-autoencoders" in listing
    assert main(["reproduce", "amit-mlp", "--dry-run"]) == 0
    assert "--loss hinge" in capsys.readouterr().out
    out = tmp_path / "demo"
    assert main(["reproduce", "demo", "--epochs", "1", "--quiet", "--no-report",
                 "--out", str(out)]) == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["config"]["epochs"] == 1 and list(comparison["rules"]) == ["bp", "fa", "dfa"]
    assert main(["reproduce", "nope"]) == 2
    assert "available presets" in capsys.readouterr().err


USER_MODEL = '''
import torch
from torch import nn
import biocredit


class Net(nn.Module):
    def __init__(self, features, classes):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(features, 48), nn.Tanh())
        self.tap = biocredit.Tap()
        self.top = nn.Sequential(nn.Linear(48, 32), nn.Tanh())
        self.head = nn.Linear(32, classes)

    def forward(self, x):
        return self.head(self.top(self.tap(self.body(x))))


def build(input_shape, num_classes):
    return Net(int(torch.tensor(input_shape).prod()), num_classes)
'''


@pytest.mark.parametrize("rule", ["dfa", "fa", "kp"])
def test_train_a_model_of_your_own(tmp_path, capsys, rule):
    path = tmp_path / "mymodel.py"
    path.write_text(USER_MODEL)
    out = tmp_path / rule
    code = main(["train", "--model", f"{path}:build", "--rule", rule, "--taps", "top",
                 "--data", "digits", "--epochs", "3", "--lr", "0.01", "--quiet",
                 "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_error"] < 0.2, summary["test_error"]
    assert summary["weight_transport"]["transport"] == 0
    rows = read_jsonl(out / "metrics.jsonl")
    assert len(rows[-1]["angle_deg"]) == 2          # body.1 and top.0, against BP
    assert "without it" in capsys.readouterr().out


def test_a_missing_model_file_or_function_is_a_clear_error(tmp_path, capsys):
    code = main(["train", "--model", str(tmp_path / "nope.py") + ":build", "--quiet",
                 "--out", str(tmp_path / "a")])
    assert code != 0 and "not found" in capsys.readouterr().err
    (tmp_path / "m.py").write_text("def other(shape, classes):\n    return None\n")
    code = main(["train", "--model", str(tmp_path / "m.py") + ":build", "--quiet",
                 "--out", str(tmp_path / "b")])
    assert code != 0 and "has no function 'build'; it defines: other" in capsys.readouterr().err


def test_compare_with_several_seeds_keeps_every_run_and_reports_mean_and_std(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--rules", "bp,dfa", "--model", "mlp:1x16:tanh", "--data", "digits",
                 "--epochs", "1", "--seeds", "3", "--seed", "4", "--quiet", "--no-report",
                 "--out", str(out)])
    assert code == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["seeds"] == [4, 5, 6]
    for spec in ("bp", "dfa"):
        errors = []
        for seed in (4, 5, 6):
            summary = json.loads((out / spec / f"seed-{seed}" / "summary.json").read_text())
            assert summary["seed"] == seed and summary["status"] == "completed"
            errors.append(summary["test_error"])
        stats = comparison["rules"][spec]["test_error"]
        assert stats["n"] == 3 and stats["min"] == min(errors) and stats["max"] == max(errors)
        assert stats["mean"] == pytest.approx(sum(errors) / 3)
        mean = sum(errors) / 3
        assert stats["std"] == pytest.approx((sum((e - mean) ** 2 for e in errors) / 2) ** 0.5)
        assert len(set(errors)) > 1                      # the seeds really differ
    table = capsys.readouterr().out
    assert "seeds" in table and "±" in table
    from biocredit.report.runs import expand_run_dirs
    assert len(expand_run_dirs([out])) == 6


def test_one_seed_of_several_is_the_single_seed_run(tmp_path):
    single = tmp_path / "single"
    main(["train", "--rule", "fa", "--model", "mlp:1x16:tanh", "--data", "digits", "--epochs",
          "1", "--seed", "5", "--quiet", "--out", str(single)])
    several = tmp_path / "several"
    main(["train", "--rule", "fa", "--model", "mlp:1x16:tanh", "--data", "digits", "--epochs",
          "1", "--seeds", "4,5", "--quiet", "--out", str(several)])
    a = read_jsonl(single / "metrics.jsonl")
    b = read_jsonl(several / "seed-5" / "metrics.jsonl")
    timing = ("seconds", "overhead_seconds", "run_id")
    drop = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]
    assert drop(a) == drop(b)
    seeds = json.loads((several / "seeds.json").read_text())
    assert seeds["seeds"] == [4, 5] and seeds["statistics"]["test_error"]["n"] == 2


@pytest.mark.parametrize("text", ["0", "a", "1,1", "-2"])
def test_bad_seeds_are_refused(tmp_path, capsys, text):
    code = main(["train", "--seeds", text, "--quiet", "--out", str(tmp_path / "x")])
    assert code == 2 and "--seeds" in capsys.readouterr().err


# -- issue 27 ----------------------------------------------------------------------------------
FAILING_MODEL = '''
from torch import nn


class Net(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, classes))

    def forward(self, x):
        if self.training:
            raise ValueError("boom in forward")
        return self.body(x)


def build_value(input_shape, num_classes):
    raise ValueError("boom in build")


def build_key(input_shape, num_classes):
    return {}["x"]


def build_forward(input_shape, num_classes):
    return Net(num_classes)
'''


@pytest.mark.parametrize("function, line, text", [
    ("build_value", 17, "ValueError: boom in build"),
    ("build_key", 21, "KeyError: 'x'"),
    ("build_forward", 12, "ValueError: boom in forward"),
])
def test_an_error_in_a_users_model_file_names_its_file_and_line(tmp_path, capsys, function,
                                                                 line, text):
    """Issue 27 item 8: a ValueError in build or forward said "boom in user code" without
    file or line, and exited 2 where other errors of the user's code exit 1."""
    path = tmp_path / "mine.py"
    path.write_text(FAILING_MODEL)
    code = main(["train", "--model", f"{path}:{function}", "--rule", "fa", "--data", "digits",
                 "--epochs", "1", "--quiet", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and f"error in {path}, line {line}" in err and text in err


def test_biocredits_own_refusals_inside_a_users_forward_are_not_put_on_the_user(tmp_path,
                                                                               capsys):
    (tmp_path / "mine.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, classes):\n"
        "        super().__init__()\n"
        "        self.body, self.head = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), "
        "nn.Tanh()), nn.Linear(8, classes)\n\n"
        "    def forward(self, x):\n"
        "        return self.head(self.body(x))\n\n"
        "def build(input_shape, num_classes):\n"
        "    return Net(num_classes)\n")
    code = main(["train", "--model", f"{tmp_path / 'mine.py'}:build", "--rule", "dfa",
                 "--taps", "body,head", "--data", "digits", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("biocredit: error: dfa: no layer with weights")


@pytest.mark.parametrize("spec, message", [
    ("mlp:1.5x800:tanh", "cannot read hidden layers from '1.5x800'"),
    ("{dir}/mine.py", "name the function in it that builds the model, as {dir}/mine.py:FUNCTION"),
])
def test_model_specs_that_are_almost_right_say_what_is_wrong(tmp_path, capsys, spec, message):
    """Issue 27 item 12: ``mlp:1.5x800:tanh`` said "No module named 'mlp:1'"; a model file
    without ``:FUNCTION`` said "unknown model"."""
    (tmp_path / "mine.py").write_text(FAILING_MODEL)
    code = main(["train", "--model", spec.format(dir=tmp_path), "--quiet",
                 "--out", str(tmp_path / "run")])
    assert code == 2
    assert message.format(dir=tmp_path) in capsys.readouterr().err


def test_progress_bars_are_not_written_into_files_or_pipes(tmp_path, capsys):
    """Issue 27 item 12: without --quiet, tqdm's bars went into redirected stderr."""
    code = main(["train", "--model", "mlp:1x8:tanh", "--data", "digits", "--epochs", "1",
                 "--train-size", "256", "--test-size", "64", "--batch-size", "16",
                 "--out", str(tmp_path / "run")])
    assert code == 0
    err = capsys.readouterr().err
    assert "dfa epoch 1: loss" in err             # the epoch's line stays
    assert "\r" not in err and "it/s" not in err and "|" not in err


def test_an_unwritable_json_path_is_named_not_its_temporary_file(capsys):
    """Issue 27 item 12: ``bench --json /proc/x.json`` named ``/proc/.x.json.….tmp``."""
    code = main(["bench", "--model", "mlp:1x8:tanh", "--rules", "bp", "--steps", "1",
                 "--warmup", "0", "--json", "/proc/x.json"])
    err = capsys.readouterr().err
    assert code == 2 and "/proc/x.json" in err and ".tmp" not in err


def test_out_of_memory_is_said_with_the_size_it_needed(tmp_path):
    """Issue 27 item 12: ``bench --batch-size 1e8`` was an "internal error … please report
    it". (Under an address-space limit, so the allocation fails the same way everywhere.)"""
    import resource
    import subprocess
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    done = subprocess.run([sys.executable, "-m", "biocredit.cli", "bench", "--batch-size",
                           "100000000", "--model", "mlp:1x8:tanh", "--rules", "bp",
                           "--steps", "1", "--warmup", "0"], preexec_fn=limit,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("biocredit: out of memory: it needed 313.6 GB more on the "
                                  "CPU; try a smaller --batch-size"), done.stderr
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize("text, count", [("1.0", " (1)"), ("2.5", ""), ("1e3", " (1000)")])
def test_validation_is_a_fraction_or_a_whole_count_never_both(tmp_path, capsys, text, count):
    """Issue 27 item 13: ``--validation 1.0`` held out one example."""
    code = main(["train", "--validation", text, "--quiet", "--out", str(tmp_path / "run")])
    assert code == 2 and not (tmp_path / "run").exists()
    assert f"'{text}' is neither a fraction in [0, 1) (e.g. 0.1) nor a count of examples, " \
           f"which is a whole number written without a point{count}" in capsys.readouterr().err


def test_a_forward_that_skips_its_taps_is_an_error_of_the_model_not_an_internal_one(tmp_path,
                                                                                    capsys):
    """biocredit's refusals of a model's structure inside its forward (here: no tap reached
    in training) end as one-line errors (exit 2), not "internal error … please report it"."""
    (tmp_path / "mine.py").write_text(
        "import torch\nfrom torch import nn\nimport biocredit\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, n):\n"
        "        super().__init__()\n"
        "        self.a = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.Tanh())\n"
        "        self.t, self.b = biocredit.Tap(), nn.Linear(8, n)\n\n"
        "    def example_input(self):\n"
        "        return torch.zeros(1, 1, 8, 8)\n\n"
        "    def forward(self, x):\n"
        "        h = self.a(x)\n"
        "        return self.b(h if self.training else self.t(h))\n\n"
        "def build(input_shape, num_classes):\n"
        "    return Net(num_classes)\n")
    code = main(["train", "--model", f"{tmp_path / 'mine.py'}:build", "--rule", "dfa",
                 "--data", "digits", "--epochs", "1", "--quiet", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("biocredit: error: dfa: the forward pass went through "
                                        "no tap") and err.count("\n") == 1
