"""Step-time benchmark: forward, rule backward and optimizer step, rules interleaved."""

from __future__ import annotations

import copy
import math
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .. import losses, models, rules
from ..conversion import convert
from ..layers import engine_of
from ..rules import set_targets
from ..rules.fused_updates import options_for_compile
from .floor import SavedTensors, forward_macs
from .options import parse_rule_spec
from ..optimizers import compile_step, make_optimizer, trainable
from .run import resolve_device, seeded_generator


def benchmark(rule_names: Sequence[str], model: str = "mlp:4x800:tanh", *,
              batch_size: int = 128, steps: int = 50, warmup: int = 10,
              input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10,
              optimizer: str = "sgd", lr: float = 1e-3, loss: str = "ce",
              device: str = "cpu", seed: int = 0, taps: Sequence[str] = (),
              amp: bool = False, compile: bool = False) -> dict:
    """Median wall time of one full training step per rule, in milliseconds.

    Every rule trains its own converted copy of the same model on the same random batch, in
    the plain loop (forward, loss, ``loss.backward()``, optimizer step, the rule's
    ``after_step``); the rules take turns step by step in one process, so drifts in machine
    speed hit them alike. BP is always timed, as the reference for ``ratio_to_bp``, and so is
    the unconverted model (``"torch"``: plain PyTorch, the floor), the reference for
    ``ratio_to_torch``. ``amp``: every step's forward and loss under bf16 autocast;
    ``compile``: every model and optimizer step (the floor's too) runs ``torch.compile``'d,
    and the rules with learned feedback update it fused (``fused=True``).
    """
    names = check_arguments(rule_names, model, taps, compile, batch_size=batch_size,
                            steps=steps, warmup=warmup, num_classes=num_classes,
                            input_shape=input_shape)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    base = models.create(model, input_shape, num_classes).to(dev)
    x = torch.randn(batch_size, *input_shape, device=dev)
    y = torch.randint(0, num_classes, (batch_size,), device=dev)
    loss_fn = losses.create(loss)
    example = None if hasattr(base, "example_input") else x[:1]
    setups = {"torch": (None, base, make_optimizer(optimizer, trainable(base), lr))}
    for name in names:
        rule = created(name, compile)
        chosen = copy.deepcopy(base) if rule.direct and taps else base
        net = convert(chosen, rule, generator=seeded_generator(seed, 1), example_input=example,
                      taps=models.convert_taps(chosen, model, taps) if rule.direct else None)
        setups[name] = (rule, net, make_optimizer(optimizer, trainable(net), lr))
    step = step_function(setups, x, y, loss_fn, amp, compile)
    macs = forward_macs(base, x)
    widths = tap_widths(setups)
    memory = {name: step_memory(step, setup, dev) for name, setup in setups.items()}
    medians = median_times(step, setups, warmup, steps, dev)
    floors = {name: (setup[0] or rules.get("bp")).floor_macs(macs, widths, num_classes)
              for name, setup in setups.items()}
    return {
        **workload(model, batch_size=batch_size, input_shape=input_shape,
                   num_classes=num_classes, taps=taps, optimizer=optimizer, loss=loss,
                   device=dev, amp=amp, compile=compile),
        "steps": steps, "warmup": warmup, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "machine": platform.machine(), "cpu": cpu_name(),
        **source_commit(), "forward_macs": macs,
        "rules": {name: {"step_ms": ms, "ratio_to_bp": ms / medians["bp"],
                         "ratio_to_torch": ms / medians["torch"],
                         "floor_macs": floors[name],
                         "floor_ratio": None if floors[name] is None
                         else floors[name] / floors["torch"],
                         "gflops": None if floors[name] is None else
                         2 * floors[name] * batch_size / ms / 1e6,
                         **memory[name]}
                  for name, ms in medians.items()},
    }


def workload(model: str, *, batch_size: int = 128, input_shape: Sequence[int] = (1, 28, 28),
             num_classes: int = 10, taps: Sequence[str] = (), optimizer: str = "sgd",
             loss: str = "ce", device: str | torch.device = "cpu", amp: bool = False,
             compile: bool = False, **_) -> dict:
    """What one step computes, as :func:`benchmark`'s result records it (``device``
    resolved): the settings a ``--baseline`` must share (the others are ignored)."""
    return {"model": model, "batch_size": batch_size, "input_shape": list(input_shape),
            "classes": num_classes, "taps": list(taps), "optimizer": optimizer, "loss": loss,
            "device": str(device), "amp": amp, "compile": compile}


