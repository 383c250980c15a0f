"""What every layer with a feedback pathway shares: the feedback state and its switches."""

from __future__ import annotations

import torch
from torch import nn

_C_APPLY = torch._C._FunctionBase.__dict__["apply"]      # what Function.apply ends in
_functorch_active = torch._C._are_functorch_transforms_active
_functorch_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
_compiling = torch.compiler.is_compiling


def _dual_level_open() -> bool:
    """Whether forward-mode AD is on (a ``torch.autograd.forward_ad.dual_level`` is open)."""
    return torch.autograd.forward_ad._current_level >= 0


def fast_apply(function: type[torch.autograd.Function],
               traceable: type[torch.autograd.Function], *args):
    """``function.apply(*args)``, straight to autograd's C++ ``apply`` where that is the same;
    under ``torch.compile``, ``traceable.apply(*args)``.

    ``Function.apply``'s Python preamble (the ``setup_context`` check, the rewrapping of every
    argument for functorch) costs about as much as a small layer's whole forward. For a
    Function without ``setup_context`` on plain tensors it changes nothing; it still runs
    under functorch transforms and for a functorch-wrapped input (the first argument).
    ``traceable`` is the same Function without its custom ``jvp`` (forward mode), which
    Dynamo cannot trace: with it every layer would be a graph break (taken only when
    forward-mode AD is on, which needs the ``jvp``).
    """
    if _compiling():            # (forward-mode AD needs the jvp: Dynamo then runs it eagerly)
        return (function if _dual_level_open() else traceable).apply(*args)
    if _functorch_active() or _functorch_wrapped(args[0]):
        return function.apply(*args)
    return _C_APPLY.__get__(None, function)(*args)


class FeedbackLayer:
    """Mixin for weight layers whose backward multiplies the error by ``feedback`` instead of
    the forward weight.

    - ``feedback``: a buffer with the weight's shape (rules that learn it update it in place);
      ``None`` ties it to the weight: exact back-propagation.
    - ``exact``: set by :func:`~biocredit.layers.exact_gradients`; the backward then uses the
      weight, so the same module computes the BP reference gradient.
    - ``weight_mask`` (optional, 0/1): sparse connectivity; the effective weight is ``W ⊙ M``,
      so masked connections are zero whatever the optimizer does.
    - ``feedback_mask`` (optional, 0/1): kept by rules that learn their feedback.
    """

    def init_feedback_state(self, feedback: torch.Tensor | None = None) -> None:
        self.exact = False
        self.register_buffer("feedback", None)
        self.register_buffer("weight_mask", None)
        self.register_buffer("feedback_mask", None)
        if feedback is not None:
            self.set_feedback(feedback)

    def copy_from(self, layer: nn.Module, feedback: torch.Tensor | None):
        """Take ``layer``'s parameters (the very ``nn.Parameter`` objects, so a weight tied
        to another module stays tied), their trainability and connectivity mask; set
        ``feedback``. Returns ``self``."""
        with torch.no_grad():
            for name, param in list(self.named_parameters(recurse=False)):
                source = getattr(layer, name)
                if isinstance(source, nn.Parameter) and source.shape == param.shape:
                    self._parameters[name] = source
                    continue
                param.copy_(source)
                param.requires_grad_(source.requires_grad)
        if getattr(layer, "weight_mask", None) is not None:
            self.set_weight_mask(layer.weight_mask)
        if feedback is not None:
            self.set_feedback(feedback)
        return self

    def set_weight_mask(self, mask: torch.Tensor) -> None:
        """Fix the connections where ``mask`` is 0 at zero (the stored weight too)."""
        mask = mask.detach().to(self.weight)
        self.weight_mask = mask
        with torch.no_grad():
            self.weight.mul_(mask)

    def effective_weight(self) -> torch.Tensor:
        """``W ⊙ M`` with a connectivity mask, else ``W``."""
        mask = self._buffers["weight_mask"]        # (not through nn.Module.__getattr__)
        return self.weight if mask is None else self.weight * mask

    def set_feedback(self, feedback: torch.Tensor) -> None:
        if tuple(feedback.shape) != tuple(self.weight.shape):
            raise ValueError(f"feedback shape {tuple(feedback.shape)} does not match the "
                             f"weight shape {tuple(self.weight.shape)}")
        self.feedback = feedback.detach().to(self.weight)

    def backward_matrix(self, weight: torch.Tensor) -> torch.Tensor:
        """What the backward multiplies the error by: the feedback, or ``weight`` when tied
        or inside :func:`~biocredit.layers.exact_gradients`."""
        feedback = self._buffers["feedback"]
        return weight if self.exact or feedback is None else feedback

    def extra_repr(self) -> str:
        kind = "tied (BP)" if self.feedback is None else "feedback"
        mask = "" if self.weight_mask is None else \
            f", density={self.weight_mask.mean().item():.2f}"
        return super().extra_repr() + f", backward={kind}{mask}"


def feedback_layers(module: nn.Module) -> list[FeedbackLayer]:
    """The layers of ``module`` that hold a feedback matrix of their own (not tied to W)."""
    return [m for m in module.modules() if isinstance(m, FeedbackLayer) and m.feedback is not None]
