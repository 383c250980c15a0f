"""The papers' claims as checked statements."""

import json
from pathlib import Path

import pytest

from biocredit.cli import main
from biocredit.experiments import PRESETS
from biocredit.experiments.claims import (METRICS, Claim, evaluate, read_results,
                                          verdict_rows)

PAPERS = Path(__file__).resolve().parents[2] / "shared" / "papers"


def summary(test_error, angle=None, train_error=0.1):
    return {"test_error": test_error, "train_error": train_error, "mean_angle_deg": angle,
            "first_mean_angle_deg": angle, "val_error": None}


CLAIM = Claim("dkp.test_error < dfa.test_error", "quoted", "somewhere")


def test_a_claim_holds_does_not_hold_or_was_not_run():
    assert evaluate(CLAIM, {"dkp": [summary(0.1)], "dfa": [summary(0.2)]}).status == "holds"
    assert evaluate(CLAIM, {"dkp": [summary(0.3)], "dfa": [summary(0.2)]}).status == \
        "does not hold"
    verdict = evaluate(CLAIM, {"dfa": [summary(0.2)]})
    assert verdict.status == "not run" and "dkp" in verdict.ours


def seeds(*errors, **others):
    return [{**summary(e), **{k: v[i] for k, v in others.items()}} for i, e in enumerate(errors)]


def test_a_difference_within_its_standard_error_does_not_decide():
    # means 0.21 vs 0.22, but the paired differences (-0.04, 0.01, 0) have se 0.0153
    verdict = evaluate(CLAIM, {"dkp": seeds(0.20, 0.21, 0.22), "dfa": seeds(0.24, 0.20, 0.22)})
    assert verdict.status == "does not hold"
    assert verdict.margin == "dkp.test_error − dfa.test_error = −0.0100 ± 0.0153 (se, 3 seeds; paired t p = 0.58)"
    assert "dkp.test_error 0.2100 ± 0.0100" in verdict.ours
    verdict = evaluate(CLAIM, {"dkp": seeds(0.20, 0.21, 0.22), "dfa": seeds(0.25, 0.26, 0.27)})
    assert verdict.status == "holds" and "−0.0500 ± 0.0000 (se, 3 seeds; paired t p < 0.001)" in verdict.margin
    # the rule's edge: mean -0.0067 with se 0.0060 holds by mean + se < 0 (not by 2 se)
    verdict = evaluate(CLAIM, {"dkp": seeds(0.20, 0.21, 0.22), "dfa": seeds(0.215, 0.205, 0.23)})
    assert verdict.status == "holds" and "−0.0067 ± 0.0060" in verdict.margin
    # the other way round, and against a number
    other = Claim("dfa.test_error >= dkp.test_error", "q", "s")
    assert evaluate(other, {"dkp": seeds(0.20, 0.21, 0.22),
                            "dfa": seeds(0.24, 0.20, 0.22)}).status == "does not hold"
    below = Claim("dkp.test_error < 0.215", "q", "s")      # 0.21 ± 0.0058 (se): not shown
    assert evaluate(below, {"dkp": seeds(0.20, 0.21, 0.22)}).status == "does not hold"
    assert evaluate(below, {"dkp": seeds(0.20, 0.205, 0.21)}).status == "holds"


def test_one_seed_compares_the_values_and_says_there_is_no_margin():
    verdict = evaluate(CLAIM, {"dkp": [summary(0.20)], "dfa": [summary(0.2001)]})
    assert verdict.status == "holds" and verdict.ours.endswith("one seed: no margin")
    assert verdict.margin == "dkp.test_error − dfa.test_error = −0.0001 (one seed: no margin)"
    header, row = verdict_rows([verdict])
    assert header == ["claim", "paper", "ours", "margin", "verdict"]
    assert row[3] == verdict.margin and row[4] == "**holds**"


def test_seeds_pair_by_position_and_arithmetic_acts_seed_by_seed():
    # DFA is 0.05 above BP at each seed (its fourth seed has no twin, and is not read)
    runs = {"bp": seeds(0.1, 0.3, 0.2), "dfa": seeds(0.15, 0.35, 0.25, 0.9),
            "fa": seeds(0.13, 0.29, 0.23)}
    paired = Claim("bp.test_error < dfa.test_error", "q", "s")
    verdict = evaluate(paired, runs)
    assert verdict.status == "holds" and "(se, 3 seeds; paired t p " in verdict.margin
    claim = Claim("abs(dfa.test_error - bp.test_error) > max(fa.test_error - bp.test_error, 0)",
                  "q", "s")                      # 0.05 vs (0.03, 0, 0.03)
    assert evaluate(claim, runs).status == "holds"
    runs["dfa"] = seeds(0.35, 0.15, 0.25)        # the same values, other seeds: no margin
    assert evaluate(paired, runs).status == "does not hold"
    chained = Claim("bp.test_error < dfa.test_error < fa.test_error + 1", "q", "s")
    verdict = evaluate(chained, {"bp": seeds(0.1, 0.2), "dfa": seeds(0.2, 0.3),
                                 "fa": seeds(0.1, 0.1)})
    assert verdict.status == "holds" and verdict.margin.count("(se, 2 seeds;") == 2
    assert "dfa.test_error − (fa.test_error + 1) = −0.8500 ± 0.0500" in verdict.margin


