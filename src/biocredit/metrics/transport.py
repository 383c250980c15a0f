"""Which parameters learn without weight transport: an audit of the backward graph.

The update of a parameter is free of weight transport when the error that reaches it never
passed *backwards* through another parameter on its way from the output: through a forward
weight (BP's ``Wᵀδ``), a normalisation scale (batch or layer norm multiply the error by
``γ``), or any other parameter that a backward step multiplies by. Feedback matrices are
buffers, not parameters, so an error sent through them is free, and a direct rule's taps
start every hidden layer's error afresh from ``e``.

:func:`transport_report` records one forward pass and walks its autograd graph from the
output: every backward node that saved a parameter adds it to what the error has crossed on
the paths to its inputs (not on the edges to parameters' own gradients, which need only the
error and the activations).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..layers.direct import engine_of
from ..layers.output_point import select_output

JOIN_NODE = "JoinFunctionBackward"   # biocredit.layers.direct.JoinFunction: taps start afresh
SAVED_BUT_NOT_MULTIPLIED = {"_saved_bias"}   # e.g. layer norm saves β; no input gradient uses it


@dataclass
class TransportReport:
    """``crossed[name]``: the parameters whose weights the error crossed on its way to
    parameter ``name`` (empty: free of weight transport). ``unreached``: trainable
    parameters the output's backward never reaches. ``rule_note``: what the rule's feedback
    itself takes from the forward weights (sign symmetry: their signs)."""

    crossed: dict[str, list[str]] = field(default_factory=dict)
    unreached: list[str] = field(default_factory=list)
    rule_note: str = ""

    @property
    def free(self) -> list[str]:
        return [name for name, via in self.crossed.items() if not via]

    @property
    def transported(self) -> dict[str, list[str]]:
        return {name: via for name, via in self.crossed.items() if via}

    def summary(self) -> dict:
        """A JSON-ready summary: counts, and where transport remains."""
        return {"free": len(self.free), "transport": len(self.transported),
                "unreached": self.unreached, "where": self.transported,
                "rule_note": self.rule_note}

    def __str__(self) -> str:
        lines = [f"{len(self.free)} of {len(self.crossed)} parameters learn without weight "
                 "transport"]
        for name, via in self.transported.items():
            shown = ", ".join(via[:4]) + (f" and {len(via) - 4} more" if len(via) > 4 else "")
            lines.append(f"  {name}: the error crossed {shown}")
        if self.unreached:
            lines.append(f"  no gradient reaches: {', '.join(self.unreached)}")
        if self.rule_note:
            lines.append(f"  and the rule's feedback itself carries {self.rule_note}")
        return "\n".join(lines)


def transport_report(model: nn.Module, example_input: torch.Tensor | dict | None = None
                     ) -> TransportReport:
    """Audit ``model`` (converted or plain) on one forward pass of ``example_input`` (a
    batch, a dict of keyword arguments; default: the model's own ``example_input()``), in
    eval mode, from its logits (as a direct rule finds them); nothing is changed."""
    if example_input is None:
        if not hasattr(model, "example_input"):
            raise ValueError("transport_report needs an example_input (one batch) for a "
                             f"{type(model).__name__}")
        example_input = model.example_input()
    names = {p: name for name, p in model.named_parameters() if p.requires_grad}
    by_storage = {_storage(p): name for p, name in names.items()}
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            output = model(**example_input) if isinstance(example_input, dict) else \
                model(example_input)
            crossed = _walk(_logits(model, output).grad_fn, names, by_storage)
    finally:
        model.train(was_training)
    conversion = getattr(model, "biocredit_conversion", None)
    report = TransportReport(rule_note="" if conversion is None else conversion.rule.transports)
    for p, name in names.items():
        if name in crossed:
            report.crossed[name] = sorted(crossed[name])
        else:
            report.unreached.append(name)
    return report


def _logits(model: nn.Module, output) -> torch.Tensor:
    """The tensor of ``output`` the audit starts from: where a direct rule takes ``e``."""
    engine = engine_of(model)
    return select_output(output, None if engine is None else engine.selector,
                         "transport_report")


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def _saved_parameters(node, by_storage: dict[int, str]) -> set[str]:
    """The parameters a backward node saved (and so multiplies input gradients by)."""
    tensors = []
    saved = getattr(node, "saved_tensors", None)   # custom autograd.Function nodes
    if saved is not None:
        try:
            tensors.extend(saved)
        except RuntimeError:
            pass
    for attr in dir(node):
        if attr.startswith("_saved_") and attr not in SAVED_BUT_NOT_MULTIPLIED:
            try:
                value = getattr(node, attr)
            except RuntimeError:
                continue
            if isinstance(value, torch.Tensor):
                tensors.append(value)
            elif isinstance(value, (tuple, list)):
                tensors.extend(v for v in value if isinstance(v, torch.Tensor))
    found = set()
    for t in tensors:
        if t is not None and t.numel() and _storage(t) in by_storage:
            found.add(by_storage[_storage(t)])
    return found


def _own_parameter(node, names) -> str | None:
    """The parameter whose gradient this edge computes (through views and transposes)."""
    for _ in range(4):
        if node is None:
            return None
        variable = getattr(node, "variable", None)
        if variable is not None:
            return names.get(variable)
        nexts = [n for n, _ in node.next_functions if n is not None]
        if len(nexts) != 1:
            return None
        node = nexts[0]
    return None


def _walk(root, names, by_storage) -> dict[str, set[str]]:
    crossed: dict[str, set[str]] = {}
    seen: dict[object, frozenset] = {}
    stack = [(root, frozenset())]
    while stack:
        node, carried = stack.pop()
        if node is None:
            continue
        previous = seen.get(node)
        if previous is not None and carried <= previous:
            continue
        carried = carried | (previous or frozenset())
        seen[node] = carried
        variable = getattr(node, "variable", None)
        if variable is not None:
            if variable in names:
                crossed.setdefault(names[variable], set()).update(carried)
            continue
        if type(node).__name__ == JOIN_NODE:
            children = node.next_functions
            stack.append((children[0][0], carried))            # e to the output
            stack.extend((child, frozenset()) for child, _ in children[1:])  # taps: afresh
            continue
        saved = _saved_parameters(node, by_storage)
        for child, _ in node.next_functions:
            # A parameter's own gradient needs the error and activations only; every other
            # input's gradient is multiplied by what the node saved.
            own = _own_parameter(child, names) is not None
            stack.append((child, carried if own else carried | saved))
    return crossed
