"""The command line under random input: every command ends with exit code 0, or a non-zero
code and one line on stderr, never a Python traceback (issue 13). Random argument lists over
every sub-command, and random bytes in every file that ``report`` and ``--resume`` read.

The default run keeps the examples few; ``pytest -m slow tests/test_fuzz.py`` runs many.
"""

import contextlib
import io
import itertools
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import biocredit.rules as R
from biocredit.cli import main

ODD = ["", "0", "-1", "1", "2", "0.5", "1e20", "nan", "inf", "-inf", "abc", "x,y", ":::",
       "100000000000000000000", "1x28x28", "0x1", "=", "-"]


# Every option of every rule, and values of each kind (issue 27: rule options were checked
# only at the first step, with torch's words).
OPTION_NAMES = {key for name in R.available() for key in R.create(name).defaults}
OPTION_VALUES = [True, False, 0, 1, -1, -5, 2, 0.5, 1e-3, 1e20, float("nan"), float("inf"),
                 "abc", "adam", "sgd", "bogus", "b3", "gaussian", "s1", "s9", "direct;direct",
                 "direct+above;direct", {"direct": "abc"}, {"direct": 2.0, "above": 1.0}, None,
                 [], {}]
OPTION_TEXTS = ["-5", "-3", "0", "2", "1e-3", "nan", "inf", "abc", "bogus", "b3", "sgd",
                "true", "s9", '{"direct":"abc"}', '{"direct":2}', "direct;direct", ""]


def values(*good: str):
    """A flag's value: one that works, an odd one, or random text."""
    return st.one_of(st.sampled_from(good), st.sampled_from(ODD), st.text(max_size=6))


RUN_FLAGS = {
    "--rule": values("bp", "fa", "dfa", "kp", "dkp", "ifa", "general", "node-perturbation",
                     "fa:feedback_scale=2", "bogus"),
    "--rules": values("bp,fa", "dfa,dkp", "bp,bp", "fa:feedback_init=b3", "general:strategy=s2"),
    "--model": values("mlp:1x8:tanh", "mlp:2x8:relu", "mlp:100000x1:tanh", "mlp:8:tanh",
                      "mlp:1x8:bogus", "nokland-conv", "nowhere.py:f", "mlp"),
    "--data": values("digits", "synthetic", "mnist", "cifar10", "linear-teacher", "bogus"),
    "--data-dir": values("/nonexistent", "."),
    "--epochs": values("1", "2"),
    "--train-size": values("64", "10"),
    "--test-size": values("32", "5"),
    "--batch-size": values("16", "64"),
    "--lr": values("0.01", "1e6"),
    "--optimizer": values("sgd", "adam"),
    "--momentum": values("0.9"),
    "--validation": values("0.1", "10", "100000"),
    "--task": values("classify", "autoencoder", "regress"),
    "--loss": values("ce", "mse", "hinge", "reconstruction"),
    "--strategy": values("s1", "s3", "s9"),
    "--feedback-density": values("0.5", "5"),
    "--forward-density": values("0.5", "5"),
    "--feedback-init": values("gaussian", "b1", "bogus"),
    "--dropout-input": values("0.2", "1.5"),
    "--dropout-hidden": values("0.2"),
    "--init": values("xavier", "zero"),
    "--init-scale": values("0.1"),
    "--seed": values("3", "4294967296"),
    "--seeds": values("2", "0,1", "0,0"),
    "--device": values("cpu", "cuda", "mps", "meta", "cuda:7"),
    "--probe-size": values("8"),
    "--log-every-steps": values("2"),
    "--stop-train-error": values("0.5", "2"),
    "--freeze": values("blocks.0", "nothing"),
    "--init-from": values("/nonexistent/model.pt"),
    "--adversarial": values("0.1"),
    "--divergence-factor": values("10", "0"),
    "--taps": values("blocks.0", "bogus"),
    "--inject-at": values("output", "activation", "bogus"),
    "--off-class-factor": values("0.5"),
    "-O": st.one_of(values("feedback_scale=abc", "feedback_scale=0.1", "fa.feedback_scale=0.1",
                           "bogus=1", "dkp.feedback_lr=x", "aux_errors=true", "noequals"),
                    st.builds("{}={}".format, st.sampled_from(sorted(OPTION_NAMES)),
                              st.sampled_from(OPTION_TEXTS))),
    "--resume": values("/nonexistent"),
    "--aux-errors": st.none(),
    "--overwrite": st.none(),
    "--no-download": st.none(),
    "--amp": st.none(),
}
BENCH_FLAGS = {
    "--rules": values("bp,fa", "dfa", "bogus", ","),
    "--model": RUN_FLAGS["--model"],
    "--batch-size": values("4", "16"),
    "--steps": values("2", "3"),
    "--warmup": values("0", "1"),
    "--input-shape": values("1x8x8", "3x4x4", "0x8x8", "8"),
    "--classes": values("3", "10"),
    "--optimizer": values("sgd", "adam", "bogus"),
    "--device": RUN_FLAGS["--device"],
    "--taps": RUN_FLAGS["--taps"],
}
REPRODUCE_ARGS = st.lists(st.sampled_from(
    ["demo", "all", "bogus", "lillicrap-linear", "--budget", "smoke", "huge", "--force",
     "--epochs", "2", "--out", "--publish"]), max_size=5)