def test_near_holds_within_the_tolerance_or_twice_the_seeds_std():
    one = {"dkp": [summary(0.375)]}
    assert evaluate(Claim("near(dkp.test_error, 0.25, 0.125)", "q", "s"), one).status == \
        "holds"
    verdict = evaluate(Claim("near(dkp.test_error, 0.25, 0.12)", "q", "s"), one)
    assert verdict.status == "does not hold"
    assert "dkp.test_error 0.3750 vs the paper's 0.25 (tolerance 0.1200)" in verdict.ours
    # std 0.25 over three seeds: within 0.5 of the paper however small tol is
    three = {"dkp": seeds(0.25, 0.5, 0.75)}
    verdict = evaluate(Claim("near(dkp.test_error, 1, 0.001)", "q", "s"), three)
    assert verdict.status == "holds"
    assert verdict.ours == "dkp.test_error 0.5000 ± 0.2500 vs the paper's 1 (tolerance 0.5000)"
    assert evaluate(Claim("near(dkp.test_error, 1.0625, 0.001)", "q", "s"),
                    three).status == "does not hold"
    assert evaluate(Claim("near(dkp.test_error, 1.0625, 0.5625)", "q", "s"),
                    three).status == "holds"
    for bad in ("near(dkp.test_error, 0.04)", "near(dkp.test_error, dkp.test_error, 0.1)",
                "dkp.test_error", "min(dkp.test_error) < 1", "dkp.test_error < 'a'"):
        with pytest.raises(ValueError):
            evaluate(Claim(bad, "", ""), three)


def test_error_areas_are_the_mean_error_over_the_epochs_run(tmp_path):
    def write(folder, seed, test_errors):
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(
            {"label": "fa", "seed": seed, **summary(test_errors[-1])}))
        (folder / "metrics.jsonl").write_text("".join(
            json.dumps({"epoch": i + 1, "test_error": e, "train_error": e / 2}) + "\n"
            for i, e in enumerate(test_errors)))
    write(tmp_path / "train", 0, [0.5, 0.2, 0.1, 0.08])
    (run,) = read_results(tmp_path / "train")["fa"]
    assert run["test_error_area"] == pytest.approx((0.5 + 0.2 + 0.1 + 0.08) / 4)
    assert run["train_error_area"] == pytest.approx((0.25 + 0.1 + 0.05 + 0.04) / 4)
    assert run["first_train_error"] == 0.25
    # a compare folder of two seeds (listed out of order), and a rule without metrics.jsonl
    compare = tmp_path / "compare"
    write(compare / "fa" / "seed-0", 0, [0.4, 0.2])
    write(compare / "fa" / "seed-1", 1, [0.6, 0.3, 0.3])
    runs = {"fa": {"1": {**summary(0.3), "seed": 1}, "0": {**summary(0.2), "seed": 0}},
            "bp": {"0": summary(0.1), "1": summary(0.1)}}
    (compare / "comparison.json").write_text(json.dumps({"runs": runs, "rules": {}}))
    found = read_results(compare, "step")
    assert [r["test_error_area"] for r in found["step.fa"]] == pytest.approx([0.3, 0.4])
    assert found["step.bp"][0]["test_error_area"] is None
    verdict = evaluate(Claim("step.bp.test_error_area < step.fa.test_error_area", "q", "s"),
                       found)
    assert verdict.status == "not run" and "step.bp.test_error_area" in verdict.ours


def test_every_preset_claim_judges_made_up_seeds():
    """No claim of a preset misuses the language (a number as a statement, near's form)."""
    import random
    for preset in PRESETS.values():
        for claim in preset.claims:
            rng = random.Random(claim.statement)
            runs = {name: [{m: rng.uniform(0.1, 0.9) for m in METRICS} for _ in range(3)]
                    for name in claim.names()}
            assert evaluate(claim, runs).status in ("holds", "does not hold"), claim.statement


def test_claims_are_statements_not_code():
    for bad in ("__import__('os').system('true')", "dkp.test_error.__class__",
                "dkp.weights < 1", "open('x')"):
        with pytest.raises(ValueError):
            evaluate(Claim(bad, "", ""), {"dkp": [summary(0.1)]})


@pytest.mark.parametrize("name", [n for n, p in PRESETS.items() if p.claims])
def test_every_preset_claim_reads_runs_the_preset_makes_and_quotes_its_paper(name):
    preset = PRESETS[name]
    runs = set().union(*(step.run_names() for step in preset.steps))
    for claim in preset.claims:
        assert claim.names() <= runs, claim.statement
        if PAPERS.is_dir() and not preset.extension:   # the quote is verbatim from our copy
            text = " ".join(p.read_text() for p in PAPERS.glob("*.txt"))
            assert claim.quote in text, claim.quote
    if PAPERS.is_dir():                            # so is every setting's sentence
        text = " ".join(p.read_text() for p in PAPERS.glob("*.txt"))
        for setting in preset.settings:
            assert not setting.quote or setting.quote in text, setting.quote


def test_reproduce_prints_and_writes_the_verdicts(tmp_path, capsys, monkeypatch):
    """A preset whose runs are already there (written here as a compare folder would be)."""
    import biocredit.cli as cli
    out = tmp_path / "dkp"
    out.mkdir()
    runs = {"bp": {"0": summary(0.08, 0.0)},
            "fa": {"0": summary(0.13, 87.0)},
            "dfa": {"0": summary(0.12, 86.0)}, "dkp": {"0": summary(0.11, 80.0)}}
    (out / "comparison.json").write_text(json.dumps({"runs": runs, "rules": {}}))
    monkeypatch.setattr(cli, "cmd_compare", lambda args: 0)     # the runs exist already
    code = main(["reproduce", "dkp-convnet", "--budget", "smoke", "--out", str(out), "--force"])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.count("**holds**") == 3
    assert (out / "verdicts.md").read_text().count("**holds**") == 3
    assert read_results(out)["dkp"][0]["test_error"] == 0.11
