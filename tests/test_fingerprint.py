"""The numbers stay the same: every rule and variant, three float64 steps on every kind of
model, hashed and compared with ``tests/fingerprint.txt`` (see ``tools/fingerprint.py``)."""

import importlib.util
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "fingerprint.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("biocredit_fingerprint", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_numbers_match_the_committed_fingerprint():
    fp = load_tool()
    expected = fp.read()
    if expected[0] != fp.header():
        pytest.skip(f"tests/fingerprint.txt was made with another torch or CPU "
                    f"({expected[0]!r}; here: {fp.header()!r}): its bits are not comparable")
    diff = fp.differences(expected, fp.compute())
    assert not diff, (
        f"{len(diff)} lines of the numbers' fingerprint changed (rule variant, model, mode):\n"
        + "\n".join(diff[:20]) + ("\n..." if len(diff) > 20 else "")
        + "\nA refactoring must leave every number bit-identical. If this change of numbers "
        "is intended, regenerate the file deliberately and say so in the commit:\n"
        "    .venv/bin/python tools/fingerprint.py --write\n"
        "(per-tensor digests: .venv/bin/python tools/fingerprint.py --detail 'RULE*')")
