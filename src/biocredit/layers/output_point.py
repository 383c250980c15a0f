"""Where a direct rule takes the output error ``e``: the tensor in what a model returns
(a tensor, a ``ModelOutput``/dict's ``logits``, a tuple's first element, a field or a
function the user names), and the module that produces it, found from one forward pass."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

Selector = str | Callable | None


def select_output(output, selector: Selector, rule: str = "direct feedback") -> torch.Tensor:
    """The tensor of ``output`` whose error the rule projects: ``selector(output)`` for a
    function, the field or key ``selector`` for a name; by default the tensor itself, a
    mapping's (``ModelOutput``'s) ``logits``, or a tuple's first element (its second after a
    loss)."""
    if callable(selector):
        found = selector(output)
    elif isinstance(selector, str):
        found = output.get(selector) if isinstance(output, Mapping) else \
            getattr(output, selector, None)
    elif isinstance(output, torch.Tensor):
        return output
    elif isinstance(output, Mapping):
        found = output.get("logits")
    elif isinstance(output, (tuple, list)) and output:
        found = output[_logits_index(output)]
    else:
        found = None
    if not isinstance(found, torch.Tensor):
        raise TypeError(
            f"{rule} takes the output error at the model's logits, and found no tensor in "
            f"the {type(output).__name__} this model returns: convert with output='field' "
            "(the name of the field holding the logits), output=a function returning them, "
            "or output_module='name' (the module whose output they are)")
    return found


def replace_output(output, selector: Selector, old: torch.Tensor, new: torch.Tensor):
    """``output`` with ``new`` in place of its tensor ``old`` (found as :func:`select_output`
    found it); ``None`` when ``old`` is nowhere to replace (a function's result)."""
    if output is old:
        return new
    if isinstance(output, Mapping):
        key = next((k for k, v in output.items() if v is old), None)
        if key is None:
            return None
        if isinstance(output, dict) and type(output) is dict:
            return {**output, key: new}
        output[key] = new            # a ModelOutput: sets the field and the attribute
        return output
    if isinstance(output, (tuple, list)) and output:
        i = _logits_index(output)
        if output[i] is old:
            items = [*output[:i], new, *output[i + 1:]]
            return items if isinstance(output, list) else tuple(items)
    return None


def _logits_index(output) -> int:
    """Where a tuple holds the logits: second after a loss (a 0-d tensor first, as
    transformers' models return with ``labels=`` and ``return_dict=False``), else first."""
    first = output[0]
    if len(output) > 1 and isinstance(first, torch.Tensor) and first.ndim == 0 \
            and isinstance(output[1], torch.Tensor):
        return 1
    return 0


def first_tensor(output) -> torch.Tensor | None:
    """A module's output tensor: the output itself or a tuple's first element."""
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    return output if isinstance(output, torch.Tensor) else None


def carries_loss(output) -> bool:
    """Whether ``output`` holds a loss the model computed inside ``forward`` (a mapping's
    ``loss``, or a tuple's leading 0-d tensor)."""
    if isinstance(output, (tuple, list)) and output:
        return _logits_index(output) == 1
    return isinstance(output, Mapping) and output.get("loss") is not None


class OutputRecorder:
    """Temporary forward hooks on every module of ``root`` below it, recording the tensors
    they return, to find which module produced the logits."""

    def __init__(self, root: nn.Module):
        self.seen: list[tuple[str, torch.Tensor]] = []
        self.handles = [m.register_forward_hook(self._hook(name))
                        for name, m in root.named_modules() if m is not root]

    def _hook(self, name: str):
        def record(module, args, output):
            t = first_tensor(output)
            if t is not None:
                self.seen.append((name, t))
        return record

    def producer(self, tensor: torch.Tensor) -> str | None:
        """The innermost module whose output is ``tensor`` (``None``: no module's)."""
        return next((name for name, t in self.seen if t is tensor), None)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.seen.clear()
