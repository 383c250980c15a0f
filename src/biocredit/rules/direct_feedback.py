"""The direct-feedback mechanism (DFA, DKP, IFA, the general rule, shallow learning, node
perturbation): taps cut the graph and each receives a signal made from the output error."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..layers import TapRecord
from ..layers.direct import DirectEngine
from ..layers.tap_placement import place_taps
from .base import FeedbackRule


class DirectFeedbackRule(FeedbackRule):
    """Taps cut the graph; on ``loss.backward()`` each receives :meth:`hidden_signals`, made
    from the output error, and autograd turns it into the local weight gradients (see
    :mod:`biocredit.layers.direct`).

    :meth:`install` leaves every layer as it is: the model's :class:`~biocredit.layers.Tap`
    markers (or taps placed by ``taps=``) are driven by a
    :class:`~biocredit.layers.direct.DirectEngine`, and the rule's feedback (what
    :meth:`make_direct_state` registers) is buffers of the model itself.
    """

    direct = True
    local_input_grad: ClassVar[bool] = False      # taps' outputs require grad (IFA's JVP)
    needs_preactivation: ClassVar[bool] = False   # records a_l at every tap
    needs_output: ClassVar[bool] = False          # hidden_signals also gets output= (its graph)

    def install(self, root, conversion, *, taps=None, exclude=(), skip=(),
                unsupported="error", generator=None, example_input=None, output=None,
                output_module=None):
        """Drive ``root``'s taps with a :class:`DirectEngine` taking ``e`` at the logits
        (``output``: a field name or function picking them from what the model returns;
        ``output_module``: the module producing them; default: found at the first forward)
        and, given an example batch (``example_input``, else the model's
        ``example_input()`` if it has one), draw the feedback now; otherwise the first
        forward pass draws it."""
        if output_module is not None:
            root.get_submodule(output_module)       # a clear error for a wrong name
        engine = DirectEngine(self, root, generator, output, output_module)
        conversion.engine = engine
        conversion.taps = place_taps(root, engine, taps)
        if example_input is None and hasattr(root, "example_input"):
            example_input = root.example_input()
        if example_input is not None:
            engine.probe(example_input)

    def direct_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """Which taps get a direct projection of ``e`` (default: all of them)."""
        return shapes

    def input_grad_needed(self, records: list[TapRecord]) -> list[bool]:
        """With ``local_input_grad``: whether each tap's output must require grad in the
        next training forward, judged from this one's ``records`` (default: every tap's)."""
        return [True] * len(records)

    def validate_taps(self, records: list[TapRecord]) -> None:
        """Refuse tap layouts the rule is not defined for (called once, at the first draw)."""

    def make_direct_state(self, root: nn.Module, shapes, num_outputs: int,
                          generator: torch.Generator | None, like: torch.Tensor) -> None:
        """Draw the rule's feedback for the taps (per-example ``shapes``, in tap order) into
        buffers of ``root``: the rule's whole per-model state, declared here; ``like`` gives
        dtype and device."""
        raise NotImplementedError

    def injection_points(self, records: list[TapRecord]) -> list[torch.Tensor]:
        """The tensors that receive :meth:`hidden_signals` (default: the tap points)."""
        return [r.point for r in records]

    def learned_feedback(self, root: nn.Module) -> list[torch.Tensor]:
        """The feedback tensors that learn from the backward pass (default: none): leaf
        tensors requiring grad, which :class:`~biocredit.layers.direct.JoinFunction` takes
        as inputs, so that autograd accumulates :meth:`feedback_gradients` into their
        ``.grad`` (under ``torch.compile`` inside the traced backward)."""
        return []

    def feedback_gradients(self, root: nn.Module, error: torch.Tensor,
                           records: list[TapRecord]) -> list[torch.Tensor]:
        """The gradient of each of :meth:`learned_feedback` from this backward pass."""
        return []

    def hidden_signals(self, root: nn.Module, error: torch.Tensor,
                       records: list[TapRecord], target) -> list[torch.Tensor]:
        """The gradient to inject at each of :meth:`injection_points`, from the output
        error ``e`` (called inside the backward pass, once per ``loss.backward()``). Rules
        with ``needs_output`` also get ``output=``, the model output with its graph."""
        raise NotImplementedError
