"""IFA: indirect feedback alignment (Nøkland 2016)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import project
from ..layers.direct import StructureError, positions_of
from .dfa import DirectFeedbackAlignment


class IndirectFeedbackAlignment(DirectFeedbackAlignment):
    """``δa_1 = (B_1 e) ⊙ f'(a_1)``; for ``l > 1``: ``δa_l = (W_l δa_{l-1}) ⊙ f'(a_l)``.

    The error enters the first tap through a fixed random ``B_1`` (``U(±1/√C)`` by default)
    and travels *forward* through the forward weights: ``W_l δa_{l-1}`` is the Jacobian-vector
    product of the local graph from tap ``l−1`` to the weight layer's output ``a_l`` (in conv
    nets it also passes the pooling and dropout between them at this forward pass: the
    max-pool's chosen units, the dropout's mask), and ``⊙ f'(a_l)`` is the backward of the
    steps between the layer and its activation (batch norm included). ``δa_l`` enters
    autograd at ``a_l`` (:meth:`injection_points`). Taps with a residual sum between them are
    refused: the skip path has no forward-signal rule. In the position layout (see DFA's
    ``layout``) ``B_1`` is ``d_1 × C`` and tap 1 gets ``B_1 e_t`` at every position ``t``; the
    forward products are the model's own, so layers that mix positions carry it between them
    (where their graph can be differentiated twice; a fused attention kernel cannot).
    """

    name = "ifa"
    summary = "indirect feedback alignment: error to the first layer, then forward"
    local_input_grad = True
    needs_preactivation = True
    compiles = False

    def direct_shapes(self, shapes):
        return shapes[:1]

    @classmethod
    def floor_macs(cls, macs, tap_widths, outputs):
        """``ΣF + ΣF + C·n_1 + Σ_{2≤l<L} F_l``: the first tap's projection, carried
        forward."""
        return 2 * sum(macs) + outputs * tap_widths[0] + sum(macs[1:-1])

    def validate_taps(self, records):
        if any(r.skip for r in records):
            raise ValueError("IFA sends its signal forward through the weight layers; it is "
                             "not defined for residual (SUM) blocks")
        if any(r.preactivation is None for r in records):
            raise ValueError("IFA needs a weight layer before every tap")
        odd = [(i, r) for i, r in enumerate(records) if r.activation.shape != r.preactivation.shape]
        if len(records) > 1 and odd:
            i, r = odd[0]
            raise ValueError(
                f"IFA carries its signal forward from each layer's activation, and tap {i + 1} "
                f"gets a tensor of shape {tuple(r.activation.shape[1:])} from a weight layer "
                f"output of shape {tuple(r.preactivation.shape[1:])} with no activation module "
                "(nn.Tanh, nn.ReLU, ...) between them to say where the activation is; place "
                "the tap right after the activation, or call it as Tap()(h, activation=z)")

    def input_grad_needed(self, records):
        """A tap's output needs a graph only where the next layer takes something else than
        that output itself (or a reshaped view of it): the signal then goes forward through
        the recorded steps between them (:func:`weight_times`). Elsewhere no layer computes
        an input gradient IFA would not use; the last tap's output never needs one."""
        return [reshaped_input(after) is None for after in records[1:]] + [False]

    def injection_points(self, records):
        """Where ``δa_l`` is wanted: at ``a_l`` itself, with the parameters between ``a_l``
        and the tap (batch norm's) receiving their gradients beside it, so the backward of
        those steps runs once (here) and not again in ``loss.backward()``. Where something
        else lies on that way, the signal enters at the tap (``B_1 e``) or the activation
        (``W_l δa_{l-1}``) and autograd repeats those steps."""
        points = []
        for first, record in zip([True] + [False] * (len(records) - 1), records):
            entry = record.point if first else record.activation
            record.between = parameters_between(entry, record.preactivation)
            points += [entry] if record.between is None else \
                [record.preactivation, *record.between]
        return points

    def hidden_signals(self, root, error, records, target):
        """``B_1 e`` at tap 1's point and ``W_l δa_{l-1}`` at tap ``l``'s activation, taken
        back to ``δa_l`` (see :meth:`injection_points`)."""
        p = positions_of(root)
        (signal,) = project(error, root.direct_feedback,
                            [tuple(records[0].point.shape[1 + p:])], p)
        signals: list[torch.Tensor] = []
        with torch.enable_grad():
            delta = back_to_preactivation(records[0], records[0].point, signal, signals)
            for below, record in zip(records, records[1:]):
                tangent = forward_jvp(below.point, below.activation, delta)
                signal = weight_times(record, tangent)                         # W_l δa_{l-1}
                delta = back_to_preactivation(record, record.activation, signal, signals)
        return signals


def back_to_preactivation(record, entry: torch.Tensor, signal: torch.Tensor,
                          signals: list[torch.Tensor]) -> torch.Tensor:
    """``δa_l``: the backward of the steps from ``a_l`` to ``entry`` applied to ``signal``
    (``⊙ f'(a_l)``, through pooling and batch norm). Appends what the injection points
    receive: ``δa_l`` and the gradients of the parameters between, or ``signal`` at
    ``entry``."""
    between = record.between
    grads = torch.autograd.grad(entry, [record.preactivation, *(between or ())], signal,
                                retain_graph=True)
    signals.extend([signal] if between is None else grads)
    return grads[0]


