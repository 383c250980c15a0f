"""Fused feedback updates: every learned layer's ``B`` (and KP's ``W`` decay) in one pass.

The eager updates in :mod:`~biocredit.rules.kp` and :mod:`~biocredit.rules.sign_symmetry`
are the reference and the default: a few ``torch._foreach_*`` or per-layer passes over every
weight per step (KP: ``B·(1−λ)``, ``+εW``, ``−εW_before``, ``W −= λW_before``, the mask,
``W_before ← W``; sign symmetry: ``sign(W)`` into ``B``, ``·m``, the mask; brSF draws its
magnitudes with ``uniform_`` first).

The option ``fused=True`` of ``kp``, ``urfb``, ``usf``, ``frsf`` and ``brsf`` (set for
all of them by ``--compile``, see :func:`options_for_compile`) runs the same arithmetic as one
``torch.compile``'d function over the lists of weights, feedbacks and masks: Inductor makes
it one loop per layer that reads each tensor once and writes ``B`` (``W`` and ``W_before``)
once. It is compiled once per model (each model gets its own copy of the function, so
its own Dynamo cache; ``fullgraph=True``: no silent fallback to eager) and a failure to
compile is an error that says so, never a silent eager run.

How exact (``tests/test_fused_updates.py``):

* sign symmetry (``usf``, ``frsf``): ``sign(W) ⊙ m ⊙ mask`` has no rounding, so the fused
  ``B`` equals the eager one bit for bit (signed zeros included);
* KP, URFB: the same operations in the same order (``(B·(1−λ) + εW) − εW_before``, then
  ``W − λW_before``); eager's ``add_(…, alpha)`` may fuse its multiply-add (one rounding)
  where the compiled loop rounds twice, so the results agree to float rounding: within
  a few ulp of the values per step (the test allows ``1e-6`` relative in float32, ``1e-14``
  in float64);
* brSF: the magnitudes ``U(0, s)`` are drawn inside the kernel by
  :func:`counter_uniform`, a counter-based hash of each weight's index under two keys per
  layer and step (the keys drawn from torch's global generator, so a seeded run repeats): a
  different stream from eager's ``uniform_`` with the same distribution. The test checks
  the draw against the hash computed in plain Python integers, the bounds, the mean, that
  ``sign(B) = sign(W)`` and that two steps' draws are uncorrelated.
"""

from __future__ import annotations

import types
import weakref

import torch
from torch import nn

from .layer_feedback import learned_layers

# per model, per kind of update: its compiled function (dropped with the model)
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

FUSED_RULES = ("kp", "urfb", "usf", "frsf", "brsf")    # --compile fuses them unless told


def options_for_compile(name: str, options: dict, compile: bool) -> dict:
    """``options`` of rule ``name`` with ``fused=True`` added when the run is compiled
    (``compile``), the rule is one of :data:`FUSED_RULES` and was not given it."""
    if compile and name in FUSED_RULES and "fused" not in options:
        return {**options, "fused": True}
    return options


def _kp_body(feedback, weights, before, masks, owners, keep, epsilon, decay):
    """KP's update, the eager order: ``B ← ((B·keep + εW) − εW_before) ⊙ mask``;
    ``W ← W − λ W_before`` for the layers in ``owners`` (a tied weight decays once);
    ``W_before ← W``."""
    decayed = [(i, weights[i] - decay * before[i]) for i in owners]
    for b, w, wb, m in zip(feedback, weights, before, masks):
        new = b * keep if decay else b
        if epsilon:
            new = new + epsilon * w
            new = new - epsilon * wb
        if m is not None:
            new = new * m
        b.copy_(new)
    for i, w in decayed:
        weights[i].copy_(w)
    for wb, w in zip(before, weights):
        wb.copy_(w)


# counter_uniform's odd multipliers (as int32): the golden ratio's, then lowbias32's two
_MULTIPLIERS = (0x9E3779B1 - (1 << 32), 0x7FEB352D, 0x846CA68B - (1 << 32))


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``x >> bits`` of int32 ``x`` as unsigned (zeros shifted in, not the sign bit)."""
    return (x >> bits) & ((1 << (32 - bits)) - 1)


def _lowbias_round(x: torch.Tensor) -> torch.Tensor:
    """One round of Wellons' lowbias32 on int32 ``x``: ``x ^= x≫16; x ·= c₁; x ^= x≫15;
    x ·= c₂; x ^= x≫16`` (wrapping)."""
    _, c1, c2 = _MULTIPLIERS
    x = x ^ _shift_right(x, 16)
    x = x * c1
    x = x ^ _shift_right(x, 15)
    x = x * c2
    return x ^ _shift_right(x, 16)


def counter_uniform(like: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``U[0, 1)`` per element of ``like`` (its shape, dtype and device), from its flat
    index ``i`` and the two int32 ``keys`` ``(k₁, k₂)``, in wrapping 32-bit arithmetic:
    ``x = lowbias32(lowbias32(i·c₀ + k₁) ^ k₂)``, ``u = (x≫8)·2⁻²⁴`` (24 bits; rounded to
    ``like``'s dtype, so float16 and bfloat16 can round up to 1). The full round after
    ``k₂`` keeps two draws independent even where their ``k₁`` line their index streams
    up. Elementwise ops only: compiled, it is one vectorised loop with no generator state
    (brSF's redraw, 2-3 ms for 2.55 M weights on 2 AMD EPYC cores, against 12-16 ms for
    ``uniform_``)."""
    c0 = _MULTIPLIERS[0]
    x = torch.arange(like.numel(), dtype=torch.int32, device=like.device).view(like.shape)
    x = _lowbias_round(x * c0 + keys[0])
    x = _lowbias_round(x ^ keys[1])
    # (24-bit integers times 2⁻²⁴ are exact in float32; float16 could not hold them)
    return (_shift_right(x, 8).to(torch.float32) * 2.0 ** -24).to(like.dtype)


