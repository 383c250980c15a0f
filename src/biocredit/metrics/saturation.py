"""How many units of a bounded activation sit where its derivative is (nearly) zero.

A saturated unit passes (almost) no teaching signal down: ``δa = δh ⊙ f'(a)`` with
``f'(a) ≈ 0``. The criterion depends on the activation:

* tanh: ``|tanh(a)| > 1 − tolerance`` (default ``|h| > 0.99``, where ``f' < 0.02``);
* logistic: ``σ(a) < tolerance`` or ``σ(a) > 1 − tolerance`` (default outside ``[0.01, 0.99]``);
* Amit's saturated linearity (:class:`~biocredit.layers.SaturatedLinear`):
  ``|a| > 1``, where ``σ' = 0`` exactly; ``nn.Hardtanh``: ``a`` outside ``[min_val, max_val]``.

Unbounded activations (ReLU, identity) have no saturation: the fraction is ``None``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import SaturatedLinear

TOLERANCE = 0.01


def _tanh(a: torch.Tensor, activation: nn.Module, tolerance: float) -> torch.Tensor:
    return torch.tanh(a).abs() > 1 - tolerance


def _logistic(a: torch.Tensor, activation: nn.Module, tolerance: float) -> torch.Tensor:
    h = torch.sigmoid(a)
    return (h < tolerance) | (h > 1 - tolerance)


def _saturated_linear(a: torch.Tensor, activation: nn.Module, tolerance: float) -> torch.Tensor:
    return a.abs() > 1


def _hardtanh(a: torch.Tensor, activation: nn.Module, tolerance: float) -> torch.Tensor:
    return (a < activation.min_val) | (a > activation.max_val)


# Bounded activation types and their "saturated" test on the pre-activation.
SATURATION_TESTS = {
    nn.Tanh: _tanh,
    nn.Sigmoid: _logistic,
    SaturatedLinear: _saturated_linear,
    nn.Hardtanh: _hardtanh,
}
# Activation types that are not bounded (no saturation to report).
UNBOUNDED = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Identity)


def is_bounded(activation: nn.Module | None) -> bool:
    """Whether ``activation`` is one whose saturation is measured."""
    return activation is not None and type(activation) in SATURATION_TESTS


def saturated_fraction(preactivation: torch.Tensor, activation: nn.Module | None,
                       tolerance: float = TOLERANCE) -> float | None:
    """The fraction of the entries of ``preactivation`` (the activation's input ``a``, any
    shape) at which ``activation`` is saturated; ``None`` when it is not bounded."""
    test = SATURATION_TESTS.get(type(activation))
    if test is None:
        return None
    a = preactivation.detach()
    if a.numel() == 0:
        return None
    return test(a, activation, tolerance).double().mean().item()


def block_activation(block: nn.Module) -> nn.Module | None:
    """The activation module among a block's ``post`` steps (the first one of a known
    bounded or unbounded type), or ``None`` if it has none."""
    for module in getattr(block, "post", ()):
        if type(module) in SATURATION_TESTS or isinstance(module, UNBOUNDED):
            return module
    return None