# What every command gets first, so that a run the fuzz happens to make valid stays tiny.
BASE = {"train": ["--data", "digits", "--train-size", "64", "--test-size", "32", "--epochs",
                  "1", "--model", "mlp:1x8:tanh", "--quiet"],
        "compare": ["--data", "digits", "--train-size", "64", "--test-size", "32", "--epochs",
                    "1", "--model", "mlp:1x8:tanh", "--quiet", "--tsne-size", "0"],
        "bench": ["--steps", "2", "--warmup", "0", "--model", "mlp:1x8:tanh"]}
SMALL_NUMBERS = {"--epochs", "--train-size", "--steps", "--warmup"}   # keep runs short


@st.composite
def command_lines(draw):
    command = draw(st.sampled_from(["train", "compare", "bench", "report", "reproduce",
                                    "rules", "models", "bogus"]))
    if command == "reproduce":
        return [command, *draw(REPRODUCE_ARGS), "--dry-run"]
    if command == "report":
        return [command, *draw(st.lists(st.sampled_from(["/nonexistent", ".", "--title",
                                                         "--tsne-size", "-3", "x"]),
                                        max_size=4))]
    if command in ("rules", "models", "bogus"):
        return [command, *draw(st.lists(st.sampled_from(ODD), max_size=2))]
    flags = BENCH_FLAGS if command == "bench" else {
        k: v for k, v in RUN_FLAGS.items() if k != ("--rules" if command == "train" else "--rule")}
    argv = [command, *BASE[command]]
    for flag in draw(st.lists(st.sampled_from(sorted(flags)), max_size=5)):
        value = draw(flags[flag])
        if flag in SMALL_NUMBERS and value.isdigit() and int(value) > 3:
            value = "2"
        argv += [flag] if value is None else [flag, value]
    return argv


