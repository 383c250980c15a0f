"""Step-time benchmark: forward, rule backward and optimizer step, rules interleaved."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Sequence

import torch

from .. import losses, models, rules
from ..rules import set_targets
from ..optimizers import make_optimizer, trainable
from .run import resolve_device, seeded_generator


def benchmark(rule_names: Sequence[str], model: str = "mlp:4x800:tanh", *,
              batch_size: int = 128, steps: int = 50, warmup: int = 10,
              input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10,
              optimizer: str = "sgd", lr: float = 1e-3, loss: str = "ce",
              device: str = "cpu", seed: int = 0, taps: Sequence[str] = ()) -> dict:
    """Median wall time of one full training step per rule, in milliseconds.

    Every rule trains its own converted copy of the same model on the same random batch, in
    the plain loop (forward, loss, ``loss.backward()``, optimizer step, the rule's
    ``after_step``); the rules take turns step by step in one process, so drifts in machine
    speed hit them alike. BP is always timed, as the reference for ``ratio_to_bp``, and so is
    the unconverted model (``"torch"``: plain PyTorch, the floor), the reference for
    ``ratio_to_torch``.
    """
    for label, value, least in (("batch_size", batch_size, 1), ("steps", steps, 1),
                                 ("warmup", warmup, 0), ("num_classes", num_classes, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{label} must be an integer of at least {least}; got {value!r}")
    if not input_shape or any(d < 1 for d in input_shape):
        raise ValueError(f"input_shape needs positive sizes; got {tuple(input_shape)}")
    names = list(dict.fromkeys(["bp", *rule_names]))
    for name in names:
        rules.get(name)
    models.check_taps(model, taps)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    base = models.create(model, input_shape, num_classes).to(dev)
    x = torch.randn(batch_size, *input_shape, device=dev)
    y = torch.randint(0, num_classes, (batch_size,), device=dev)
    loss_fn = losses.create(loss)
    example = None if hasattr(base, "example_input") else x[:1]
    setups = {"torch": (None, base, make_optimizer(optimizer, trainable(base), lr))}
    for name in names:
        rule = rules.create(name)
        net = rule.convert(base, generator=seeded_generator(seed, 1), example_input=example,
                           taps=(list(taps) or None) if rule.direct else None)
        setups[name] = (rule, net, make_optimizer(optimizer, trainable(net), lr))

    def step(rule, net, opt):
        opt.zero_grad(set_to_none=True)
        if rule is not None:
            set_targets(net, y)
        loss_fn(net(x), y).backward()
        opt.step()
        if rule is not None:
            rule.after_step(net)

    times: dict[str, list[float]] = {name: [] for name in setups}
    for i in range(warmup + steps):
        for name, setup in setups.items():
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
            step(*setup)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    medians = {name: 1000 * statistics.median(t) for name, t in times.items()}
    return {
        "model": model, "batch_size": batch_size, "steps": steps, "warmup": warmup,
        "optimizer": optimizer, "device": str(dev), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "machine": platform.machine(),
        "rules": {name: {"step_ms": ms, "ratio_to_bp": ms / medians["bp"],
                         "ratio_to_torch": ms / medians["torch"]}
                  for name, ms in medians.items()},
    }
