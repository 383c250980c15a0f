"""No silent fallbacks, no lost results (issue 27): an explicit path that does not hold what
it should is an error; nothing a finished run wrote is overwritten; every file loaded is
checked; option ranges are checked before any folder exists; a failing command leaves
nothing it created; a full disk loses nothing and names the path."""

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch

from biocredit.cli import main
from biocredit.training.folder import CHECKPOINT

SMALL = ["--model", "mlp:1x16:tanh", "--data", "digits", "--train-size", "200",
         "--test-size", "50", "--batch-size", "64", "--quiet"]


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished one-epoch run to copy and damage."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    return out


# ----------------------------------------------------------------------------- item 1

def test_an_explicit_data_dir_without_the_data_is_an_error_not_the_cached_copy(
        tmp_path, capsys, monkeypatch):
    """With MNIST in the cache, ``--data-dir`` naming a folder without it stops, naming it,
    and leaves no run folder (before: trained on the cached copy, exit 0)."""
    import numpy as np

    from biocredit.data import locate
    cache = tmp_path / "cache"
    monkeypatch.setenv(locate.CACHE_ENV, str(cache))
    for stem, shape in (("train-images-idx3-ubyte", (4, 3, 3)), ("train-labels-idx1-ubyte", (4,)),
                        ("t10k-images-idx3-ubyte", (2, 3, 3)), ("t10k-labels-idx1-ubyte", (2,))):
        array = np.zeros(shape, np.uint8)
        header = bytes([0, 0, 8, array.ndim]) + b"".join(
            int(n).to_bytes(4, "big") for n in array.shape)
        (cache / "mnist").mkdir(parents=True, exist_ok=True)
        (cache / "mnist" / stem).write_bytes(header + array.tobytes())
    out = tmp_path / "x"
    argv = ["train", "--data", "mnist", "--model", "mlp:1x4:tanh", "--epochs", "1",
            "--quiet", "--out", str(out)]
    assert main(argv + ["--no-download"]) == 0            # the cached copy is found ...
    shutil.rmtree(out)
    for bogus in (tmp_path / "nonexistent", tmp_path):     # ... but not used for --data-dir
        assert main([*argv, "--data-dir", str(bogus)]) == 2
        err = capsys.readouterr().err
        assert f"the data folder given, {bogus}, does not hold it" in err
        assert not out.exists()


# ----------------------------------------------------------------------------- item 2

def test_resume_without_its_checkpoint_keeps_the_trained_model(trained, tmp_path, capsys):
    """Before: retrained from scratch and overwrote model.pt, exit 0."""
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    (out / CHECKPOINT).unlink()
    before = files_of(out)
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(out / CHECKPOINT) in err and "missing" in err and "--overwrite" in err
    assert err.count("\n") == 1
    assert files_of(out) == before


def test_resume_with_a_folder_for_a_checkpoint_keeps_the_metrics(trained, tmp_path, capsys):
    """Before: the folder counted as no checkpoint and the run folder was cleared."""
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    (out / CHECKPOINT).unlink()
    (out / CHECKPOINT).mkdir()
    before = files_of(out)
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(out / CHECKPOINT) in err and err.count("\n") == 1
    assert files_of(out) == before and (out / CHECKPOINT).is_dir()


