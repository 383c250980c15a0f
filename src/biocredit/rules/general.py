"""The general feedback rule (Flam-Shepherd): each hidden layer's teaching signal mixes
several error paths, each through its own fixed random matrix.

For hidden layer ``l`` (counted from the bottom, ``l = 1..k``) the sources are

- ``direct``: ``B_l e_l`` (DFA-type; ``e_l = e``, or the layer's auxiliary error),
- ``above``: ``B̃_l δa_{l+1}`` (FA-type; for the top hidden layer ``δa_{k+1} = e``),
- ``below``: ``B̄_l δa_{l-1}`` (from the layer below; not for ``l = 1``),
- ``above-dfa`` / ``below-dfa``: the same matrices applied to the neighbour's plain DFA
  signal ``δã = (B e) ⊙ f'(a)``,

and ``δa_l = F(sources) ⊙ f'(a_l)`` with ``F`` their element-wise mean (or a weighted mean,
option ``weights``). The paper's strategies, generalised to ``k`` hidden layers:

- ``s1``: the top layer ``direct``; every lower layer ``direct + above`` (top-down),
- ``s2``: the bottom layer ``direct``; every higher layer ``direct + below`` (bottom-up),
- ``s3``: every layer ``direct`` plus its neighbours' plain DFA signals (``above-dfa`` for
  all but the top layer, ``below-dfa`` for all but the bottom one).

For two hidden layers these are the table in docs/algorithms.md. Its s2 row is garbled in our copy
of the paper and was reconstructed from the figure's description (direct plus from below).
``sources`` overrides the strategy layer by layer, bottom first: ``"direct+above;direct"``.
In DFA's ``position`` layout every matrix acts per position (``B̃_l`` is ``d_{l+1} × d_l``)
and each position mixes its own signals.
"""

from __future__ import annotations

import math

import torch

from ..layers.direct import as_rows, positions_of
from .base import FEEDBACK_OPTIONS, FEEDBACK_RANGES
from .dfa import LAYOUT_RANGE, DirectFeedbackAlignment

SOURCES = ("direct", "above", "below", "above-dfa", "below-dfa")


STRATEGIES = ("s1", "s2", "s3", "dfa")


def strategy_sources(strategy: str, depth: int) -> list[tuple[str, ...]]:
    """Sources per hidden layer (bottom first) of a named strategy."""
    if strategy == "s1":
        return [("direct", "above")] * (depth - 1) + [("direct",)]
    if strategy == "s2":
        return [("direct",)] + [("direct", "below")] * (depth - 1)
    if strategy == "s3":
        return [("direct",) + (("below-dfa",) if l > 0 else ())
                + (("above-dfa",) if l < depth - 1 else ()) for l in range(depth)]
    if strategy == "dfa":
        return [("direct",)] * depth
    raise ValueError(f"unknown strategy {strategy!r}; choose from s1, s2, s3, dfa")


def parse_sources(text: str, depth: int) -> list[tuple[str, ...]]:
    """``"direct+above;direct"`` -> ``[("direct", "above"), ("direct",)]``."""
    layers = [tuple(s.strip() for s in part.split("+") if s.strip())
              for part in text.split(";")]
    if len(layers) != depth:
        raise ValueError(f"sources names {len(layers)} layers; the model has {depth} hidden "
                         "layers (separate layers with ';', bottom first)")
    for l, layer in enumerate(layers):
        if not layer or any(s not in SOURCES for s in layer):
            raise ValueError(f"layer {l + 1}: sources must be among {', '.join(SOURCES)}; "
                             f"got {'+'.join(layer) or 'nothing'}")
        if l == 0 and any(s.startswith("below") for s in layer):
            raise ValueError("the first hidden layer has no layer below it")
    return layers


