"""``bench --baseline FILE`` (issue 25 item 5): the comparison with an earlier ``bench --json``
result, its refusals, and the CPU and commit a result records. No timing is asserted."""

from __future__ import annotations

import json

import pytest

from biocredit.cli import main
from biocredit.training.bench import cpu_name, source_commit, workload
from biocredit.training.bench_baseline import (change, check_workload, environment_warnings,
                                               format_comparison, load_baseline)
from biocredit.training.tables import format_benchmark


def result(fa_ms: float, **settings) -> dict:
    """A hand-made bench result: torch at 1 ms, fa at ``fa_ms``."""
    rules = {"torch": {"step_ms": 1.0, "ratio_to_torch": 1.0},
             "fa": {"step_ms": fa_ms, "ratio_to_torch": fa_ms}}
    return {**workload("mlp:4x64:tanh", batch_size=32), "steps": 200, "warmup": 10,
            "threads": 2, "torch": "2.13.0", "cpu": "AMD EPYC", "git_commit": "a" * 40,
            "git_dirty": False, "rules": rules, **settings}


def test_comparison_gives_each_rule_then_and_now_and_the_change():
    before, now = result(1.31), result(1.12)
    now["rules"]["kp"] = {"step_ms": 2.0, "ratio_to_torch": 2.0}
    text = format_comparison(before, now, "old.json")
    lines = text.splitlines()
    assert lines[0].startswith("against --baseline old.json (commit aaaaaaaaaa, AMD EPYC")
    fa = next(line for line in lines if line.startswith("fa "))
    assert "x torch 1.31 → 1.12 (−15 %)" in fa and "step 1.31 → 1.12 ms (−15 %)" in fa
    torch_line = next(line for line in lines if line.startswith("torch "))
    assert "1.00 → 1.00 (±0 %)" in torch_line
    assert any(line.startswith("kp ") and "not in the baseline" in line for line in lines)
    assert change(1.0, 1.2) == "+20 %" and change(0.0, 1.0) == "-"


def test_a_baseline_of_another_workload_is_refused_naming_the_differences():
    with pytest.raises(ValueError, match=r"old\.json timed another workload: batch_size 128 "
                                         r"\(now 32\), amp True \(now False\)"):
        check_workload(result(1.3, batch_size=128, amp=True), "old.json", result(1.1))
    check_workload(result(1.3, device="cuda:1"), "old.json", result(1.1, device="cuda:0"))
    with pytest.raises(ValueError, match="device_type 'cuda' \\(now 'cpu'\\)"):
        check_workload(result(1.3, device="cuda:0"), "old.json", result(1.1))


def test_another_environment_is_compared_with_a_warning():
    old = result(1.3, cpu="Intel Xeon", threads=8)
    del old["taps"], old["loss"]                    # as an older baseline, not recording them
    check_workload(old, "old.json", result(1.1))
    warnings = environment_warnings(old, result(1.1))
    assert "cpu 'Intel Xeon' → 'AMD EPYC'" in warnings[0] and "threads 8 → 2" in warnings[0]
    assert warnings[1] == "the baseline does not record taps, loss; assumed the same as now"
    assert environment_warnings(result(1.3), result(1.1)) == []


@pytest.mark.parametrize("text, message", [
    ('{"model": ', "is not JSON (Expecting value at line 1"),
    ("[1, 2]", "is not a bench --json result: its top level is a JSON list"),
    ('{"model": "mlp:1x8:tanh", "batch_size": 2, "device": "cpu"}',
     "is not a bench --json result: no rules"),
    ('{"model": "m", "batch_size": 2, "device": "cpu", "rules": {"fa": {"step_ms": 1}}}',
     "rule 'fa' has no step_ms and ratio_to_torch numbers"),
])
def test_a_corrupt_baseline_is_refused_naming_the_file(tmp_path, capsys, text, message):
    path = tmp_path / "old.json"
    path.write_text(text)
    with pytest.raises(ValueError, match="--baseline .*old.json"):
        load_baseline(path)
    assert main(["bench", "--model", "mlp:1x8:tanh", "--baseline", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"biocredit: error: --baseline {path}") and message in err


def test_a_missing_baseline_is_refused_before_any_timing(tmp_path, capsys):
    assert main(["bench", "--baseline", str(tmp_path / "gone.json")]) == 2
    assert f"--baseline {tmp_path / 'gone.json'}: no such file" in capsys.readouterr().err
    old = tmp_path / "old.json"
    old.write_text(json.dumps(result(1.3)))         # mlp:4x64:tanh, batch 32
    assert main(["bench", "--model", "mlp:1x8:tanh", "--baseline", str(old)]) == 2
    assert "model 'mlp:4x64:tanh' (now 'mlp:1x8:tanh')" in capsys.readouterr().err


def test_bench_records_and_names_the_cpu_and_compares_with_its_own_json(tmp_path, capsys):
    assert cpu_name() and cpu_name() != "unknown CPU"
    source = source_commit()
    commit, dirty = source["git_commit"], source["git_dirty"]
    assert commit is None or (len(commit) == 40 and isinstance(dirty, bool))
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    argv = ["bench", "--model", "mlp:1x8:tanh", "--rules", "fa", "--batch-size", "2",
            "--steps", "1", "--warmup", "0", "--device", "cpu"]
    assert main([*argv, "--json", str(first)]) == 0
    recorded = json.loads(first.read_text())
    assert recorded["cpu"] == cpu_name() and recorded["git_commit"] == commit
    assert recorded["input_shape"] == [1, 28, 28] and recorded["classes"] == 10
    assert f"(CPU: {cpu_name()})" in format_benchmark(recorded).splitlines()[0]
    capsys.readouterr()
    assert main([*argv, "--json", str(second), "--baseline", str(first)]) == 0
    out, err = capsys.readouterr()
    assert f"(CPU: {cpu_name()})" in out and f"against --baseline {first}" in out
    assert any(line.startswith("fa ") and "x torch" in line for line in out.splitlines())
    assert "warning" not in err


def test_bench_times_rules_with_their_options_and_refuses_unknown_ones(capsys):
    argv = ["bench", "--model", "mlp:1x8:tanh", "--batch-size", "2", "--steps", "1",
            "--warmup", "0", "--device", "cpu"]
    assert main([*argv, "--rules", "kp,kp:decay=0.5"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:-1]]
    assert rows == ["torch", "bp", "kp", "kp:decay=0.5"]
    assert main([*argv, "--rules", "kp:decy=0.5"]) == 2
    assert "decy" in capsys.readouterr().err