def test_resume_of_a_run_stopped_in_its_first_epoch_still_starts_again(trained, tmp_path):
    """No epoch recorded, no checkpoint: nothing to lose, the run starts again."""
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    for name in (CHECKPOINT, "metrics.jsonl", "model.pt"):
        (out / name).unlink()
    summary = json.loads((out / "summary.json").read_text())
    summary.update(status="interrupted", epochs_completed=0, resume_epoch=0)
    (out / "summary.json").write_text(json.dumps(summary))
    assert main(["train", "--resume", str(out), "--epochs", "1", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs_completed"] == 1
    assert torch.load(out / "model.pt", weights_only=True)


# ----------------------------------------------------------------------------- item 5

def flip_weight_bytes(path: Path, count: int = 64) -> None:
    """Flip ``count`` bytes inside the first layer's weights as stored in ``path``."""
    state = torch.load(path, weights_only=True)
    weight = state["blocks.0.layer.weight"].contiguous().numpy().tobytes()
    data = bytearray(path.read_bytes())
    start = data.find(weight)
    assert start >= 0
    for i in range(start + 100, start + 100 + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupted_model_pt_is_refused_by_init_from_and_report(trained, tmp_path, capsys):
    """Before: 64 flipped bytes loaded silently through --init-from (weights at ±400)."""
    from biocredit.report.runs import load_trained
    bad = tmp_path / "bad"
    shutil.copytree(trained, bad)
    assert torch.load(bad / "model.pt", weights_only=True)        # still a plain state dict
    flip_weight_bytes(bad / "model.pt")
    out = tmp_path / "next"
    assert main(["train", *SMALL, "--epochs", "1", "--init-from", str(bad / "model.pt"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad / 'model.pt'} is corrupt" in err and "checksum" in err
    assert err.count("\n") == 1 and not out.exists()
    with pytest.raises(ValueError, match="model.pt is corrupt.*checksum"):
        load_trained(bad)
    assert main(["train", *SMALL, "--epochs", "1", "--init-from", str(trained / "model.pt"),
                 "--out", str(out)]) == 0                          # the good one loads


def test_a_model_pt_from_before_checksums_still_loads(trained, tmp_path):
    """A model.pt without a checksum (older biocredit, or saved by hand) is checked by
    format only, as before."""
    state = torch.load(trained / "model.pt", weights_only=True)
    state._metadata[""].pop("biocredit_sha256")
    torch.save(state, tmp_path / "old.pt")
    assert main(["train", *SMALL, "--epochs", "1", "--init-from", str(tmp_path / "old.pt"),
                 "--out", str(tmp_path / "next")]) == 0


# ----------------------------------------------------------------------------- item 7

@pytest.mark.parametrize("argv, words", [
    (["--rule", "dkp", "-O", "feedback_lr=-5"], "option feedback_lr must be >= 0"),
    (["--rule", "dkp", "-O", "feedback_optimizer=bogus"],
     "option feedback_optimizer must be one of adam, rmsprop, sgd"),
    (["--rule", "dkp", "-O", "feedback_momentum=-3"], "option feedback_momentum must be in [0, 1)"),
    (["--rule", "general", "-O", 'weights={"direct":"abc"}'], "option weights must be an object"),
    (["--rule", "general", "-O", "strategy=s9"], "option strategy must be one of s1, s2, s3, dfa"),
    (["--rule", "general", "-O", "sources=direct;bogus"], "option sources: layer 2"),
    (["--rule", "kp", "-O", "decay=1"], "option decay must be in [0, 1)"),
    (["--rule", "fa", "-O", "feedback_init=eye"], "option feedback_init must be one of"),
    (["-O", "feedback_scale=-1"], "option feedback_scale must be > 0"),
    (["-O", "feedback_density=0"], "option feedback_density must be in (0, 1]"),
    (["--momentum", "2"], "momentum is in [0, 1)"),
    (["--weight-decay", "-1"], "weight_decay is >= 0"),
    (["--adversarial", "inf"], "adversarial"),
    (["--loss", "hinge", "--off-class-factor", "nan"], "off_class_factor must be >= 0"),
])
def test_an_option_out_of_range_is_one_line_before_any_folder(argv, words, tmp_path, capsys):
    """Before: rule options failed at the first step, in torch's words, leaving a "failed"
    run folder; --momentum 2, --off-class-factor nan, feedback_scale=-1 were taken."""
    out = tmp_path / "x"
    assert main(["train", *SMALL, "--epochs", "1", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_rule_options_are_checked_when_the_rule_is_created():
    from biocredit import rules
    with pytest.raises(ValueError, match=r"rule 'dkp': option feedback_lr must be >= 0.*got -5"):
        rules.create("dkp", feedback_lr=-5)
    with pytest.raises(ValueError, match="option weights"):
        rules.create("general", weights={"direct": 0})
    rules.create("general", sources="direct;direct+below", weights={"direct": 2, "below": 1})
    rules.create("dkp", feedback_optimizer="sgd", feedback_momentum=0.9, feedback_lr=0)


# ----------------------------------------------------------------------------- item 9

def test_a_failing_train_removes_the_folders_it_made(tmp_path, capsys):
    """Before: ``--out np1/deep/x`` left np1/deep behind."""
    out = tmp_path / "np1" / "deep" / "x"
    assert main(["train", *SMALL, "--epochs", "1", "--init-from", str(tmp_path / "none.pt"),
                 "--out", str(out)]) == 2
    assert "none.pt" in capsys.readouterr().err
    assert not (tmp_path / "np1").exists()


def test_a_failing_compare_leaves_neither_folder_nor_lock(tmp_path, capsys):
    """Before: the lock file (and the folder) stayed after a failure inside the lock."""
    argv = ["compare", "--rules", "bp,fa", *SMALL, "--data", "mnist", "--no-download",
            "--epochs", "1", "--no-report"]
    assert main([*argv, "--out", str(tmp_path / "new" / "X")]) == 2
    assert "mnist" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    assert main([*argv, "--out", str(tmp_path / "mine")]) == 2
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_reproduce_checks_every_step_before_making_its_folder(tmp_path, capsys):
    """Before: ``reproduce demo --epochs -1`` left a folder with a failed record."""
    out = tmp_path / "demo"
    assert main(["reproduce", "demo", "--epochs", "-1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "epochs must be at least 1" in err and err.count("\n") == 1
    assert not out.exists()
    assert main(["reproduce", "demo", "--momentum", "3", "--out", str(out)]) == 2
    assert "momentum" in capsys.readouterr().err and not out.exists()


# ----------------------------------------------------------------------------- item 10

@pytest.fixture
def disk_full(monkeypatch):
    """``full(name, after=n)``: from the (n+1)-th write of a file called ``name`` on, the
    atomic writer's ``write`` fails as a full disk does."""
    import os

    real_fdopen = os.fdopen
    state = {}

    class FullFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        target = os.readlink(f"/proc/self/fd/{fd}") if isinstance(fd, int) else ""
        name = state.get("name")
        if name and Path(target).name.startswith(f".{name}."):
            state["seen"] = state.get("seen", 0) + 1
            if state["seen"] > state["after"]:
                return FullFile(f)
        return f

    def full(name: str, after: int = 0):
        state.update(name=name, after=after, seen=0)

    monkeypatch.setattr(os, "fdopen", fdopen)
    return full


def test_a_full_disk_names_the_file_and_the_summary_claims_no_unsaved_epoch(
        tmp_path, capsys, disk_full):
    """Before: a bare "[Errno 28]", and summary.json said resume epoch 2 while the
    checkpoint held epoch 1."""
    from biocredit.training.folder import load_checkpoint
    out = tmp_path / "run"
    disk_full(CHECKPOINT, after=1)                 # epoch 1's checkpoint fits, epoch 2's not
    assert main(["train", *SMALL, "--epochs", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out / CHECKPOINT}: No space left on device" in err and err.count("\n") == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left" in summary["message"]
    assert summary["resume_epoch"] == summary["epochs_completed"] == 1
    assert load_checkpoint(out / CHECKPOINT)["epoch"] == 1
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    disk_full("")                                  # space again: the resume finishes
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs_completed"] == 3


@pytest.mark.parametrize("name", ["report.html", "errors.png"])
def test_a_full_disk_while_reporting_leaves_the_previous_report_whole(
        name, trained, tmp_path, capsys, disk_full):
    """Before: the PNGs and report.md were written, the html not: half a report."""
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    assert main(["report", str(out), "--tsne-size", "0", "--title", "first"]) == 0
    before = files_of(out)
    disk_full(name)
    assert main(["report", str(out), "--tsne-size", "0", "--title", "second"]) == 2
    err = capsys.readouterr().err
    assert f"{out / name}: No space left on device" in err and err.count("\n") == 1
    assert files_of(out) == before
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".lock"]
    fresh = tmp_path / "fresh"
    shutil.copytree(trained, fresh)
    assert main(["report", str(fresh), "--tsne-size", "0"]) == 2        # no report at all
    assert files_of(fresh) == files_of(trained)
    assert main(["report", str(fresh), "--tsne-size", "0", "--out",
                 str(tmp_path / "new" / "r")]) == 2
    assert f"{tmp_path / 'new' / 'r' / name}: No space left" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()                       # nor a folder for it
