"""Character language models from the library: the text data sets (``python-reference``,
``text:PATH``), the ``gpt`` model, sequence losses and metrics, and a DFA run through the
command line whose direct feedback is per position."""

from __future__ import annotations

import json
import math

import pytest
import torch

import biocredit
import biocredit.models as M
from biocredit import data, losses
from biocredit.cli import main
from biocredit.data.text import CONTEXT, unigram_bits
from biocredit.training.folder import load_model

POEM = "Tyger Tyger, burning bright,\nIn the forests of the night;\n" * 60


@pytest.fixture
def poem(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text(POEM, encoding="utf-8")
    return path


def test_python_reference_loads_whole_and_splits_deterministically():
    a = data.load("python-reference", validation=0.1, split_seed=3)
    b = data.load("python_reference", validation=0.1, split_seed=3)
    assert a.sequence and a.name == "python-reference" and a.input_shape == (CONTEXT,)
    assert a.num_classes == len(a.chars) > 60                   # the Reference's characters
    for split in ("train", "val", "test"):
        x, y = getattr(a, f"{split}_x"), getattr(a, f"{split}_y")
        assert x.dtype == y.dtype == torch.long and x.shape == y.shape
        assert torch.equal(y[:, :-1], x[:, 1:])                 # targets: the next character
        assert torch.equal(x, getattr(b, f"{split}_x"))
    total = len(a.train_x) + len(a.val_x) + len(a.test_x)
    assert len(a.val_x) == round(0.1 * (len(a.train_x) + len(a.val_x)))
    assert 0.09 < len(a.test_x) / total < 0.11                  # the last 10% of the text
    c = data.load("python-reference", validation=0.1, split_seed=4)
    assert not torch.equal(a.val_x, c.val_x) and torch.equal(a.test_x, c.test_x)
    assert 0 < unigram_bits(a) < math.log2(a.num_classes)


def test_any_text_file_and_a_missing_one(poem, tmp_path):
    ds = data.load(f"text:{poem}", train_size=5, test_size=2)
    assert ds.chars == "".join(sorted(set(POEM))) and ds.num_classes == len(set(POEM))
    assert ds.train_x.shape == (5, CONTEXT) and ds.test_x.shape == (2, CONTEXT)
    assert "".join(ds.chars[i] for i in ds.train_x[0]) == POEM[:CONTEXT]
    assert data.known(f"text:{poem}") and not data.known("no-such-set")
    missing = tmp_path / "nowhere" / "book.txt"
    with pytest.raises(data.DatasetNotFoundError) as err:
        data.load(f"text:{missing}")
    assert str(missing) in str(err.value) and "\n" not in str(err.value)
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("abc", encoding="utf-8")
    with pytest.raises(ValueError, match="too few"):
        data.load(f"text:{tiny}")
    with pytest.raises(ValueError, match="does not apply"):
        data.load("python-reference", data_dir=tmp_path)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café au lait ".encode("latin-1") * 100)
    with pytest.raises(data.CorruptDatasetError, match="not UTF-8 .byte 0xe9 at offset 3"):
        data.load(f"text:{latin1}")
    with pytest.raises(ValueError, match="needs the path"):
        data.load("text:")
    marked = tmp_path / "bom.txt"
    marked.write_bytes(b"\xef\xbb\xbf" + POEM.encode("utf-8"))
    assert data.load(f"text:{marked}").chars == "".join(sorted(set(POEM)))   # BOM dropped
    spaced = data.load(f"TEXT: {poem}", train_size=1, test_size=1)     # any case, stripped
    assert spaced.name == f"text:{poem}"


def test_gpt_spec_builds_a_causal_decoder_with_a_tap_per_block():
    net = M.create("gpt:2x16:h2", (12,), 30, init="uniform", dropout_input=0.0,
                   dropout_hidden=0.0)
    x = torch.randint(30, (3, 12))
    out = net(x)
    assert out.shape == (3, 12, 30)
    changed = x.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 30
    assert torch.allclose(net(changed)[:, :7], out[:, :7])          # causal: no look-ahead
    taps = [n for n, m in net.named_modules() if isinstance(m, biocredit.Tap)]
    assert taps == ["blocks.0.tap", "blocks.1.tap"]
    for bad in ("gpt:2x15:h2", "gpt:two", "gpt:2x16:4"):
        with pytest.raises(ValueError):
            M.create(bad, (12,), 30)
    with pytest.raises(ValueError, match="no dropout"):
        M.create("gpt:1x16", (12,), 30, dropout_input=0.2)


def test_sequence_cross_entropy_is_per_token():
    ce = losses.create("ce")
    logits, target = torch.randn(4, 5, 7), torch.randint(7, (4, 5))
    flat = torch.nn.functional.cross_entropy(logits.reshape(-1, 7), target.reshape(-1))
    assert torch.allclose(ce(logits, target), flat)
    wrong = (logits.argmax(-1) != target).double().mean()
    assert torch.allclose(ce.errors(logits, target) / 4, wrong)


def test_dfa_through_the_command_line_learns_with_per_position_feedback(poem, tmp_path,
                                                                       one_thread):
    out = tmp_path / "run"
    code = main(["train", "--data", f"text:{poem}", "--model", "gpt:1x32:h2", "--rule", "dfa",
                 "--epochs", "3", "--batch-size", "8", "--lr", "1e-2", "--train-size", "32",
                 "--test-size", "8", "--probe-size", "8", "--train-error", "running",
                 "--out", str(out), "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    vocab = len(set(POEM))
    assert rows[-1]["test_loss"] < rows[0]["test_loss"] < math.log(vocab)  # uniform: ln V
    assert summary["test_bpc"] == pytest.approx(summary["test_loss"] / math.log(2))
    assert summary["unigram_bpc"] > 0 and 0 <= summary["test_error"] <= 1
    state = load_model(out / "model.pt")
    assert state["direct_feedback"].shape == (vocab, 32)      # V × d, not T·V × T·d


def test_an_unknown_text_file_on_the_command_line_is_one_line(tmp_path, capsys):
    missing = tmp_path / "missing.txt"
    code = main(["train", "--data", f"text:{missing}", "--model", "gpt:1x16:h2",
                 "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and str(missing) in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("flags, message", [
    (["--model", "gpt:1x16:h2", "--data", "digits"], "gpt reads windows of token ids"),
    (["--model", "mlp:1x16:tanh"], "use --model gpt"),
    (["--model", "gpt:1x16:h2", "--task", "autoencoder"], "next-character prediction"),
    (["--model", "gpt:1x16:h2", "--loss", "bce"], "--task classify with --loss ce"),
    (["--model", "gpt:1x16:h2", "--adversarial", "0.1"], "--adversarial perturbs float"),
    (["--model", "gpt:1x16:h2", "--inject-at", "activation"], "--inject-at does not apply"),
    (["--model", "gpt:1x16:h2", "--init", "zero"], "--init zero does not apply"),
])
def test_text_runs_refuse_what_does_not_apply_in_one_line(flags, message, poem, tmp_path,
                                                          capsys):
    code = main(["train", "--rule", "dfa", "--data", f"text:{poem}", *flags, "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_a_language_model_report_gives_loss_and_bits_per_character(poem, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--rules", "bp,dfa", "--model", "gpt:1x16:h2", "--data",
                 f"text:{poem}", "--epochs", "1", "--train-size", "8", "--test-size", "4",
                 "--tsne-size", "0", "--quiet", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "mispredicted next characters" in report
    header = next(line for line in report.splitlines() if line.startswith("| run |"))
    assert header.rstrip(" |").endswith("test loss | bits per character")
    summary = json.loads((out / "dfa" / "summary.json").read_text())
    assert f"{summary['test_bpc']:.4f} |" in report
    assert report.count("no t-SNE or receptive fields for gpt:1x16:h2") == 1   # not per run
