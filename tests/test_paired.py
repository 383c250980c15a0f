"""Paired differences between rules over the same seeds: the t distribution, the paired
t-test, and ``compare --seeds`` printing and storing them."""

import json
import math

import pytest

from biocredit.cli import main
from biocredit.training.seeds import (paired_differences, paired_t, regularized_beta,
                                      t_two_sided_p)


@pytest.mark.parametrize("t, df, p", [
    (12.706, 1, 0.05), (4.303, 2, 0.05), (3.182, 3, 0.05), (2.776, 4, 0.05),
    (2.228, 10, 0.05), (2.042, 30, 0.05), (63.657, 1, 0.01), (4.604, 4, 0.01),
    (3.169, 10, 0.01), (1.645, 1e6, 0.10), (1.476, 5, 0.20), (0.0, 7, 1.0),
])
def test_two_sided_p_matches_the_t_table(t, df, p):
    assert t_two_sided_p(t, df) == pytest.approx(p, rel=2e-3, abs=1e-6)
    assert t_two_sided_p(-t, df) == t_two_sided_p(t, df)


@pytest.mark.parametrize("t", [0.1, 0.7, 1.0, 2.5, 9.0, 150.0])
def test_two_sided_p_matches_the_closed_forms_for_one_and_two_df(t):
    assert t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-12)
    assert t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-12)


def test_regularized_beta_edges_and_symmetry():
    assert regularized_beta(0.0, 2, 3) == 0.0 and regularized_beta(1.0, 2, 3) == 1.0
    assert regularized_beta(0.3, 1, 1) == pytest.approx(0.3)            # uniform
    assert regularized_beta(0.3, 2, 5) == pytest.approx(1 - regularized_beta(0.7, 5, 2))
    assert t_two_sided_p(math.inf, 3) == 0.0
    with pytest.raises(ValueError):
        t_two_sided_p(1.0, 0)


def test_paired_t_by_hand():
    d = [-0.01, -0.004, -0.0016]
    mean = sum(d) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
    r = paired_t(d)
    assert r["n"] == 3 and r["df"] == 2
    assert r["mean"] == pytest.approx(mean) and r["std"] == pytest.approx(std)
    assert r["se"] == pytest.approx(std / math.sqrt(3))
    assert r["t"] == pytest.approx(mean / (std / math.sqrt(3)))
    t = r["t"]
    assert r["p"] == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t))     # df 2: closed form
    assert paired_t([0.2]) == {"n": 1, "mean": 0.2, "std": None, "se": None, "t": None,
                               "df": None, "p": None}
    assert paired_t([])["mean"] is None
    same = paired_t([0.1, 0.1])
    assert same["se"] == 0 and same["t"] == math.inf and same["p"] == 0.0
    assert paired_t([0.0, 0.0])["p"] == 1.0


def test_paired_differences_pair_by_seed_and_leave_out_failed_runs():
    runs = {
        "dfa": {0: {"test_error": 0.20}, 1: {"test_error": 0.22}, 2: {"test_error": 0.25},
                3: {"test_error": 0.30}},
        "dkp": {1: {"test_error": 0.21}, 0: {"test_error": 0.18},
                2: {"test_error": 0.5, "status": "diverged"},
                3: {"status": "failed", "message": "boom"}},
        "fa": {0: {"test_error": 0.19}},
    }
    paired = paired_differences(runs, "dfa")
    assert paired["baseline"] == "dfa" and paired["key"] == "test_error"
    assert list(paired["rules"]) == ["dkp", "fa"]
    dkp = paired["rules"]["dkp"]
    assert dkp["seeds"] == [0, 1] and dkp["left_out"] == [2, 3] and dkp["n"] == 2
    assert dkp["mean"] == pytest.approx(((0.18 - 0.20) + (0.21 - 0.22)) / 2)
    assert dkp["p"] == pytest.approx(t_two_sided_p(dkp["t"], 1))
    fa = paired["rules"]["fa"]
    assert fa["n"] == 1 and fa["p"] is None and fa["mean"] == pytest.approx(-0.01)
    assert fa["left_out"] == [1, 2, 3]
    assert paired_differences(runs, "fa")["rules"]["dfa"]["mean"] == pytest.approx(0.01)


def test_compare_with_seeds_prints_and_stores_the_paired_differences(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--rules", "bp,fa", "--model", "mlp:1x16:tanh", "--data", "digits",
                 "--epochs", "1", "--seeds", "2", "--tsne-size", "0", "--quiet",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    comparison = json.loads((out / "comparison.json").read_text())
    paired = comparison["paired_differences"]
    assert paired["baseline"] == "bp" and list(paired["rules"]) == ["fa"]
    errors = {spec: [json.loads((out / spec / f"seed-{s}" / "summary.json").read_text())
                     ["test_error"] for s in (0, 1)] for spec in ("bp", "fa")}
    differences = [f - b for f, b in zip(errors["fa"], errors["bp"])]
    fa = paired["rules"]["fa"]
    assert fa["n"] == 2 and fa["df"] == 1 and fa["seeds"] == [0, 1] and fa["left_out"] == []
    assert fa["mean"] == pytest.approx(sum(differences) / 2)
    assert fa["se"] == pytest.approx(abs(differences[0] - differences[1]) / 2)
    assert 0 <= fa["p"] <= 1
    line = next(line for line in printed.splitlines() if line.startswith("fa − bp: "))
    assert "mean ± standard error of the paired differences over 2 seeds" in line
    assert f"p = {fa['p']:.2g}, two-sided" in line and "significant at 0.05" in line
    report = (out / "report.md").read_text()
    assert "## Over seeds" in report and "| fa − bp | 2 |" in report
    assert "±" in report.split("## Over seeds")[1]


def test_an_unknown_baseline_is_a_one_line_error(tmp_path, capsys):
    code = main(["compare", "--rules", "bp,fa", "--baseline", "dfa", "--seeds", "2",
                 "--data", "digits", "--quiet", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--baseline 'dfa' is not one of the rules compared: bp, fa" in err
    assert not (tmp_path / "x" / "bp").exists()
