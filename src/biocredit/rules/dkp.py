"""DKP: direct Kolen-Pollack, DFA with learned direct feedback (Webster et al.)."""

from __future__ import annotations

import torch

from .. import distributed
from ..optimizers import OPTIMIZERS, make_optimizer
from ..layers.direct import as_rows, engine_of, positions_of
from .base import FEEDBACK_OPTIONS, FEEDBACK_RANGES
from .dfa import LAYOUT_RANGE, DirectFeedbackAlignment


class DirectKolenPollack(DirectFeedbackAlignment):
    """``δa_l = (B_l e) ⊙ f'(a_l)`` as DFA, with ``B_l`` learned like the weight of a direct
    read-out from ``h_l`` to the output: its gradient is ``e h_lᵀ`` (summed over the batch, in
    the stored ``C × n_l`` layout, i.e. ``B_l``'s transpose), all taps in one matmul. In the
    position layout (see DFA's ``layout``) the read-out is per position and its gradient
    sums over the batch and the positions: ``Σ_{n,t} e_{n,t} h_{l,n,t}ᵀ`` (``C × d_l``).

    ``B`` (the root buffer ``direct_feedback``) is stepped by its own optimizer
    (``feedback_optimizer``, ``feedback_lr``, ``feedback_momentum``, ``feedback_decay`` as
    weight decay) in :meth:`after_step`, apart from the forward weights' optimizer, and its
    learning rate is multiplied by ``feedback_lr_decay`` after every epoch (the authors' step
    schedule uses 0.8). The gradient reaches ``direct_feedback.grad`` through autograd (see
    :meth:`learned_feedback`; so ``loss.backward(inputs=...)`` without it, like
    ``torch.autograd.grad``, leaves it alone, and torch.func's transforms are refused) and
    waits there until then; under
    ``torch.distributed`` it is first averaged over the ranks, as DDP does for weights. The
    feedback optimizer's state (its moments and current learning rate) is part of the
    model's ``state_dict``, as ``direct_feedback_optimizer.*``, so a checkpoint resumes it.
    """

    name = "dkp"
    summary = "direct Kolen-Pollack: DFA whose feedback learns like a direct read-out"
    defaults = {**FEEDBACK_OPTIONS, "feedback_optimizer": "adam", "feedback_lr": 1e-3,
                "feedback_momentum": 0.0, "feedback_decay": 1e-4, "feedback_lr_decay": 1.0,
                "layout": "auto"}
    option_ranges = {
        **FEEDBACK_RANGES, **LAYOUT_RANGE,
        "feedback_optimizer": (lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
        "feedback_lr": (lambda v: v >= 0, ">= 0 (the feedback's learning rate)"),
        "feedback_momentum": (lambda v: 0 <= v < 1, "in [0, 1) (sgd and rmsprop's momentum)"),
        "feedback_decay": (lambda v: v >= 0, ">= 0 (the feedback's weight decay)"),
        "feedback_lr_decay": (lambda v: v >= 0,
                              ">= 0 (the factor on feedback_lr after every epoch)"),
    }

    @classmethod
    def floor_macs(cls, macs, tap_widths, outputs):
        """DFA's, plus ``C·Σn_l`` for the feedback's gradient ``e hᵀ``."""
        return 2 * sum(macs) + 2 * outputs * sum(tap_widths)

    def prepare(self, net, generator):
        """The feedback optimizer's state (kept in the engine's ``runtime``) goes into the
        model's ``state_dict`` as ``direct_feedback_optimizer.*``, and back on load."""
        net.register_state_dict_post_hook(_save_optimizer_state)
        net.register_load_state_dict_pre_hook(_load_optimizer_state)

    def make_direct_state(self, root, shapes, num_outputs, generator, like):
        """DFA's draw, and the gradient leaf on it (see :meth:`learned_feedback`) made now,
        so that a compiled forward only looks it up."""
        super().make_direct_state(root, shapes, num_outputs, generator, like)
        self.learned_feedback(root)

    def learned_feedback(self, root):
        """A leaf that shares ``direct_feedback``'s memory and requires grad (the buffer
        itself never does): autograd accumulates ``Σ e hᵀ`` into the leaf's ``.grad`` and a
        hook moves it onto ``direct_feedback.grad`` (adding to what waits there), so the
        gradient leaves the backward through autograd (a traced backward under
        ``torch.compile``), not by a side effect inside it. Made again when the buffer was
        replaced (``.to()``) and in a copy of the model (``copy.deepcopy``, pickling)."""
        if not torch.compiler.is_compiling() and \
                torch._C._functorch.peek_interpreter_stack() is not None:
            raise ValueError(
                "dkp: a torch.func transform (grad, vjp, vmap ...) returns gradients for the "
                "tensors it is given only, and DKP's feedback, a buffer, learns from "
                "loss.backward(): under torch.func it would silently train as DFA. Train "
                "DKP with loss.backward(), or use dfa")
        feedback, runtime = root.direct_feedback, engine_of(root).runtime
        slot = runtime.get("feedback_leaf")
        if slot is None or slot.feedback is not feedback:
            slot = _gradient_leaf(feedback, runtime)
        return [slot.leaf]

    def feedback_gradients(self, root, error, records):
        """``Σ e hᵀ`` over the batch (and positions), all taps in one matmul, masked."""
        feedback, p = root.direct_feedback, positions_of(root)
        h = torch.cat([as_rows(r.point.detach(), p) for r in records], dim=1)
        grad = (as_rows(error, p).t() @ h.to(error.dtype)).to(feedback.dtype)
        if root.direct_feedback_mask is not None:
            grad = grad * root.direct_feedback_mask
        return [grad]

    @torch.no_grad()
    def after_step(self, net):
        feedback = net.direct_feedback
        if feedback.grad is not None:
            distributed.average_(feedback.grad)      # every rank's e hᵀ: the global batch's
        feedback_optimizer(net).step()
        feedback.grad = None
        if net.direct_feedback_mask is not None:
            feedback.mul_(net.direct_feedback_mask)

    def after_epoch(self, net):
        for group in feedback_optimizer(net).param_groups:
            group["lr"] *= self.options["feedback_lr_decay"]


class GradientLeaf:
    """DKP's leaf on the feedback buffer (``leaf``) and the buffer it belongs to
    (``feedback``); a copy of it is empty, so a copied model makes its own."""

    __slots__ = ("leaf", "feedback")

    def __init__(self, leaf: torch.Tensor | None = None, feedback: torch.Tensor | None = None):
        self.leaf, self.feedback = leaf, feedback

    def __reduce__(self):
        return (GradientLeaf, ())


@torch.compiler.disable(reason=(
    "dkp makes its feedback's gradient leaf eagerly, once per feedback buffer; the buffer "
    "was replaced (.to(), .cuda(), .double(), load_state_dict(assign=True)) since the last "
    "forward pass: run one training forward pass without torch.compile (or compile "
    "without fullgraph=True) after moving the model"))
def _gradient_leaf(feedback: torch.Tensor, runtime: dict) -> GradientLeaf:
    """A leaf requiring grad on ``feedback``'s memory whose accumulated gradient a hook
    moves onto ``feedback.grad``; kept in ``runtime`` (made once per buffer, eagerly: the
    compiled forward traces only the lookup)."""
    leaf = feedback.detach().requires_grad_()

    def hand_over(tensor):
        grad, tensor.grad = tensor.grad, None            # the buffer's .grad is the one kept
        feedback.grad = grad if feedback.grad is None else feedback.grad + grad
    leaf.register_post_accumulate_grad_hook(hand_over)
    runtime["feedback_leaf"] = slot = GradientLeaf(leaf, feedback)
    return slot


def feedback_optimizer(net) -> torch.optim.Optimizer:
    """The optimizer of ``net``'s learned direct feedback (kept in the model's engine, its
    state saved in the model's ``state_dict``), made on first use; after the model moved
    (``.to()`` replaces buffers) it follows the new tensor, keeping its state."""
    engine = engine_of(net)
    rule, matrix = engine.rule, net.direct_feedback
    optimizer = engine.runtime.get("feedback_optimizer")
    if optimizer is None:
        o = rule.options
        optimizer = make_optimizer(o["feedback_optimizer"], [matrix], o["feedback_lr"],
                                   o["feedback_momentum"], o["feedback_decay"])
        engine.runtime["feedback_optimizer"] = optimizer
    else:
        old = optimizer.param_groups[0]["params"][0]
        if old is not matrix:
            state = optimizer.state.pop(old, {})
            optimizer.param_groups[0]["params"][0] = matrix
            optimizer.state[matrix] = {
                k: v.to(device=matrix.device, dtype=matrix.dtype)
                if torch.is_tensor(v) and k != "step" else v for k, v in state.items()}
    return optimizer


PREFIX = "direct_feedback_optimizer."


def _save_optimizer_state(module, state_dict, prefix, local_metadata) -> None:
    optimizer = engine_of(module).runtime.get("feedback_optimizer")
    if optimizer is None:
        return
    matrix = optimizer.param_groups[0]["params"][0]
    for key, value in optimizer.state.get(matrix, {}).items():
        state_dict[prefix + PREFIX + key] = value if torch.is_tensor(value) else \
            torch.tensor(value)
    state_dict[prefix + PREFIX + "lr"] = torch.tensor(optimizer.param_groups[0]["lr"],
                                                      dtype=torch.float64)


def _load_optimizer_state(module, state_dict, prefix, local_metadata, strict, missing_keys,
                          unexpected_keys, error_msgs) -> None:
    saved = {k[len(prefix + PREFIX):]: state_dict.pop(k) for k in list(state_dict)
             if k.startswith(prefix + PREFIX)}
    if not saved:
        return
    optimizer = feedback_optimizer(module)
    optimizer.param_groups[0]["lr"] = saved.pop("lr").item()
    matrix = optimizer.param_groups[0]["params"][0]
    optimizer.state[matrix] = {k: v.clone() if k == "step" else v.to(matrix).clone()
                               for k, v in saved.items()}