def cpu_name() -> str:
    """The CPU's model name: ``/proc/cpuinfo``'s (Linux), ``sysctl``'s (macOS), else what
    :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    if platform.system() == "Darwin":
        name = _output(["sysctl", "-n", "machdep.cpu.brand_string"])
        if name:
            return name
    return platform.processor() or platform.machine() or "unknown CPU"


def source_commit() -> dict:
    """``git_commit``: the commit biocredit's own source is checked out at, ``git_dirty``:
    whether that source differs from it; both ``None`` for an installed copy or without git."""
    here = Path(__file__).resolve().parents[1]
    git = ["git", "-C", str(here)]
    unknown = {"git_commit": None, "git_dirty": None}
    if _output([*git, "ls-files", "--error-unmatch", "__init__.py"]) is None:
        return unknown              # not a checkout's file (e.g. site-packages in a repo)
    commit = _output([*git, "rev-parse", "HEAD"])
    if not commit:
        return unknown
    return {"git_commit": commit, "git_dirty": _output(
        [*git, "status", "--porcelain", "--untracked-files=no", "."]) != ""}


def _output(command: list[str]) -> str | None:
    """``command``'s standard output, stripped; ``None`` if it fails or cannot run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def check_arguments(rule_names: Sequence[str], model: str, taps: Sequence[str], compile: bool,
                    input_shape: Sequence[int], **counts: int) -> list[str]:
    """The rules to time (BP first), each known (and compilable with ``compile``); the
    counts (``batch_size`` ...) whole and large enough, the shape and taps valid."""
    least = {"batch_size": 1, "steps": 1, "warmup": 0, "num_classes": 2}
    for label, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < least[label]:
            raise ValueError(f"{label} must be an integer of at least {least[label]}; got "
                             f"{value!r}")
    if not input_shape or any(d < 1 for d in input_shape):
        raise ValueError(f"input_shape needs positive sizes; got {tuple(input_shape)}")
    names = list(dict.fromkeys(["bp", *rule_names]))
    for name in names:
        rule = created(name, compile)
        if compile:
            rule.check_compiles()
    models.check_taps(model, taps)
    return names


def created(spec: str, compile: bool):
    """The rule a ``RULE[:KEY=VALUE...]`` spec names, as ``compare`` reads it (with
    ``compile``, ``fused=True`` where the rule has it and the spec does not say)."""
    name, options = parse_rule_spec(spec)
    return rules.create(name, **options_for_compile(name, options, compile))


def step_function(setups: dict, x: torch.Tensor, y: torch.Tensor, loss_fn, amp: bool,
                  compile: bool):
    """``step(rule, net, optimizer)``: one training step of a setup on the batch ``(x, y)``
    (its model and optimizer step ``torch.compile``'d with ``compile``)."""
    forwards = {id(net): torch.compile(net) if compile else net
                for _, net, _ in setups.values()}
    if compile:
        for _, _, opt in setups.values():
            compile_step(opt)

    def step(rule, net, opt):
        opt.zero_grad(set_to_none=True)
        if rule is not None:
            set_targets(net, y)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(forwards[id(net)](x), y)
        loss.backward()
        opt.step()
        if rule is not None:
            rule.after_step(net)
    return step


def median_times(step, setups: dict, warmup: int, steps: int,
                 device: torch.device) -> dict[str, float]:
    """Each setup's median step time in milliseconds over ``steps`` steps after ``warmup``,
    the setups taking turns step by step."""
    times: dict[str, list[float]] = {name: [] for name in setups}
    for i in range(warmup + steps):
        for name, setup in setups.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            step(*setup)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def tap_widths(setups: dict) -> list[int]:
    """Per-example widths of the taps, from a converted direct rule (empty if none)."""
    for rule, net, _ in setups.values():
        if rule is not None and rule.direct and engine_of(net).shapes:
            return [math.prod(shape) for shape in engine_of(net).shapes]
    return []


def step_memory(step, setup, device: torch.device) -> dict:
    """One untimed step's memory: ``saved_mb``, what autograd holds for the backward (see
    :class:`~biocredit.training.floor.SavedTensors`), and on CUDA ``peak_mb``, the peak of
    allocated memory during the step."""
    _, net, _ = setup
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    with SavedTensors(net) as saved:
        step(*setup)
    result = {"saved_mb": saved.bytes / 2 ** 20}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        result["peak_mb"] = (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20
    return result
