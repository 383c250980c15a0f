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
from .output_point import (OutputRecorder, Selector, carries_loss, first_tensor,
                           replace_output, select_output)


# The names of the buffers direct rules register on the model (make_direct_state).
DIRECT_STATE = ("direct_feedback", "neighbour_feedback_", "perturbation_seed")


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
    hands the rule the output itself, with its graph, if it ``needs_output``). The inputs
    after the ``points`` (``learned`` of them) are the rule's learned feedback, whose
    gradients the backward returns to autograd."""

    @staticmethod
    def forward(output, engine, records, learned, *points):
        return output.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        # (apart from forward, as torch.func's transforms require)
        output, engine, records, learned = inputs[:4]
        ctx.engine, ctx.records, ctx.target = engine, records, engine.target
        ctx.output = output if engine.rule.needs_output else None
        ctx.learned = learned

    @staticmethod
    def backward(ctx, error):
        engine, records = ctx.engine, ctx.records
        extra = {} if ctx.output is None else {"output": ctx.output}
        ctx.records = ctx.output = None
        learned = ()
        if ctx.learned:
            learned = engine.rule.feedback_gradients(engine.root, error, records)
        signals = engine.rule.hidden_signals(engine.root, error, records, ctx.target, **extra)
        return (error, None, None, None, *signals, *learned)


class DirectEngine:
    """Drives the taps of one converted model for a direct ``rule`` (see the module doc)."""

    def __init__(self, rule, root: nn.Module, generator: torch.Generator | None,
                 output: Selector = None, output_module: str | None = None):
        self.rule, self.root, self.generator = rule, root, generator
        # Where e is taken: ``selector`` picks the logits from what the root returns; they
        # are joined where ``point`` produces them ("": at the root; None: not found yet).
        self.selector, self.point = output, output_module
        self._recorder: OutputRecorder | None = None
        self._loaded: dict[str, torch.Tensor] = {}   # feedback loaded before it was drawn
        self.exact = False          # set by exact_gradients: taps pass everything through
        self.target = None          # the batch's labels, for rules that need them
        # Python objects the rule keeps for this model beside its buffers (DKP's feedback
        # optimizer, node perturbation's host copy of its counter); their state is in the
        # model's state_dict
        self.runtime: dict = {}
        self.shapes: list[tuple[int, ...]] | None = None   # per row (see materialise)
        self.positions: int | None = None   # position dims folded into rows (0: flat layout)
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
    def begin(self, module, args, kwargs=None) -> None:
        """Root forward pre-hook: start recording when a backward may follow."""
        if self._probing:
            return
        # A fresh record every time, so a forward that raised half-way leaves nothing behind.
        self._records = [] if not self.exact and torch.is_grad_enabled() else None
        if self.point is None and self._records is not None and self._recorder is None:
            self._recorder = OutputRecorder(self.root)    # find the logits' producer
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

    def end(self, module, args, kwargs, output):
        """Root forward hook: join the recorded taps to the output's logits (unless the
        module producing them joined them already)."""
        records = self._records
        if self._probing or records is None:
            return output
        if self.point is None:
            self.find_point(output)
            if self.point and carries_loss(output):
                # The loss inside forward missed e: run this first forward again, now
                # joined where the logits are made (once in the model's life).
                self._records = None
                return self.root(*args, **kwargs)
        elif self.point:
            self._records = None
            raise StructureError(f"{self.rule.name}: the forward pass did not run "
                                 f"{self.point!r}, the module whose output is the error point")
        logits = select_output(output, self.selector, self.rule.name)
        joined = self.join(logits)
        new = replace_output(output, self.selector, logits, joined)
        if new is None:
            raise TypeError(f"{self.rule.name}: output= picks a tensor made by no module, so "
                            "there is no place to take its error: name the module producing "
                            "the logits with output_module=")
        return new

    def capture(self, module, args, output):
        """Forward hook of the module producing the logits: join the taps to them there, so
        a loss computed inside the model's ``forward`` gets ``e`` too."""
        if self._probing or self._records is None:
            return output
        logits = first_tensor(output)
        if logits is None:
            raise TypeError(f"{self.rule.name}: {self.point!r} returns no tensor to take the "
                            f"output error at; got {type(output).__name__}")
        joined = self.join(logits)
        return joined if output is logits else replace_output(output, None, logits, joined)

    def find_point(self, output) -> None:
        """After the first recorded forward: where the logits are made (the root, or the
        innermost module returning them), hooked there for every later pass."""
        recorder, self._recorder = self._recorder, None
        name = None
        if not (isinstance(output, torch.Tensor) and self.selector is None):
            name = recorder.producer(select_output(output, self.selector, self.rule.name))
        recorder.remove()
        self.point = name or ""
        if name:
            self.root.get_submodule(name).register_forward_hook(self.capture)

    def join(self, output: torch.Tensor) -> torch.Tensor:
        """``output`` through :class:`JoinFunction`, the recorded taps hanging from it (a
        ``(B,)`` output is taken as ``(B, 1)``)."""
        records, self._records = self._records, None
        if not records and self._frozen_taps:     # every layer below the taps is frozen
            return output
        if not records:
            raise StructureError(no_taps(self.rule.name, "the forward pass went through no tap"))
        column = output.dim() == 1
        if column:
            output = output.unsqueeze(1)
        if not self._output_checked:
            self.check_output_layer(output)
        self.materialise(records, output)
        if self.rule.local_input_grad:
            self._input_grad = tuple(self.rule.input_grad_needed(records))   # the next forward's
        learned = self.rule.learned_feedback(self.root)
        joined = JoinFunction.apply(output, self, records, len(learned),
                                    *self.rule.injection_points(records), *learned)
        return joined.squeeze(1) if column else joined

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
    def probe(self, example) -> None:
        """One forward of ``example`` (a batch, or a dict of keyword arguments) in eval mode
        (no dropout, no batch-norm update) to find the taps and the logits' producer and
        draw the rule's feedback for them."""
        was_training = self.root.training
        self.root.eval()
        self._records, self._probing = [], True
        if self.point is None:
            self._recorder = OutputRecorder(self.root)
        try:
            output = self.root(**example) if isinstance(example, dict) else self.root(example)
            records = self._records
        finally:
            self._records, self._probing = None, False
            self.root.train(was_training)
        if not records:
            raise ValueError(no_taps(self.rule.name, "the example forward pass went through no "
                                     "tap"))
        if self.point is None:
            self.find_point(output)
        logits = select_output(output, self.selector, self.rule.name)
        self.materialise(records, logits.unsqueeze(1) if logits.dim() == 1 else logits)

    def load_pre_hook(self, module, state_dict, prefix, *args) -> None:
        """Before ``load_state_dict``: feedback in ``state_dict`` that was not drawn yet (no
        forward pass since the conversion) becomes buffers of its shapes now, and the first
        forward pass keeps these values instead of drawing."""
        if self.shapes is not None:
            return
        own = set(self.root.state_dict(keep_vars=True))
        for key, value in state_dict.items():
            name = key[len(prefix):]
            if key.startswith(prefix) and "." not in name and name not in own and \
                    name.startswith(DIRECT_STATE) and isinstance(value, torch.Tensor):
                self.root.register_buffer(name, torch.empty_like(value))
                self._loaded[name] = getattr(self.root, name)

    def materialise(self, records: list[TapRecord], output: torch.Tensor) -> None:
        """Draw the rule's feedback for these taps (once), or check they are the same taps.
        The feedback is drawn per row: per example, or per position where the layout is
        ``position`` (:func:`position_dims`); ``shapes`` are the taps' shapes per row."""
        points = [r.point.shape for r in records]
        if self.positions is None:
            positions = position_dims(self.rule.options.get("layout", "flat"), output.shape,
                                      points, self.rule.name)
        else:
            positions = self.positions
            check_positions(positions, output.shape, points, self.rule.name)
        shapes = [tuple(p[1 + positions:]) for p in points]
        if self.shapes is None:
            self.rule.validate_taps(records)
            self.rule.make_direct_state(self.root, shapes,
                                        math.prod(output.shape[1 + positions:]),
                                        self.generator, output)
            self.restore_loaded()
            self.shapes, self.positions = shapes, positions
        elif shapes != self.shapes:
            hint = "" if positions or output.dim() < 3 else (
                " (the flat layout fixes the positions: layout='position' projects each "
                "position's error on its own, for any number of positions)")
            raise StructureError(f"{self.rule.name}: this forward pass reached taps of shapes "
                                 f"{shapes}; the feedback was drawn for {self.shapes}{hint}")


    @torch.no_grad()
    def restore_loaded(self) -> None:
        """Put the feedback loaded before the first draw back in place of the draw."""
        loaded, self._loaded = self._loaded, {}
        for name, value in loaded.items():
            current = getattr(self.root, name, None)
            if not isinstance(current, torch.Tensor) or current.shape != value.shape:
                raise StructureError(f"{self.rule.name}: the loaded {name} has shape "
                                     f"{tuple(value.shape)}; this model's taps need "
                                     f"{None if current is None else tuple(current.shape)}")
            current.copy_(value)


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


