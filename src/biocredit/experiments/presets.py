"""Every preset, by name (one module a paper under :mod:`.papers`; the machinery in
:mod:`.preset`). ``biocredit reproduce NAME`` runs one and prints the verdicts; extra arguments
are appended (a later flag wins, e.g. ``--epochs 2``)."""

from __future__ import annotations

from .papers import PAPER_MODULES
from .preset import BUDGETS, SHORT_IMAGES, SMOKE, SMOKE_DATA, Preset, Setting, Step, one

__all__ = ["BUDGETS", "PAPERS", "PRESETS", "SHORT_IMAGES", "SMOKE", "SMOKE_DATA", "Preset",
           "Setting", "Step", "one", "preset"]

_PRESETS = [
    Preset("demo", "BP, FA and DFA on the embedded digits set (make demo)",
           one("compare", "--rules", "bp,fa,dfa", "--model", "mlp:2x200:tanh", "--data",
               "digits", "--epochs", "30"),
           budgets=("smoke", "short")),
]
_PRESETS += [p for module in PAPER_MODULES for p in module.PRESETS]
PRESETS = {p.name: p for p in _PRESETS}
PAPERS = {
    "lillicrap": "Lillicrap et al. 2016, Random synaptic feedback weights support error "
                 "backpropagation for deep learning",
    "nokland": "Nøkland 2016, Direct Feedback Alignment Provides Learning in Deep Neural "
               "Networks",
    "flam-shepherd": "Flam-Shepherd et al., General feedback alignment (auxiliary errors "
                     "and autoencoders)",
    "amit": "Amit 2019, Deep learning with asymmetric connections and Hebbian updates",
    "webster": "Webster et al., Direct Kolen-Pollack",
    "launay": "Launay et al. 2020, Direct Feedback Alignment Scales to Modern Deep Learning "
              "Tasks and Architectures (our own extension: a character language model)",
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available presets: {', '.join(PRESETS)}")
    return PRESETS[name]
