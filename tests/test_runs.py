"""Runs you can trust: run folders, checkpoints and resume, signals, divergence, validation
up front (issue 13)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from biocredit import rules
from biocredit.cli import main
from biocredit.training import RunConfig, run
from biocredit.training.folder import CHECKPOINT, RunFolderError, load_checkpoint
from biocredit.interrupt import request_stop

SMALL = ["--model", "mlp:1x32:tanh", "--data", "digits", "--train-size", "400",
         "--test-size", "100", "--batch-size", "64", "--quiet"]


def small_config(rule: str, epochs: int) -> RunConfig:
    """Dropout (torch's global generator), shuffling (the order generator), Adam's moments
    and each rule's feedback state all have to come back for a resume to be exact."""
    options = {"dkp": {"feedback_lr_decay": 0.8}}.get(rule, {})
    return RunConfig(rule=rule, rule_options=options, model="mlp:2x16:tanh",
                     model_options={"dropout_hidden": 0.2}, data="digits", train_size=300,
                     test_size=100, probe_size=32, epochs=epochs, batch_size=128, lr=1e-2,
                     seed=3)


def without_times(rows):
    return [{k: v for k, v in r.items() if k not in ("seconds", "overhead_seconds", "run_id")}
            for r in rows]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.mark.parametrize("rule", rules.available())
def test_four_epochs_equal_two_then_a_resume_for_two_bit_for_bit(rule, tmp_path):
    run(small_config(rule, 4), tmp_path / "straight")
    run(small_config(rule, 2), tmp_path / "resumed")
    first_id = json.loads((tmp_path / "resumed" / "config.json").read_text())["run_id"]
    summary = run(small_config(rule, 4), tmp_path / "resumed", resume=True)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 4
    assert summary["run_id"] == first_id          # the same run, continued
    assert without_times(read_jsonl(tmp_path / "straight" / "metrics.jsonl")) == \
        without_times(read_jsonl(tmp_path / "resumed" / "metrics.jsonl"))
    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def without_overhead(summary):
    """(The checkpoint knows its last epoch's overhead only up to writing itself.)"""
    return {k: v for k, v in summary.items() if k != "overhead_seconds"}


def test_a_finished_run_resumes_to_itself_and_a_longer_one_continues(tmp_path):
    first = run(small_config("fa", 2), tmp_path)
    again = run(small_config("fa", 2), tmp_path, resume=True)
    assert again == first
    with pytest.raises(RunFolderError, match="other settings"):
        run(RunConfig(**{**small_config("fa", 3).__dict__, "lr": 0.5}), tmp_path, resume=True)
    with pytest.raises(RunFolderError, match="finished 2 epochs already"):
        run(small_config("fa", 1), tmp_path, resume=True)


def test_a_run_killed_after_its_last_checkpoint_resumes_to_completed(tmp_path):
    """SIGKILL leaves the summary saying "running" (or "interrupted" after a signal in the
    last epoch); a resume rebuilds it from the checkpoint."""
    first = run(small_config("fa", 2), tmp_path)
    for status in ("running", "interrupted"):
        (tmp_path / "summary.json").write_text(json.dumps({**first, "status": status,
                                                           "seconds": None}))
        again = run(small_config("fa", 2), tmp_path, resume=True)
        assert again["status"] == "completed"
        assert without_overhead(again) == without_overhead(first)
        assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"


def test_a_run_that_stopped_early_stays_stopped_when_resumed(tmp_path):
    config = small_config("bp", 4)
    config.stop_train_error = 0.99
    first = run(config, tmp_path)
    assert first["epochs_completed"] == 1
    again = run(config, tmp_path, resume=True)
    assert again["epochs_completed"] == 1 and again["status"] == "completed"


def test_a_run_that_fails_while_setting_up_leaves_no_folder_behind(tmp_path, capsys):
    out = tmp_path / "run"
    bad = ["train", *SMALL, "--epochs", "1", "--out", str(out)]
    assert main([*bad, "--freeze", "nosuchlayer"]) == 2
    assert "nosuchlayer" in capsys.readouterr().err
    assert not out.exists()
    out.mkdir()
    assert main([*bad, "--init-from", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert not (out / "config.json").exists()
    assert main(bad) == 0                         # the folder is free for the run


def test_a_new_run_refuses_a_folder_holding_another(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    before = (out / "config.json").read_text()
    assert main(["train", *SMALL, "--epochs", "1", "--lr", "0.1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err and "--resume" in err
    assert "holds a finished run (1 of 1 epochs)" in err
    assert (out / "config.json").read_text() == before            # nothing touched
    (out / "steps.jsonl").write_text("{}\n")                      # a file of the old run
    assert main(["train", *SMALL, "--epochs", "1", "--lr", "0.1", "--out", str(out),
                 "--overwrite"]) == 0
    assert not (out / "steps.jsonl").exists()
    assert json.loads((out / "config.json").read_text())["lr"] == 0.1


def test_the_default_out_is_new_for_every_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert main(["train", *SMALL, "--epochs", "1"]) == 0
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2
    ids = {json.loads((f / "config.json").read_text())["run_id"] for f in folders}
    assert len(ids) == 2


def test_a_folder_in_use_is_refused_naming_the_holder(tmp_path, capsys):
    import fcntl
    out = tmp_path / "busy"
    out.mkdir()
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242\n")
        assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 2
    finally:
        os.close(fd)
    err = capsys.readouterr().err
    assert "in use" in err and "PID 4242" in err and err.count("\n") == 1
    assert not (out / "config.json").exists()


def test_every_file_carries_the_run_id_and_report_refuses_a_mix(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["train", *SMALL, "--epochs", "1", "--out", str(tmp_path / name)]) == 0
    a = tmp_path / "a"
    run_id = json.loads((a / "config.json").read_text())["run_id"]
    assert json.loads((a / "summary.json").read_text())["run_id"] == run_id
    assert all(r["run_id"] == run_id for r in read_jsonl(a / "metrics.jsonl"))
    assert load_checkpoint(a / CHECKPOINT)["run_id"] == run_id
    (a / "metrics.jsonl").write_bytes((tmp_path / "b" / "metrics.jsonl").read_bytes())
    assert main(["report", str(a), "--tsne-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "mixes files of different runs" in err and err.count("\n") == 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_a_corrupt_checkpoint_is_named_and_nothing_is_loaded(damage, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    path = out / CHECKPOINT
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        data = data[:len(data) // 3]
    else:
        data = bytearray(os.urandom(200))
    path.write_bytes(bytes(data))
    metrics = (out / "metrics.jsonl").read_text()
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and err.count("\n") == 1 and "Traceback" not in err
    assert (out / "metrics.jsonl").read_text() == metrics


def test_resume_takes_only_epochs_device_and_quiet(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--lr", "0.5"]) == 2
    assert "--lr" in capsys.readouterr().err
    assert main(["compare", "--resume", str(out)]) == 2
    assert "no biocredit compare run" in capsys.readouterr().err


def run_cli(args, **popen):
    return subprocess.Popen([sys.executable, "-m", "biocredit.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_after_the_step_and_the_run_resumes(signum, tmp_path):
    out = tmp_path / "run"
    process = run_cli(["train", "--model", "mlp:1x32:tanh", "--data", "digits", "--epochs",
                       "100000", "--batch-size", "16", "--quiet", "--out", str(out)])
    try:
        for _ in range(600):                          # until the first epoch is written
            if (out / CHECKPOINT).exists() or process.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"])
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"biocredit train --resume {out}" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["resume_epoch"] >= 1
    epochs = summary["resume_epoch"] + 1
    assert main(["train", "--resume", str(out), "--epochs", str(epochs), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == epochs


def test_an_interrupted_compare_reports_what_finished_and_resumes(tmp_path, capsys,
                                                                 monkeypatch):
    import biocredit.cli as cli
    trained = []

    def stop_after_first(config, out, *args, **kwargs):
        summary = real(config, out, *args, **kwargs)
        trained.append(config.rule)
        if len(trained) == 1:
            request_stop(signal.SIGTERM)       # as if SIGTERM came during the first rule
        return summary

    real = cli.run
    monkeypatch.setattr(cli, "run", stop_after_first)
    out = tmp_path / "cmp"
    code = main(["compare", "--rules", "bp,fa,dfa", *SMALL, "--epochs", "2", "--out", str(out),
                 "--tsne-size", "0"])
    assert code == 143
    captured = capsys.readouterr()
    assert f"biocredit compare --resume {out}" in captured.err
    comparison = json.loads((out / "comparison.json").read_text())
    assert list(comparison["rules"]) == ["bp"]
    assert (out / "report.md").is_file() and "bp" in captured.out
    assert not (out / "fa").exists()    # a stop pending at its set-up: fa never started
    bp_summary = (out / "bp" / "summary.json").read_text()
    monkeypatch.setattr(cli, "run", real)
    assert main(["compare", "--resume", str(out), "--quiet"]) == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert list(comparison["rules"]) == ["bp", "fa", "dfa"]
    assert all(s["status"] == "completed" and s["epochs_completed"] == 2
               for s in comparison["rules"].values())
    assert (out / "bp" / "summary.json").read_text() == bp_summary      # not trained again


def test_a_loss_far_above_the_initial_one_is_divergence(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "3", "--lr", "1e6", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "--divergence-factor" in err and err.count("\n") == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and "bound" in summary["message"]


def test_in_compare_a_diverged_rule_is_marked_and_the_others_go_on(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--rules", "bp,dfa:feedback_scale=1e6,fa", *SMALL, "--model",
                 "mlp:1x32:relu", "--optimizer", "sgd", "--lr", "0.01", "--epochs", "2",
                 "--no-report", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert "dfa:feedback_scale=1e6 (diverged)" in captured.out
    assert "diverged" in captured.err and "going on" in captured.err
    rules_ = json.loads((out / "comparison.json").read_text())["rules"]
    assert rules_["dfa:feedback_scale=1e6"]["status"] == "diverged"
    assert rules_["bp"]["status"] == rules_["fa"]["status"] == "completed"


def test_compare_checks_every_rule_against_the_model_before_training(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--rules", "bp,fa:feedback_init=bogus", *SMALL, "--out",
                 str(out)]) == 2
    assert "fa:feedback_init=bogus" in capsys.readouterr().err
    assert not (out / "bp").exists()                      # nothing trained
    assert main(["compare", "--rules", "bp,fa", *SMALL, "--epochs", "1", "--no-report",
                 "--out", str(out)]) == 0                 # and the folder is still free


@pytest.mark.parametrize("argv, words", [
    (["train", "-O", "feedback_scale=abc"], "feedback_scale must be a number"),
    (["train", "-O", "aux_errors=3"], "aux_errors must be true or false"),
    (["train", "--device", "meta"], "unknown device"),
    (["train", "--device", "mps"], "mps"),
    (["train", "--seed", "100000000000000000000"], "[0, 2^32)"),
    (["train", "--seeds=-3,1"], "[0, 2^32)"),
    (["train", "--model", "mlp:100000x1:tanh"], "200,083 parameters"),
    (["train", "--model", "mlp:2x9000000:tanh"], "parameters"),
    (["train", "--lr", "inf"], "learning rate"),
    (["train", "--divergence-factor", "-1"], "divergence_factor"),
])
def test_nonsense_is_one_line_naming_it(argv, words, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_a_validation_count_is_a_count(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--validation", "100", "--out",
                 str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["validation"] == 100
    assert json.loads((out / "summary.json").read_text())["val_error"] is not None


@pytest.mark.parametrize("problem", ["read-only", "a file in the way", "too long"])
def test_unusable_out_paths_are_one_line_errors(problem, tmp_path, capsys):
    if problem == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        locked_dir = tmp_path / "ro"
        locked_dir.mkdir(mode=0o500)
        out = locked_dir / "run"
    elif problem == "a file in the way":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
    else:
        out = tmp_path / ("x" * 300) / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("biocredit: error:") and err.count("\n") == 1


def test_garbage_files_in_a_run_folder_are_named(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    (out / "model.pt").write_bytes(b"not a model")
    assert main(["report", str(out), "--tsne-size", "10"]) == 0    # the report notes it
    note = (out / "report.md").read_text()
    assert "model.pt cannot be loaded" in note and "weights_only=False" not in note
    (out / "config.json").write_text("[1, 2]")
    assert main(["report", str(out), "--tsne-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and err.count("\n") == 1


@pytest.mark.parametrize("rule", ["dfa", "dkp", "node-perturbation"])
def test_a_direct_rule_with_every_hidden_layer_frozen_trains_the_output_layer(rule, tmp_path):
    """Found by the fuzz test: the engine took "no tap recorded" for "no tap placed"."""
    config = RunConfig(rule=rule, model="mlp:1x8:tanh", freeze=["blocks.0"], data="digits",
                       train_size=200, test_size=50, epochs=1, lr=0.01)
    run(config, tmp_path / "frozen")
    bp = run(RunConfig(**{**config.__dict__, "rule": "bp"}), tmp_path / "bp")
    assert read_jsonl(tmp_path / "frozen" / "metrics.jsonl")[0]["test_error"] == \
        read_jsonl(tmp_path / "bp" / "metrics.jsonl")[0]["test_error"] == bp["test_error"]


@pytest.mark.parametrize("shape, classes", [((1, 8, 8), 0), ((0, 8, 8), 10), ((), 10)])
def test_models_refuse_no_outputs_or_empty_inputs(shape, classes):
    import biocredit.models as M
    with pytest.raises(ValueError, match="output|input_shape"):
        M.create("mlp:1x4:tanh", shape, classes)


def test_taps_on_a_built_in_model_choose_among_its_own(tmp_path, capsys):
    """Found by the fuzz test: a second tap on a built-in model's tapped layer; now --taps
    keeps the named ones of its own taps (bench and train alike) and names them otherwise."""
    assert main(["bench", "--model", "mlp:2x8:tanh", "--taps", "blocks.0", "--steps", "1",
                 "--rules", "dfa"]) == 0
    assert main(["bench", "--model", "mlp:1x8:tanh", "--taps", "blocks.5", "--steps", "1",
                 "--rules", "dfa"]) == 2
    assert "its taps: blocks.0" in capsys.readouterr().err


def test_a_signal_stops_reproduce_instead_of_moving_to_the_next_preset(tmp_path, capsys,
                                                                       monkeypatch):
    import biocredit.cli as cli
    real = cli.run

    def interrupted(*args, **kwargs):
        request_stop(signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "run", interrupted)
    code = main(["reproduce", "all", "--budget", "smoke", "--out", str(tmp_path)])
    assert code == 143
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1      # the first preset only
    assert "interrupted" in capsys.readouterr().err


def test_overwrite_deletes_only_what_biocredit_wrote(tmp_path):
    """Found by a tester: --overwrite emptied a project folder that had a config.json."""
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text('{"name": "my app"}')
    (project / "notes.txt").write_text("x")
    (project / "src" / "main.py").write_text("y")
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(project), "--overwrite"]) == 0
    assert (project / "notes.txt").read_text() == "x"
    assert (project / "src" / "main.py").read_text() == "y"
    assert json.loads((project / "config.json").read_text())["rule"] == "dfa"


def test_a_rule_that_diverges_in_its_first_epoch_is_left_out_of_the_report(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--rules", "bp,dfa:feedback_scale=1e9", *SMALL, "--model",
                 "mlp:1x32:relu", "--optimizer", "sgd", "--lr", "0.01", "--epochs", "1",
                 "--tsne-size", "0", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0 and "leaves out dfa:feedback_scale=1e9" in err
    assert "dfa:feedback_scale=1e9" not in (out / "report.md").read_text()
    assert main(["report", str(out), "--out", str(tmp_path / "again")]) == 0  # bp alone
    assert main(["report", str(out / "dfa-feedback-scale-1e9")]) == 2
    assert "finished no epoch (status diverged)" in capsys.readouterr().err


def test_a_comparison_where_every_run_diverges_fails(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--rules", "bp,fa", *SMALL, "--lr", "1e6", "--epochs", "1",
                 "--out", str(out)]) == 1
    assert "every run of the comparison diverged" in capsys.readouterr().err
    assert '"status": "diverged"' in (out / "comparison.json").read_text()


def test_a_resume_with_more_epochs_is_remembered_by_the_next_resume(tmp_path, capsys):
    out = tmp_path / "seeds"
    assert main(["train", *SMALL, "--epochs", "1", "--seeds", "2", "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--epo", "2", "--quiet"]) == 0  # abbreviated
    again = json.loads((out / "seed-1" / "summary.json").read_text())
    assert again["epochs_completed"] == 2
    assert main(["train", "--resume", str(out), "--quiet"]) == 0          # stays at 2
    assert json.loads((out / "seed-1" / "summary.json").read_text()) == again
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    assert json.loads((out / "seeds.json").read_text())["run_id"] == run_id


def test_model_pt_carries_the_run_id_and_report_refuses_another_runs(tmp_path, capsys):
    from biocredit.report.runs import load_trained, model_run_id
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    state = torch.load(a / "model.pt", weights_only=True)
    assert model_run_id(state) == json.loads((a / "config.json").read_text())["run_id"]
    load_trained(a)
    (a / "model.pt").write_bytes((b / "model.pt").read_bytes())
    with pytest.raises(ValueError, match="mixes files of different runs"):
        load_trained(a)


@pytest.mark.parametrize("file, change, words", [
    ("config.json", {"lr": "x"}, "lr must be a number"),
    ("config.json", {"model": 5}, "model must be a string"),
    ("config.json", {"rule_options": [1]}, "rule_options must be an object"),
    ("config.json", {"epochs": 1.5}, "epochs must be a whole number"),
    ("run.json", {"argv": ["compare", "--rules", "bp"]}, "not one of biocredit train"),
    ("run.json", {"configs": {"fa": {"lr": "x"}}}, "lr must be a number"),
    ("run.json", {"seeds": "0,1"}, "seeds must be a list"),
    ("run.json", {"argv": "train"}, "not a biocredit run record"),
])
def test_wrong_types_in_a_run_folders_files_are_named(file, change, words, tmp_path, capsys):
    out = tmp_path / "run"
    seeds = ["--seeds", "2"] if file == "run.json" else []
    assert main(["train", *SMALL, "--epochs", "1", *seeds, "--out", str(out)]) == 0
    path = out / file if file == "run.json" else out / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    assert main(["train", "--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert words in err and file in err and err.count("\n") == 1


def test_a_run_json_from_before_plans_were_stored_resumes_as_its_command_line(tmp_path,
                                                                          capsys):
    """Older versions stored only the command line in run.json: a resume parses it."""
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--seeds", "2", "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    old = {key: record[key] for key in ("run_id", "command", "argv")}
    (out / "run.json").write_text(json.dumps({**old, "argv": ["train", "--no-such-flag"]}))
    assert main(["train", "--resume", str(out), "--quiet"]) == 2
    assert "run.json: its command line" in capsys.readouterr().err
    (out / "run.json").write_text(json.dumps(old))
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0
    assert json.loads((out / "seed-1" / "summary.json").read_text())["epochs_completed"] == 2
    assert json.loads((out / "run.json").read_text())["run_id"] == old["run_id"]


def test_errors_in_a_users_model_file_name_the_file_and_line(tmp_path, capsys):
    (tmp_path / "bad.py").write_text(
        "import torch\n"
        "def raises(shape, n):\n    raise RuntimeError('my bug')\n"
        "def wrong(shape, n):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))\n")
    (tmp_path / "syntax.py").write_text("def f(:\n")
    common = [*SMALL[2:], "--epochs", "1", "--out", str(tmp_path / "run")]
    assert main(["train", "--model", f"{tmp_path}/bad.py:raises", *common]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path}/bad.py, line 3 (raises): RuntimeError: my bug" in err
    assert "internal error" not in err and err.count("\n") == 1
    assert main(["train", "--model", f"{tmp_path}/syntax.py:f", *common]) == 1
    assert "syntax.py, line 1: SyntaxError" in capsys.readouterr().err
    assert main(["train", "--model", f"{tmp_path}/bad.py:wrong", *common]) == 2
    assert "outputs of shape (2, 3)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, words", [
    (["train", "-O", "novalue"], "KEY=VALUE"),
    (["compare", "--rules", "fa:feedback_scale=1", "-O", "fa.feedback_scale=2"],
     "set it in one place"),
    (["train", "--init-from", "README.md"], "is not a model.pt"),
    (["report", "no/such/folder"], "no such run folder"),
])
def test_more_nonsense_is_one_line_naming_it(argv, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent.parent)
    out = [] if argv[0] == "report" else ["--out", str(tmp_path / "x"), "--quiet"]
    assert main([*argv, *out]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_a_data_dir_that_is_a_file_is_called_one(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert main(["train", "--data", "mnist", "--data-dir", str(tmp_path / "afile"),
                 "--no-download", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "afile (a file, not a folder)" in capsys.readouterr().err


def test_the_suite_and_its_subprocesses_see_no_installed_data():
    """conftest points the cache and the system folders at empty folders, in os.environ, so
    a CLI started as a subprocess searches them too (not ~/.cache or /usr/share)."""
    code = ("from biocredit.data import locate; "
            "print('\\n'.join(map(str, locate.search_dirs('fashion-mnist', None))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    dirs = [Path(line) for line in done.stdout.splitlines()]
    assert dirs == [Path(os.environ["BIOCREDIT_SYSTEM_DATA"]) / "fashion-mnist",
                    Path(os.environ["BIOCREDIT_DATA"]) / "fashion-mnist"]
    assert Path.home() / ".cache" not in dirs[1].parents


def test_ctrl_c_while_importing_is_one_line(monkeypatch, capsys):
    import builtins
    import biocredit.__main__ as entry
    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "cli" or name.endswith(".cli"):
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    assert entry.main() == 130
    monkeypatch.setattr(builtins, "__import__", real_import)
    assert capsys.readouterr().err == "biocredit: interrupted\n"


def test_the_running_train_error_is_the_full_one_when_the_model_stands_still(tmp_path):
    """``train_error = "running"`` counts the errors of the batches as they are trained on;
    with a learning rate too small to move the weights it is the full evaluation's value."""
    rows = {}
    for mode in ("full", "running"):
        config = small_config("dfa", 2)
        config.model_options, config.optimizer, config.lr = {}, "sgd", 1e-30
        config.train_error = mode
        run(config, tmp_path / mode)
        rows[mode] = read_jsonl(tmp_path / mode / "metrics.jsonl")
    for full, running in zip(rows["full"], rows["running"]):
        assert running["train_error"] == pytest.approx(full["train_error"], abs=1e-12)
        assert running["test_error"] == full["test_error"] and 0 < full["train_error"] < 1
    moving = small_config("dfa", 1)                 # a learning model: the two differ
    moving.train_error = "running"
    assert run(moving, tmp_path / "moving")["train_error"] != \
        run(small_config("dfa", 1), tmp_path / "moving-full")["train_error"]


# -- issue 27: signals during set-up, and passed on to the host --------------------------------
SLOW_BUILD = """
import os, signal, time
from torch import nn

def build(input_shape, num_classes):
    open(os.environ["BIOCREDIT_TEST_MARK"], "w").close()
    time.sleep(120)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes))
"""

SIGNALLING_FORWARD = """
import os, signal
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, num_classes, signals):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes))
        self.calls, self.signals = 0, signals

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            self.calls += 1
            if self.calls == 3:
                for _ in range(self.signals):
                    os.kill(os.getpid(), signal.SIGTERM)
        return self.body(x)

def once(input_shape, num_classes):
    return Net(num_classes, 1)

def twice(input_shape, num_classes):
    return Net(num_classes, 2)
"""


@pytest.fixture
def host_handler():
    """A handler the host (this test) installed for SIGINT and SIGTERM: what it received."""
    received = []
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    yield received
    for s, h in previous.items():
        signal.signal(s, h)


def test_a_signal_during_a_users_build_stops_at_once_and_reaches_the_host(tmp_path, capsys,
                                                                          monkeypatch,
                                                                          host_handler):
    """Issue 27 item 4: a Ctrl-C while a user's build ran was ignored until it returned (594 s
    with a sleeping build), and main() in a host's process swallowed the host's signal."""
    import threading
    import time
    (tmp_path / "slow.py").write_text(SLOW_BUILD)
    mark = tmp_path / "mark"
    monkeypatch.setenv("BIOCREDIT_TEST_MARK", str(mark))

    def interrupt_when_building():
        while not mark.exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_building, daemon=True).start()
    start = time.monotonic()
    code = main(["train", *SMALL, "--rule", "fa", "--model", f"{tmp_path / 'slow.py'}:build",
                 "--out", str(tmp_path / "run")])
    assert time.monotonic() - start < 60
    assert code == 130
    assert capsys.readouterr().err == "biocredit: stopped by SIGINT during set-up\n"
    assert host_handler == [signal.SIGINT]            # passed on, once
    assert not (tmp_path / "run").exists()            # a set-up that stopped leaves nothing


@pytest.mark.parametrize("signals", [1, 2])
def test_sigterm_in_process_stops_the_run_cleanly_then_reaches_the_host(signals, tmp_path,
                                                                        capsys, host_handler):
    """One SIGTERM: the run stops after its step, resumable, exit 143, then the host's own
    handler gets the signal (``timeout 720 make test`` ran on for 17 minutes). A second
    SIGTERM stops at once, also with 143 (the README's code; it was 130)."""
    (tmp_path / "model.py").write_text(SIGNALLING_FORWARD)
    out = tmp_path / "run"
    code = main(["train", *SMALL, "--rule", "fa", "--epochs", "3", "--out", str(out),
                 "--model", f"{tmp_path / 'model.py'}:{'once' if signals == 1 else 'twice'}"])
    assert code == 143
    assert host_handler == [signal.SIGTERM]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SIGTERM" in err
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"


def test_the_command_in_its_own_process_does_not_pass_the_signal_on(tmp_path, capsys,
                                                                     host_handler):
    """As the ``biocredit`` command (``main()`` without arguments) the exit code says it."""
    (tmp_path / "model.py").write_text(SIGNALLING_FORWARD)
    argv = ["biocredit", "train", *SMALL, "--rule", "fa", "--epochs", "3", "--out",
            str(tmp_path / "run"), "--model", f"{tmp_path / 'model.py'}:once"]
    old, sys.argv = sys.argv, argv
    try:
        assert main() == 143
    finally:
        sys.argv = old
    assert host_handler == []
