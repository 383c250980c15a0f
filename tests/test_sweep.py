"""Sweeps in worker processes (--jobs): the numbers of a serial sweep, one table, a run that
fails or diverges marked while the others finish, and a Ctrl-C that stops every worker."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from biocredit.cli import build_parser, main

SMALL = ["--data", "digits", "--train-size", "300", "--test-size", "100", "--epochs", "2",
         "--model", "mlp:2x50:tanh", "--quiet"]


def cli(argv: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    # one thread per process, in the serial sweep as in each worker: a float sum's order
    # (and so its last bits) may depend on the number of threads
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "biocredit", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, **kwargs)


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_compare_with_jobs_gives_the_serial_numbers(tmp_path):
    argv = ["compare", "--rules", "bp,fa,dfa,kp", *SMALL, "--no-report"]
    serial = cli(argv + ["--out", "serial"], tmp_path)
    jobs = cli(argv + ["--out", "jobs", "--jobs", "2"], tmp_path)
    assert serial.returncode == jobs.returncode == 0, serial.stderr + jobs.stderr
    for rule in ("bp", "fa", "dfa", "kp"):
        assert rows(tmp_path / "serial" / rule) == [
            {**row, "seconds": a["seconds"], "overhead_seconds": a["overhead_seconds"],
             "run_id": a["run_id"]}
            for row, a in zip(rows(tmp_path / "jobs" / rule), rows(tmp_path / "serial" / rule))]
        summary = json.loads((tmp_path / "jobs" / rule / "summary.json").read_text())
        assert summary["threads"] == 1 and summary["world_size"] == 1
        assert summary["device"] == "cpu" and summary["torch"] and summary["biocredit"]
    # one table at the end, every rule in it; --quiet: no line per finished run
    table = jobs.stdout[jobs.stdout.index("test error"):]
    assert all(f"\n{rule} " in table for rule in ("bp", "fa", "dfa", "kp"))
    assert "-> " not in jobs.stdout


MODEL = '''
import torch
from torch import nn


class Flaky(nn.Module):
    """Seed 1 raises in training, seed 2 gives NaN outputs; seed 0 trains."""

    def __init__(self, n_in, classes):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(n_in, 32), nn.Tanh(),
                                  nn.Linear(32, classes))
        self.seed = torch.initial_seed()

    def forward(self, x):
        out = self.body(x)
        if self.training and self.seed == 1:
            raise RuntimeError("boom in training")
        return out * float("nan") if self.training and self.seed == 2 else out


def build(input_shape, classes):
    return Flaky(int(torch.tensor(input_shape).prod()), classes)
'''


@pytest.mark.parametrize("jobs", [pytest.param("1", marks=pytest.mark.slow), "2"])
def test_a_failed_and_a_diverged_seed_are_reported_and_the_others_finish(tmp_path, jobs):
    (tmp_path / "flaky.py").write_text(MODEL)
    done = cli(["train", "--rule", "fa", "--seeds", "0,1,2", *SMALL, "--model",
                "flaky.py:build", "--out", "sweep", "--jobs", jobs], tmp_path)
    assert done.returncode == 1, done.stderr
    line = 1 + MODEL.splitlines().index('            raise RuntimeError("boom in training")')
    assert "fa s1 failed: RuntimeError: boom in training (raised in " \
        f"{tmp_path / 'flaky.py'}, line {line} (forward)); going on with the others" \
        in done.stderr
    assert "fa s2 diverged: the training loss became nan" in done.stderr
    assert "1 run(s) of the seeds failed: fa s1" in done.stderr
    status = {seed: json.loads((tmp_path / "sweep" / f"seed-{seed}" / "summary.json")
                               .read_text())["status"] for seed in (0, 1, 2)}
    assert status == {0: "completed", 1: "failed", 2: "diverged"}
    seeds = json.loads((tmp_path / "sweep" / "seeds.json").read_text())
    assert seeds["statistics"]["test_error"]["n"] == 1      # seed 2 diverged in epoch 1
    assert seeds["statistics"]["seconds"]["n"] == 2         # the failed run counts nowhere
    assert "fa (diverged) (failed)" in done.stdout          # the table, marked
    # the sweep's folder stands for its runs in a report (those that finished an epoch)
    report = cli(["report", "sweep", "--tsne-size", "0"], tmp_path)
    assert report.returncode == 0, report.stderr
    assert [line.split(" | ")[0] for line in report.stdout.splitlines()
            if line.startswith("| ")][1:] == ["| fa"]      # seed 0 alone


def test_ctrl_c_stops_every_worker_and_the_sweep_resumes(tmp_path):
    argv = ["compare", "--rules", "bp,fa,dfa", "--data", "digits", "--epochs", "300",
            "--model", "mlp:2x400:tanh", "--no-report", "--quiet", "--out", "sweep"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "biocredit", *argv, "--jobs", "2"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob("sweep/*/metrics.jsonl")) and time.time() < deadline:
        time.sleep(0.2)                             # until a worker finished an epoch
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "biocredit compare --resume sweep" in err
    stopped = [json.loads(p.read_text()) for p in tmp_path.glob("sweep/*/summary.json")]
    # The third run had not started; the second one too, if the signal found it still
    # setting up (a signal during set-up stops at once, leaving nothing to resume).
    assert 1 <= len(stopped) <= 2
    assert {s["status"] for s in stopped} == {"interrupted"}    # none went on to its end
    epochs = str(max(s["resume_epoch"] for s in stopped) + 1)
    resumed = cli(["compare", "--resume", "sweep", "--epochs", epochs, "--jobs", "1"],
                  tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    for rule in ("bp", "fa", "dfa"):
        summary = json.loads((tmp_path / "sweep" / rule / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["epochs_completed"] == int(epochs)


def test_jobs_must_be_positive_and_defaults_are_shown(capsys):
    assert main(["compare", "--jobs", "0"]) == 2
    assert "--jobs: a whole number of at least 1" in capsys.readouterr().err
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "(default: auto)" in help_text and "default: 64\n" in help_text
    assert "(default: 1)" in help_text                      # --jobs


def test_torchrun_refuses_jobs(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--jobs", "2"]) == 2
    assert "--jobs runs several single-process runs" in capsys.readouterr().err