def parameters_between(output: torch.Tensor, input: torch.Tensor) -> list[torch.Tensor] | None:
    """The parameters the graph from ``input`` to ``output`` uses (batch norm's ``γ``,
    ``β``), when every way back from ``output`` ends at ``input`` or at a parameter;
    ``None`` otherwise (or when the graph is larger than a few steps)."""
    end, start = input.grad_fn, output.grad_fn
    if end is None or start is None:
        return None
    stack, seen, found = [start], set(), []
    while stack:
        node = stack.pop()
        if node is None or node is end or node in seen:
            continue
        seen.add(node)
        if len(seen) > 64:
            return None
        if type(node).__name__ == "AccumulateGrad":
            if not isinstance(node.variable, nn.Parameter):
                return None
            found.append(node.variable)
            continue
        stack.extend(link for link, _ in node.next_functions)
    return found


def weight_times(record, tangent: torch.Tensor) -> torch.Tensor:
    """``W_l · tangent``: the Jacobian of the local graph from the previous tap to ``a_l``.
    When ``a_l`` is a linear layer's or a convolution's output, that is the layer's own map
    without its bias (one matmul, one convolution, with the layer's padding) applied to the
    tangent carried to the layer's input (:func:`reshaped_input`, else :func:`forward_jvp`);
    otherwise :func:`forward_jvp` of the whole local graph."""
    layer, layer_input = record.layer or (None, None)
    if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        shape = reshaped_input(record)
        if shape is not None:
            tangent = tangent.reshape(shape)
        elif record.input.requires_grad:
            tangent = forward_jvp(layer_input, record.input, tangent)
        else:
            layer = None
        if layer is not None:
            weight = layer.effective_weight() if hasattr(layer, "effective_weight") else \
                layer.weight
            weight = weight.detach().to(tangent.dtype)
            if isinstance(layer, nn.Linear):
                return F.linear(tangent, weight)
            return layer._conv_forward(tangent, weight, None)  # nn.Conv*d's, padding modes too
    if not record.input.requires_grad:
        raise StructureError("IFA: the layers between two taps changed between training steps "
                             "(a linear layer on the previous tap's output before, something "
                             "else now); IFA needs the same structure at every step")
    return forward_jvp(record.preactivation, record.input, tangent)


def reshaped_input(record) -> torch.Size | None:
    """The shape of ``a_l``'s weight layer's input when that input is the previous tap's
    output itself or a reshaped view of its memory (a flatten), so the tangent is reshaped
    the same way; ``None`` otherwise."""
    layer, layer_input = record.layer or (None, None)
    previous = record.input
    if layer is None or previous is None:
        return None
    if layer_input is previous or (
            layer_input.data_ptr() == previous.data_ptr() and
            layer_input.numel() == previous.numel() and
            layer_input.is_contiguous() and previous.is_contiguous()):
        return layer_input.shape
    return None


def forward_jvp(output: torch.Tensor, input: torch.Tensor, tangent: torch.Tensor) -> torch.Tensor:
    """``J · tangent`` for the Jacobian ``J = ∂output/∂input`` of the recorded graph at this
    forward pass, so max-pooling keeps the units it chose and dropout the mask it drew: step
    by step along the graph where every step between them is a padding, a max-pool, a product
    with a constant (dropout's mask) or a trailing reshape (:func:`chain_jvp`), otherwise as
    the transpose of the transpose (two reverse-mode calls)."""
    if output is input:
        return tangent
    out = chain_jvp(output, input, tangent)
    if out is not None:
        return out
    probe = torch.zeros_like(output, requires_grad=True)
    try:
        (vjp,) = torch.autograd.grad(output, input, probe, create_graph=True)
        (out,) = torch.autograd.grad(vjp, probe, tangent, retain_graph=True)
    except RuntimeError as err:
        raise ValueError("IFA carries its signal forward through the layers between taps and "
                         f"cannot through this model's ({str(err).splitlines()[0]})") from None
    return out


_RESHAPES = {"ViewBackward0", "ReshapeAliasBackward0", "UnsafeViewBackward0"}


def chain_jvp(output: torch.Tensor, input: torch.Tensor,
              tangent: torch.Tensor) -> torch.Tensor | None:
    """``J · tangent`` from the autograd nodes between ``input`` and ``output`` when they
    form a chain of steps whose forward derivative the graph's saved tensors give directly:
    zero padding (pad the tangent), max-pooling (gather the tangent at the chosen units),
    multiplication by a tensor outside the graph (dropout's scaled mask: multiply),
    ``native_dropout`` (mask times ``1/(1-p)``) and reshapes after the last of them.
    ``None`` for anything else."""
    end = input.grad_fn
    node, steps, tail_reshape = output.grad_fn, [], False
    for _ in range(32):
        if node is None:
            return None
        if node is end or (end is None and getattr(node, "variable", None) is input):
            break
        links = [(n, i) for i, (n, _) in enumerate(node.next_functions) if n is not None]
        if len(links) != 1:
            return None
        kind = type(node).__name__
        if kind in _RESHAPES:
            if steps:                        # a reshape between two steps: not handled
                return None
            tail_reshape = True
        elif kind in ("ConstantPadNdBackward0", "MaxPool2DWithIndicesBackward0",
                      "NativeDropoutBackward0") or (kind == "MulBackward0"):
            steps.append((kind, node, links[0][1]))
        else:
            return None
        node = links[0][0]
    else:
        return None
    out = tangent
    for kind, node, slot in reversed(steps):
        if kind == "ConstantPadNdBackward0":
            out = F.pad(out, list(node._saved_pad))
        elif kind == "MaxPool2DWithIndicesBackward0":
            chosen = node._saved_result1
            out = out.flatten(-2).gather(-1, chosen.flatten(-2)).view(chosen.shape)
        elif kind == "NativeDropoutBackward0":
            p = node._saved_p
            out = out * node._saved_result1 * (0.0 if p == 1 else 1 / (1 - p))
        else:                                # x · c with c outside the graph
            out = out * (node._saved_other if slot == 0 else node._saved_self)
    if tail_reshape:
        return out.reshape(output.shape)
    return out if out.shape == output.shape else None