class GeneralFeedback(DirectFeedbackAlignment):
    """``δa_l = F(B_l e_l, B̃_l δa_{l+1}, B̄_l δa_{l-1}) ⊙ f'(a_l)`` (see the module doc)."""

    name = "general"
    summary = "general feedback (Flam-Shepherd): direct, from-above and from-below errors mixed"
    defaults = {**FEEDBACK_OPTIONS, "strategy": "s1", "sources": None, "weights": None,
                "aux_errors": False, "layout": "auto"}
    option_types = {"feedback_scale": float, "sources": str, "weights": dict}
    option_ranges = {
        **FEEDBACK_RANGES, **LAYOUT_RANGE,
        "strategy": (lambda v: v in STRATEGIES, "one of " + ", ".join(STRATEGIES)),
        "weights": (lambda v: all(k in SOURCES and isinstance(w, (int, float))
                                  and not isinstance(w, bool) and 0 < w < math.inf
                                  for k, w in v.items()),
                    f"an object of weights > 0 for the sources {', '.join(SOURCES)}, e.g. "
                    '{"direct": 2, "above": 1}'),
    }
    needs_preactivation = True
    compiles = False

    def __init__(self, **options):
        super().__init__(**options)
        text = self.options["sources"]
        if text:        # all but the number of layers, which the model has to say
            try:
                parse_sources(text, text.count(";") + 1)
            except ValueError as err:
                raise ValueError(f"rule 'general': option sources: {err}") from None

    def layer_sources(self, depth: int) -> list[tuple[str, ...]]:
        if self.options["sources"]:
            return parse_sources(self.options["sources"], depth)
        return strategy_sources(self.options["strategy"], depth)

    @classmethod
    def floor_macs(cls, macs, tap_widths, outputs):
        """Not stated: it depends on the sources."""
        return None

    def validate_taps(self, records):
        if not all(r.elementwise and not r.skip and r.preactivation is not None
                   and r.preactivation.shape == r.point.shape for r in records):
            raise ValueError("the general rule needs element-wise steps after every weight "
                             "layer (an MLP)")

    def make_direct_state(self, root, shapes, num_outputs, generator, like):
        """``B_l`` for every tap, then the neighbour matrices ``B̃_l`` (root buffer
        ``neighbour_feedback_above_{l}``, width above × ``n_l``) and ``B̄_l``
        (``neighbour_feedback_below_{l}``, ``n_{l-1} × n_l``), ``l`` counted from 0."""
        super().make_direct_state(root, shapes, num_outputs, generator, like)
        widths = [math.prod(s) for s in shapes]
        for l, sources in enumerate(self.layer_sources(len(widths))):
            for direction in ("above", "below"):
                if any(s.startswith(direction) for s in sources):
                    width = (widths[l + 1] if l + 1 < len(widths) else num_outputs) \
                        if direction == "above" else widths[l - 1]
                    b, _ = self.make_feedback((width, widths[l]), width, generator, like)
                    root.register_buffer(f"neighbour_feedback_{direction}_{l}", b)

    def hidden_signals(self, root, error, records, target):
        traces = records
        sources = self.layer_sources(len(traces))
        p = positions_of(root)          # rows: per example, or per example and position
        direct = [as_rows(d, p) for d in self.direct_signals(root, error, traces, target)]
        weights = self.options["weights"] or {}
        deltas: dict[int, torch.Tensor] = {}
        plain: dict[int, torch.Tensor] = {}

        def times_derivative(l, u):  # u ⊙ f'(a_l): the element-wise post-steps' Jacobian
            t = traces[l]
            with torch.enable_grad():
                (d,) = torch.autograd.grad(t.point, t.preactivation, u.reshape(t.point.shape),
                                           retain_graph=True)
            return as_rows(d, p)

        def dfa_delta(l):
            if l not in plain:
                plain[l] = times_derivative(l, direct[l])
            return plain[l]

        def delta(l, visiting=()):
            if l in deltas:
                return deltas[l]
            if l in visiting:
                raise ValueError("the sources form a cycle (a layer uses 'above' and the "
                                 "layer above it 'below'); use above-dfa or below-dfa")
            total, weight_sum = 0, 0.0
            for s in sources[l]:
                if s == "direct":
                    u = direct[l]
                else:
                    direction, _, kind = s.partition("-")
                    n = l + 1 if direction == "above" else l - 1
                    if n == len(traces):
                        signal = as_rows(error, p)
                    else:
                        signal = dfa_delta(n) if kind else delta(n, (*visiting, l))
                    u = signal @ getattr(root, f"neighbour_feedback_{direction}_{l}").to(
                        signal.dtype)
                w = float(weights.get(s, 1.0))
                total, weight_sum = total + w * u, weight_sum + w
            signals[l] = total / weight_sum
            deltas[l] = times_derivative(l, signals[l])
            return deltas[l]

        signals: dict[int, torch.Tensor] = {}
        for l in range(len(traces)):
            delta(l)
        # Injected at the tap: autograd applies the same ⊙ f'(a_l) on the way down.
        return [signals[l].reshape(t.point.shape) for l, t in enumerate(traces)]
