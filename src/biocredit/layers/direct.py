"""Direct feedback in any model: taps cut the graph, one autograd node at the output hands
every tap its teaching signal.

A model converted for a direct rule carries a :class:`DirectEngine` (not state: the feedback
matrices are buffers of the model, see the rules). Its root module's forward pre-hook starts
a record; every :class:`~biocredit.layers.tap.Tap` the forward passes through records its
input and returns it *detached*, so nothing above a tap back-propagates into it; the root's
forward hook wraps the model output in :class:`JoinFunction`. On ``loss.backward()`` the join
receives ``e = ∂loss/∂output``, passes ``e`` on to the output (so the layers above the last
tap learn from ``e`` as usual) and returns each tap's signal, made by the rule from ``e``
(DFA: one matmul for all taps). The layers between two taps then get their gradients from
their own tap's signal only, all within the same single ``loss.backward()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..distributed import unwrap


class StructureError(RuntimeError, ValueError):
    """A model whose forward passes change what a direct rule was set up for (its taps, the
    layers between them): the model's doing, not a fault of biocredit (a ``ValueError`` for
    the command line's one-line errors, a ``RuntimeError`` as it always was)."""


@dataclass
class TapRecord:
    """One tap of one forward pass.

    ``point`` is the tensor the tap received; ``input`` the start of its local graph (the
    previous tap's detached output; ``None`` for the first tap, whose graph starts at the
    model input); ``preactivation`` the last weight layer's output before the tap (``a_l``);
    ``activation`` the activation before pooling (the point unless the model says otherwise);
    ``skip`` whether a residual sum lies between the local input and the tap; ``elementwise``
    whether the point is an element-wise function of the preactivation; ``output`` the
    detached tensor the tap returned (kept for rules with ``local_input_grad``); ``between``
    the parameters between ``a_l`` and where the rule's signal enters, when the rule injects
    at ``a_l`` itself (IFA)."""

    input: torch.Tensor | None
    preactivation: torch.Tensor | None
    activation: torch.Tensor
    point: torch.Tensor
    skip: bool = False
    elementwise: bool = True
    output: torch.Tensor | None = None
    layer: tuple[nn.Module, torch.Tensor] | None = None   # the weight layer making a_l, its input
    between: list[torch.Tensor] | None = None


class JoinFunction(torch.autograd.Function):
    """Identity on the model output; its backward turns ``e`` into every tap's signal (and
    hands the rule the output itself, with its graph, if it ``needs_output``)."""

    @staticmethod
    def forward(ctx, output, engine, records, *points):
        ctx.engine, ctx.records, ctx.target = engine, records, engine.target
        ctx.output = output if engine.rule.needs_output else None
        return output.clone()

    @staticmethod
    def backward(ctx, error):
        engine, records = ctx.engine, ctx.records
        extra = {} if ctx.output is None else {"output": ctx.output}
        ctx.records = ctx.output = None
        signals = engine.rule.hidden_signals(engine.root, error, records, ctx.target, **extra)
        return (error, None, None, *signals)


