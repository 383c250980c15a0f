"""Launay et al. 2020 trained Transformers with DFA. We have no copy of the paper, so nothing
here is its claim or its setting: ``launay-char-lm`` is our own extension, a small GPT-style
character language model (``gpt:2x64:h4``) trained with BP, DFA and DKP on a text every
CPython ships (``python-reference``), its claims our expectations."""

from __future__ import annotations

from ..claims import Claim
from ..preset import Preset, Setting, cost, one

SOURCE = "launay"
OURS = "our extension"
NO_COPY = "we have no copy of the paper; our extension"
NONE = "none (our extension)"
SETTINGS = (
    Setting("data", "python-reference: the Python Language Reference in CPython "
            "(pydoc_data.topics; in CPython 3.11 465,126 characters, 103 distinct), "
            "character-level; the first 90% trains, the last 10% tests; windows of 64 "
            "characters",
            choice="a real text any machine has, nothing downloaded (text:PATH: any file)"),
    Setting("architecture", "gpt:2x64:h4: 2 pre-LayerNorm blocks of causal self-attention "
            "(4 heads) and an MLP (width 64, 4·64 hidden), a tap after each block",
            choice=NO_COPY + "; small enough for a CPU"),
    Setting("direct feedback", "per position: block l's output at position t gets e_t B_l, "
            "one V × d matrix shared by all positions (layout auto)", choice=NO_COPY),
    Setting("optimizer", "Adam, learning rate 2·10⁻³, batches of 32 windows, no weight "
            "decay", choice="as examples/char_lm.py, where all three rules learn"),
    Setting("epochs and seeds", "10 epochs (1,840 steps of 32 windows), 3 seeds",
            choice="what 2 CPU cores train in about a quarter of an hour (an epoch is "
            "about 8 s a rule)"),
)

PRESETS = [
    Preset("launay-char-lm", "BP, DFA and DKP on a GPT-style character language model "
                             "(gpt:2x64:h4, python-reference): test bits per character",
           one("compare", "--rules", "bp,dfa,dkp", "--model", "gpt:2x64:h4", "--data",
               "python-reference", "--epochs", "10", "--batch-size", "32", "--lr", "2e-3",
               "--train-error", "running", "--probe-size", "64", "--seeds", "3",
               "--tsne-size", "0"),
           "we have no copy of Launay et al. 2020; this character model is our extension",
           (Claim("dfa.test_bpc < dfa.unigram_bpc", "ours: DFA's per-position feedback "
                  "teaches a Transformer more than the characters' frequencies", OURS, paper=NONE,
                  note="the unigram baseline: the training text's character frequencies"),
            Claim("bp.test_bpc < dfa.test_bpc", "ours: BP's model predicts the next "
                  "character better than DFA's", OURS, paper=NONE),
            Claim("dkp.test_bpc < dkp.unigram_bpc", "ours: DKP learns a Transformer too",
                  OURS, paper=NONE)),
           SOURCE, SETTINGS,
           short=("--epochs", "1", "--seeds", "1"),
           smoke=("--model", "gpt:1x16:h2", "--train-size", "32", "--test-size", "16",
                  "--probe-size", "8"),
           figures=("errors.png",), extension=True,
           cost=cost(9, 10, 8, 1, "an epoch is 184 steps of 32 windows of 64 characters")),
]
