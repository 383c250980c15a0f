"""The arithmetic floor of a training step, and the memory a step holds for its backward.

Floors count multiply-accumulates (MACs) per example from the layer shapes. With ``F_l`` the
forward MACs of weight layer ``l`` (``l = 1`` sees the data, ``L`` is the output layer),
``n_l`` the width of tap ``l`` and ``C`` the number of outputs:

* BP and every layer-feedback rule (FA, sign symmetry, KP, URFB): ``ΣF`` forward, ``ΣF``
  weight gradients, ``Σ_{l≥2} F_l`` input gradients (the feedback products; KP's and URFB's
  feedback update is element-wise, not counted);
* DFA: ``ΣF + ΣF + C·Σn_l`` (one projection of ``e`` per tap, no chain of input gradients);
  DKP adds ``C·Σn_l`` for its feedback gradient ``e hᵀ``;
* IFA: ``ΣF + ΣF + C·n_1 + Σ_{2≤l<L} F_l`` (the first tap's projection carried forward);
* node perturbation: ``ΣF + ΣF + Σ_{l≥2} F_l`` (the change of the output, carried forward);
* shallow: ``ΣF + F_L``.

The general rule's floor depends on its sources, and is not stated.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import LocallyConnected2d


def forward_macs(net: nn.Module, x: torch.Tensor) -> list[int]:
    """Per weight layer (in the order the forward pass reaches them), its MACs per example:
    ``weight.numel()`` times the positions it is applied at (tokens, pixels)."""
    macs: list[int] = []

    def hook(module, args, output):
        if isinstance(module, LocallyConnected2d):
            macs.append(module.weight.numel())
        else:
            per_example = output[0].numel() if output.dim() > 1 else output.numel()
            macs.append(module.weight.numel() * per_example // module.weight.shape[0])

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() >= 2
               and not isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
    try:
        with torch.no_grad():
            net(x[:1])
    finally:
        for h in handles:
            h.remove()
    return macs


def floor_macs(rule, macs: list[int], tap_widths: list[int], outputs: int) -> int | None:
    """The MACs per example of one training step of ``rule`` (see the module doc)."""
    total, above_first = sum(macs), sum(macs[1:])
    projection = outputs * sum(tap_widths)
    if not rule.direct:
        return 2 * total + above_first
    name = rule.name
    if name in ("dfa", "dkp"):
        return 2 * total + projection * (2 if name == "dkp" else 1)
    if name == "ifa":
        return 2 * total + outputs * tap_widths[0] + sum(macs[1:-1])
    if name == "node-perturbation":
        return 2 * total + above_first
    if name == "shallow":
        return total + macs[-1]
    return None


class SavedTensors:
    """Counts the bytes autograd saves for the backward pass while the block runs, each
    storage once and ``net``'s own parameters and buffers not at all: the activation memory
    of a step (on the CPU, the stand-in for CUDA's peak memory)."""

    def __init__(self, net: nn.Module):
        self.bytes = 0
        self._seen: set[int] = {t.untyped_storage().data_ptr()
                                for t in (*net.parameters(), *net.buffers())}

    def pack(self, tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in self._seen and storage.nbytes():
            self._seen.add(key)
            self.bytes += storage.nbytes()
        return tensor

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)