class DirectEngine:
    """Drives the taps of one converted model for a direct ``rule`` (see the module doc)."""

    def __init__(self, rule, root: nn.Module, generator: torch.Generator | None):
        self.rule, self.root, self.generator = rule, root, generator
        self.exact = False          # set by exact_gradients: taps pass everything through
        self.target = None          # the batch's labels, for rules that need them
        self.shapes: list[tuple[int, ...]] | None = None
        self._records: list[TapRecord] | None = None
        self._probing = False
        self._frozen_taps = 0
        self._previous: torch.Tensor | None = None
        self._preactivation: torch.Tensor | None = None
        self._preactivation_version = 0
        self._layer: tuple[nn.Module, torch.Tensor] | None = None
        self._activation: torch.Tensor | None = None   # the latest activation module's output
        self._after_tap = 0         # modules with parameters run since the last tap
        self._output_checked = False    # a layer with weights lies after the last tap
        # Which taps' outputs require grad (rules with local_input_grad), by tap index; a
        # tap past the end of the tuple does (the first forward: all of them).
        self._input_grad: tuple[bool, ...] = ()

    # -- hooks ------------------------------------------------------------------------------
    def begin(self, module, args) -> None:
        """Root forward pre-hook: start recording when a backward may follow."""
        if self._probing:
            return
        # A fresh record every time, so a forward that raised half-way leaves nothing behind.
        self._records = [] if not self.exact and torch.is_grad_enabled() else None
        self._previous = self._preactivation = self._layer = self._activation = None
        self._frozen_taps = 0
        self._after_tap = 0       # taps passed with nothing below them to learn

    def tap(self, h, preactivation, activation, skip=False, elementwise=True):
        records = self._records
        self._after_tap = 0
        if activation is None and preactivation is None:
            activation = self._activation   # a plain model's: its activation module's output
        self._activation = None
        if records is None or not (h.requires_grad or self._probing):
            if records is not None:
                self._frozen_taps += 1
            return h
        if preactivation is None:
            preactivation = self._preactivation
            if self.rule.needs_preactivation and preactivation is not None and \
                    preactivation._version != self._preactivation_version:
                raise ValueError(
                    f"{self.rule.name} needs each weight layer's output a_l as the layer gave "
                    "it, and this model changes it in place before the tap (an in-place "
                    "activation such as nn.ReLU(inplace=True)?); build the model with "
                    "inplace=False")
        record = TapRecord(self._previous, preactivation,
                           h if activation is None else activation, h, skip, elementwise,
                           layer=self._layer if preactivation is self._preactivation else None)
        records.append(record)
        if self._probing:
            return h
        out = h.detach()
        index = len(records) - 1
        if self.rule.local_input_grad and (index >= len(self._input_grad)
                                           or self._input_grad[index]):
            record.output = out.requires_grad_()
        self._previous = out
        return out

    def weight_output(self, module, args, output) -> None:
        """Forward hook of weight layers: remember the latest ``a_l``."""
        if self._records is not None:
            self._preactivation = output
            self._preactivation_version = output._version
            self._layer = (module, args[0]) if args else None
            self._activation = None

    def activation_output(self, module, args, output) -> None:
        """Forward hook of activation modules: remember the latest activation after ``a_l``
        (a tap after pooling then knows the activation before it)."""
        if self._records is not None and self._preactivation is not None:
            self._activation = output

    def parameterised_output(self, module, args, output) -> None:
        """Forward hook of modules with parameters of their own: count them after the tap."""
        if self._records is not None:
            self._after_tap += 1

    def end(self, module, args, output):
        """Root forward hook: join the recorded taps to the output."""
        records = self._records
        if self._probing or records is None:
            return output
        self._records = None
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"{self.rule.name} needs the model to return one tensor (the "
                            f"output whose error it projects); got {type(output).__name__}")
        if not records and self._frozen_taps:     # every layer below the taps is frozen
            return output
        if not records:
            raise StructureError(no_taps(self.rule.name, "the forward pass went through no tap"))
        if not self._output_checked:
            self.check_output_layer(output)
        self.materialise(records, output)
        if self.rule.local_input_grad:
            self._input_grad = tuple(self.rule.input_grad_needed(records))   # the next forward's
        return JoinFunction.apply(output, self, records, *self.rule.injection_points(records))

    def check_output_layer(self, output: torch.Tensor) -> None:
        """Refuse a tap with no layer with weights between it and the output (a tap after
        the output layer): there the rule's random projection of ``e`` would replace ``e``
        itself, and the output layer would learn from it."""
        if not self._after_tap and not _reaches_parameter(output):
            raise ValueError(
                f"{self.rule.name}: no layer with weights lies between the last tap and the "
                "model's output, so that tap sits after the output layer and the output "
                "layer would learn from a random projection of the error instead of the "
                "error; place taps after hidden layers only")
        self._output_checked = True

    # -- state ------------------------------------------------------------------------------
    @torch.no_grad()
    def probe(self, example: torch.Tensor) -> None:
        """One forward in eval mode (no dropout, no batch-norm update) to find the taps and
        draw the rule's feedback for them."""
        was_training = self.root.training
        self.root.eval()
        self._records, self._probing = [], True
        try:
            output = self.root(example)
            records = self._records
        finally:
            self._records, self._probing = None, False
            self.root.train(was_training)
        if not records:
            raise ValueError(no_taps(self.rule.name, "the example forward pass went through no "
                                     "tap"))
        self.materialise(records, output)

    def materialise(self, records: list[TapRecord], output: torch.Tensor) -> None:
        """Draw the rule's feedback for these taps (once), or check they are the same taps."""
        shapes = [tuple(r.point.shape[1:]) for r in records]
        if self.shapes is None:
            self.rule.validate_taps(records)
            self.rule.make_direct_state(self.root, shapes, math.prod(output.shape[1:]),
                                        self.generator, output)
            self.shapes = shapes
        elif shapes != self.shapes:
            raise StructureError(f"{self.rule.name}: this forward pass reached taps of shapes "
                                 f"{shapes}; the feedback was drawn for {self.shapes}")


def no_taps(rule: str, finding: str) -> str:
    """The message for a direct rule that finds no tap (``finding`` says where)."""
    return (f"{rule}: {finding}, so no hidden layer would learn ({rule} sends the output error "
            "to taps): place biocredit.Tap() after each hidden activation in the model's "
            "forward, or convert with taps=[names or module types, e.g. nn.ReLU]")


def _reaches_parameter(output: torch.Tensor, limit: int = 10_000) -> bool:
    """Whether ``output``'s autograd graph uses a parameter (or is too large to tell)."""
    stack, seen = [output.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if len(seen) > limit or isinstance(getattr(node, "variable", None), nn.Parameter):
            return True
        stack.extend(link for link, _ in node.next_functions)
    return False


def engine_of(model: nn.Module) -> DirectEngine | None:
    """The direct engine driving ``model``'s taps, if it was converted for a direct rule."""
    conversion = getattr(unwrap(model), "biocredit_conversion", None)
    return None if conversion is None else conversion.engine


def project(error: torch.Tensor, matrix: torch.Tensor, shapes) -> list[torch.Tensor]:
    """``[s_1 | … | s_k] = e B`` with ``B = [B_1ᵀ | … | B_kᵀ]`` (``C × Σ n_l``): every tap's
    signal from one matmul, reshaped to the tap's shape."""
    flat = error.flatten(1) @ matrix.to(error.dtype)      # (under autocast, e is bf16)
    sizes = [math.prod(s) for s in shapes]
    return [s.reshape(len(error), *shape) for s, shape in zip(flat.split(sizes, dim=1), shapes)]


def block_matrices(matrix: torch.Tensor, shapes) -> list[torch.Tensor]:
    """Views ``B_lᵀ`` (``C × n_l``) of the columns of ``matrix`` feeding each tap."""
    return list(matrix.split([math.prod(s) for s in shapes], dim=1))