def _sign_body(feedback, weights, weight_masks, magnitudes, masks, keys):
    """Sign symmetry's update: ``B ← sign(W ⊙ M_W) ⊙ m ⊙ mask``; with ``keys`` (brSF, a
    ``(layers, 2)`` int32 tensor) ``m = U(0, 1) · s``, drawn here by
    :func:`counter_uniform`, with ``s`` the magnitude given."""
    for i, (b, w, wm, mag, m) in enumerate(zip(feedback, weights, weight_masks, magnitudes,
                                                masks)):
        effective = w if wm is None else w * wm
        if keys is not None:
            mag = counter_uniform(w, keys[i]) * mag
        new = torch.sign(effective) * mag
        if m is not None:
            new = new * m
        b.copy_(new)


def _own_copy(body):
    """``body`` with a code object of its own: Dynamo keeps its compiled versions per code
    object, so every model compiles its own once and never evicts another's."""
    return types.FunctionType(body.__code__.replace(), body.__globals__, body.__name__,
                              body.__defaults__, body.__closure__)


def compiled(net: nn.Module, kind: str, body):
    """``body`` compiled for ``net`` (once: cached per model and kind)."""
    per_model = _COMPILED.setdefault(net, {})
    if kind not in per_model:
        per_model[kind] = torch.compile(_own_copy(body), fullgraph=True, dynamic=False)
    return per_model[kind]


def run_compiled(rule, net: nn.Module, kind: str, body, *args) -> None:
    """Call ``body`` compiled for ``net``; a failure to compile (no C++ compiler, a Python
    that torch.compile does not support ...) is an error naming the way out."""
    fn = compiled(net, kind, body)
    try:
        with torch.no_grad():
            fn(*args)
    except Exception as err:    # noqa: BLE001 -- re-raised with the way out
        raise RuntimeError(
            f"{rule.name}: fused=True updates the feedback with a torch.compile'd kernel, "
            f"which failed here ({type(err).__name__}: {err}); pass fused=false (and leave "
            "out --compile) to update it eagerly") from err


def has_numbers(layers) -> bool:
    """Whether the layers' weights hold numbers (not on the ``meta`` device, where there
    is nothing to compute and the rules' eager update is the no-op)."""
    return bool(layers) and all(m.weight.device.type != "meta" for m in layers)


def kp_step(rule, net: nn.Module) -> bool:
    """KP's (and URFB's) ``after_step`` as one compiled pass (see :func:`_kp_body`);
    ``False``: nothing done (no layers, or ``meta`` weights), the eager update's to do."""
    decay, epsilon = rule.options["decay"], rule.options["epsilon"]
    layers = learned_layers(net)
    if not has_numbers(layers):
        return False
    if not decay and not epsilon:
        _refresh_before(layers)
        return True
    weights = [m.weight for m in layers]
    first: dict[int, int] = {}
    for i, w in enumerate(weights):
        first.setdefault(id(w), i)
    owners = tuple(first.values()) if decay else ()
    run_compiled(rule, net, f"kp:{decay!r}:{epsilon!r}", _kp_body,
                 [m.feedback for m in layers], weights,
                 [m.weight_before_step for m in layers],
                 [m.feedback_mask for m in layers], owners, 1.0 - decay, epsilon, decay)
    return True


@torch.no_grad()
def _refresh_before(layers) -> None:
    """``W_before ← W`` (nothing else changes when ``λ = ε = 0``)."""
    torch._foreach_copy_([m.weight_before_step for m in layers], [m.weight for m in layers])


def sign_step(rule, net: nn.Module) -> bool:
    """Sign symmetry's ``after_step`` as one compiled pass (see :func:`_sign_body`): the
    magnitudes are the rule's :meth:`fused_magnitude` (brSF: the spread of its redraw);
    ``False`` as :func:`kp_step`."""
    layers = learned_layers(net)
    if not has_numbers(layers):
        return False
    redraw = rule.redraws_magnitude
    keys = draw_keys(len(layers), layers[0].weight.device) if redraw else None
    run_compiled(rule, net, f"sign:{redraw}", _sign_body,
                 [m.feedback for m in layers], [m.weight for m in layers],
                 [m.weight_mask for m in layers],
                 [rule.fused_magnitude(m) for m in layers],
                 [m.feedback_mask for m in layers], keys)
    return True


def draw_keys(count: int, device: torch.device) -> torch.Tensor:
    """``count`` pairs of int32 keys for :func:`counter_uniform`, from torch's global
    generator (of ``device``'s kind)."""
    return torch.randint(-(1 << 31), 1 << 31, (count, 2), dtype=torch.int32, device=device)


__all__ = ["FUSED_RULES", "compiled", "counter_uniform", "draw_keys", "kp_step",
           "options_for_compile", "sign_step"]