LAYOUTS = ("auto", "position", "flat")


def position_dims(layout: str, output: torch.Size, points: list[torch.Size], rule: str) -> int:
    """How many dims after the batch the direct feedback treats as positions: ``p`` for an
    output ``(N, *P, C)`` with every tap ``(N, *P, d_l)``, ``p = len(P) ≥ 1``, in the
    ``position`` layout (each position's error projected on its own by one ``C × d_l``
    matrix); 0 in the ``flat`` layout (the whole example's error, ``∏P·C``, by one
    ``∏P·C × ∏P·d_l`` matrix). ``auto``: ``position`` where the shapes share positions."""
    if layout not in LAYOUTS:
        raise ValueError(f"{rule}: layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    p = len(output) - 2
    shared = p > 0 and all(len(s) == len(output) and s[:-1] == output[:-1] for s in points)
    if layout == "flat" or (layout == "auto" and not shared):
        return 0
    if not shared:
        raise ValueError(
            f"{rule}: layout='position' needs an output (N, *positions, C) of at least 3 dims "
            "and every tap (N, *positions, d) with the same leading dims (the channels last); "
            f"got output {tuple(output)} and taps {[tuple(s) for s in points]}: use "
            "layout='flat' (or 'auto'), or move the channels of the output and taps last")
    return p


def check_positions(positions: int, output: torch.Size, points: list[torch.Size],
                    rule: str) -> None:
    """A later forward pass of a ``position`` layout must keep the taps' positions the
    output's (their number may change: any sequence length)."""
    lead = tuple(output[:1 + positions])
    if positions and (len(output) != positions + 2 or
                      any(len(s) != 2 + positions or tuple(s[:1 + positions]) != lead
                          for s in points)):
        raise StructureError(
            f"{rule}: the direct feedback is per position (the output's and taps' first "
            f"{1 + positions} dims); this forward pass gave output {tuple(output)} and taps "
            f"{[tuple(s) for s in points]}, whose leading dims differ")


def as_rows(x: torch.Tensor, positions: int = 0) -> torch.Tensor:
    """``x`` as the rows the direct feedback multiplies: ``(N, n)`` per example, or with
    ``positions`` ``(N·∏P, d)`` per example and position."""
    return x.flatten(1) if not positions else x.flatten(0, positions).flatten(1)


def positions_of(root: nn.Module) -> int:
    """The position dims of ``root``'s direct feedback (0: flat layout, or not drawn yet)."""
    engine = engine_of(root)
    return (engine.positions or 0) if engine is not None else 0


def project(error: torch.Tensor, matrix: torch.Tensor, shapes,
            positions: int = 0) -> list[torch.Tensor]:
    """``[s_1 | … | s_k] = e B`` with ``B = [B_1ᵀ | … | B_kᵀ]`` (``C × Σ n_l``): every tap's
    signal from one matmul, reshaped to the tap's shape. With ``positions = p`` (an error
    ``(N, *P, C)``, ``shapes`` per position ``(d_l,)``) every position gets its own error's
    projection through the shared ``B``: ``s_{l,t} = e_t B_lᵀ``, the batch and positions
    folded into the matmul's rows."""
    flat = as_rows(error, positions) @ matrix.to(error.dtype)   # (under autocast, e is bf16)
    sizes = [math.prod(s) for s in shapes]
    lead = error.shape[:1 + positions]
    return [s.reshape(*lead, *shape) for s, shape in zip(flat.split(sizes, dim=1), shapes)]


def block_matrices(matrix: torch.Tensor, shapes) -> list[torch.Tensor]:
    """Views ``B_lᵀ`` (``C × n_l``) of the columns of ``matrix`` feeding each tap."""
    return list(matrix.split([math.prod(s) for s in shapes], dim=1))