def run_main(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def assert_clean(code, err: str, argv) -> None:
    assert isinstance(code, int), (argv, code)
    assert "Traceback" not in err, (argv, err)
    assert "internal error" not in err, (argv, err)
    if code != 0:
        lines = err.strip("\n").split("\n")
        assert err.strip() and len(lines) == 1, (argv, err)


def fuzz_arguments(tmp_path, examples: int):
    counter = itertools.count()

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(command_lines())
    def check(argv):
        if argv[0] in ("train", "compare", "bench") and "--out" not in argv:
            argv = argv + (["--json", str(tmp_path / f"b{next(counter)}.json")]
                           if argv[0] == "bench" else
                           ["--out", str(tmp_path / f"run{next(counter)}")])
        code, err = run_main(argv)
        assert_clean(code, err, argv)

    check()


def test_random_command_lines_end_cleanly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fuzz_arguments(tmp_path, examples=40)


@pytest.mark.slow
def test_random_command_lines_end_cleanly_long(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fuzz_arguments(tmp_path, examples=1500)


RUN_FILES = ["config.json", "summary.json", "metrics.jsonl", "steps.jsonl", "model.pt",
             "checkpoint.ckpt"]
COMPARE_FILES = ["run.json", "comparison.json", "bp/config.json", "bp/metrics.jsonl",
                 "fa/summary.json", "fa/checkpoint.ckpt"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished training run and a finished comparison to damage."""
    root = tmp_path_factory.mktemp("finished")
    small = ["--data", "digits", "--train-size", "64", "--test-size", "32", "--epochs", "1",
             "--model", "mlp:1x8:tanh", "--quiet", "--log-every-steps", "1"]
    assert main(["train", *small, "--out", str(root / "train")]) == 0
    assert main(["compare", "--rules", "bp,fa", *small, "--no-report",
                 "--out", str(root / "compare")]) == 0
    return root


def fuzz_files(finished, tmp_path, examples: int):
    counter = itertools.count()

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(["train", "compare"]), st.data(), st.binary(max_size=300),
           st.sampled_from(["report", "resume"]))
    def check(kind, data, garbage, command):
        folder = tmp_path / f"{kind}{next(counter)}"
        shutil.copytree(finished / kind, folder)
        name = data.draw(st.sampled_from(RUN_FILES if kind == "train" else COMPARE_FILES))
        (folder / name).write_bytes(garbage)
        argv = ["report", str(folder), "--tsne-size", "0"] if command == "report" else \
            [kind, "--resume", str(folder), "--epochs", "2", "--quiet"] + \
            (["--no-report"] if kind == "compare" else [])
        code, err = run_main(argv)
        assert_clean(code, err, argv)
        if code != 0:
            assert str(folder) in err or name in err, (argv, err)

    check()


def test_random_bytes_in_run_files_end_cleanly(finished, tmp_path):
    fuzz_files(finished, tmp_path, examples=30)


@pytest.mark.slow
def test_random_bytes_in_run_files_end_cleanly_long(finished, tmp_path):
    fuzz_files(finished, tmp_path, examples=600)


# -- the Python entry point: biocredit.convert with random rules, options, models, taps --------
def _models():
    import torch
    from torch import nn

    def mlp():
        return nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.Tanh(), nn.Linear(6, 5),
                             nn.ReLU(), nn.Linear(5, 3))

    def pooled():
        return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, 3))

    def meta():
        with torch.device("meta"):
            return mlp()

    return {"mlp": mlp, "pooled": pooled, "meta": meta,
            "no weights": lambda: nn.Sequential(nn.Flatten(), nn.Tanh()),
            "not a model": lambda: "hello", "none": lambda: None}


CONVERT_RULES = st.one_of(st.sampled_from(R.available()),
                          st.sampled_from(["bogus", "", None, 3, "FA", "fa:feedback_scale=2"]))
CONVERT_TAPS = st.one_of(st.none(), st.lists(st.sampled_from(
    ["0", "1", "2", "3", "4", "5", "6", "*", "bogus", "", "1.weight"]), max_size=3))


def convert_once(rule_name, options, model_name, taps, exclude, unsupported, probe):
    """One conversion and two training steps; the only errors allowed are a ValueError or a
    TypeError saying what is wrong in one line."""
    import torch
    import torch.nn.functional as F

    import biocredit
    model = _models()[model_name]()
    x = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0])
    kwargs = {"taps": taps, "exclude": exclude, "unsupported": unsupported,
              "generator": torch.Generator().manual_seed(1)}
    if probe:
        kwargs["example_input"] = x[:1]
    try:
        rule = R.create(rule_name, **options) if isinstance(rule_name, str) and options \
            else rule_name
        net = biocredit.convert(model, rule, **kwargs)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
        biocredit.hook_optimizer(net, optimizer)
        for _ in range(2):
            optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            optimizer.step()
    except (ValueError, TypeError) as err:
        message = str(err)
        assert message.strip() and "\n" not in message.strip(), (type(err), message)


def fuzz_convert(examples: int):
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(CONVERT_RULES,
           st.dictionaries(st.sampled_from(sorted(OPTION_NAMES | {"bogus"})),
                           st.sampled_from(OPTION_VALUES), max_size=2),
           st.sampled_from(list(_models())), CONVERT_TAPS,
           st.lists(st.sampled_from(["1", "3", "*", "nothing"]), max_size=1),
           st.sampled_from(["error", "bp", "bogus"]), st.booleans())
    def check(rule_name, options, model_name, taps, exclude, unsupported, probe):
        convert_once(rule_name, options, model_name, taps, exclude, unsupported, probe)

    check()


def test_random_conversions_end_cleanly():
    """Issue 27: convert(m, None) and convert("hello", "fa") raised AttributeError, a meta
    model converted to garbage feedback, a tap after the output layer was accepted."""
    fuzz_convert(examples=80)


@pytest.mark.slow
def test_random_conversions_end_cleanly_long():
    fuzz_convert(examples=2000)
