"""The arithmetic floor of a training step, and the memory a step holds for its backward.

Floors count multiply-accumulates (MACs) per example from the layer shapes: :func:`forward_macs`
measures ``F_l``, the forward MACs of every weight layer ``l`` (``l = 1`` sees the data, ``L``
is the output layer), and each rule states its own floor from them, the taps' widths ``n_l``
and the number of outputs ``C`` (``Rule.floor_macs``; e.g. FA ``ΣF + ΣF + Σ_{l≥2} F_l``, DFA
``ΣF + ΣF + C·Σn_l``; ``None`` where a rule does not state one).
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
