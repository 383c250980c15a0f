"""The papers' claims as checked statements."""

import json
from pathlib import Path

import pytest

from biocredit.cli import main
from biocredit.experiments import PRESETS
from biocredit.experiments.claims import Claim, evaluate, read_results

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


def test_with_several_seeds_a_claim_must_hold_for_the_mean_and_most_seeds():
    # mean 0.2 < 0.25, but only one seed of three below its DFA twin
    dkp = [summary(0.1), summary(0.26), summary(0.24)]
    dfa = [summary(0.3), summary(0.25), summary(0.2)]
    verdict = evaluate(CLAIM, {"dkp": dkp, "dfa": dfa})
    assert verdict.status == "does not hold" and "1 of 3 seeds" in verdict.ours
    dkp[2] = summary(0.15)
    verdict = evaluate(CLAIM, {"dkp": dkp, "dfa": dfa})
    assert verdict.status == "holds" and "2 of 3 seeds" in verdict.ours
    assert "0.1700 ± " in verdict.ours


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
        if PAPERS.is_dir():                        # the quote is verbatim from our copy
            text = " ".join(p.read_text() for p in PAPERS.glob("*.txt"))
            assert claim.quote in text, claim.quote


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
    code = main(["reproduce", "dkp-convnet", "--out", str(out), "--force"])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.count("**holds**") == 3
    assert (out / "verdicts.md").read_text().count("**holds**") == 3
    assert read_results(out)["dkp"][0]["test_error"] == 0.11
