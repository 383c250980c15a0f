"""The training loop: whole datasets as tensors, shuffled index batches, no per-example work.

The loop is the one any PyTorch user writes for a converted model: forward, loss,
``loss.backward()`` (which computes the rule's updates), ``optimizer.step()``; then the rule's
``after_step`` (and once per epoch ``after_epoch``) update its own state. It never asks which
rule it runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..distributed import Ranks, sum_
from ..rules import set_targets
from ..interrupt import check_stop


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite, or grew past its bound; ``summary`` is the
    run's summary when :func:`biocredit.training.run` raised it."""

    summary: dict | None = None


ProgressFn = Callable[[int, int, float], None]
StepFn = Callable[[int, Callable[[], float]], None]


def train_epoch(net: torch.nn.Module, rule, x: torch.Tensor, y: torch.Tensor, loss_fn,
                optimizer: torch.optim.Optimizer, batch_size: int,
                generator: torch.Generator, progress: ProgressFn | None = None,
                check_every: int = 50, on_step: StepFn | None = None,
                adversarial: float = 0.0, loss_bound: float = math.inf,
                amp: bool = False, forward: Callable | None = None,
                error_sum: torch.Tensor | None = None, ranks: Ranks = Ranks()) -> float:
    """One pass over ``(x, y)`` in a random order drawn from ``generator``; returns the mean
    training loss. The loss is read back (a device sync) only every ``check_every`` steps,
    to report progress and stop a diverging run with :class:`TrainingDiverged` (a loss that
    is not finite, or above ``loss_bound``). After every step it honours a stop asked for by
    a signal (:func:`biocredit.interrupt.check_stop`).

    ``on_step(step, mean_loss)`` (if given) is called after every optimizer step with the
    step's number in the epoch (from 1) and a function returning the mean training loss of
    the epoch so far (calling it syncs the device). ``adversarial = ε > 0`` trains on
    :func:`fast_gradient_sign` examples instead of the batch itself. ``amp``: forward and
    loss under bf16 autocast (the rule's backward follows in bf16; weights, gradients and
    optimizer state stay in their own dtype). ``forward``: what computes the outputs
    (default ``net``; e.g. ``torch.compile(net)``). ``error_sum`` (a 0-d tensor), if
    given, accumulates ``loss_fn.errors`` of every batch as it was trained on (the running
    training error's numerator; no extra forward pass, no device sync).

    Data parallel (``ranks`` of a process group, ``forward`` a ``DistributedDataParallel``
    of ``net``): every rank draws the same order and takes its slice of each batch of
    ``batch_size`` (the global batch); its loss is weighted by its share of the batch, so
    DDP's mean of the ranks' gradients is the gradient of the whole batch's mean loss; the
    returned loss, the checks and ``error_sum`` are the whole batch's, on every rank."""
    net.train()
    n = len(x)
    order = torch.randperm(n, generator=generator).to(x.device)
    steps = math.ceil(n / batch_size)
    check_shards(n, batch_size, ranks)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    seen = 0

    def mean_so_far() -> float:
        return sum_(total.clone(), ranks).item() / seen

    for step in range(steps):
        idx = order[step * batch_size:(step + 1) * batch_size]
        batch = len(idx)
        if ranks.parallel:
            idx = idx.tensor_split(ranks.world)[ranks.rank]
        loss = _step(net, rule, x[idx], y[idx], loss_fn, optimizer, adversarial, amp, forward,
                     error_sum, len(idx) * ranks.world / batch)
        total += loss.detach().double() * len(idx)
        seen += batch
        if (step + 1) % check_every == 0 or step + 1 == steps:
            mean = mean_so_far()
            check_loss(mean, step + 1, loss_bound)
            if progress is not None:
                progress(step + 1, steps, mean)
        if on_step is not None:
            on_step(step + 1, mean_so_far)
        check_stop()
    rule.after_epoch(net)
    if error_sum is not None:
        sum_(error_sum, ranks)
    return sum_(total, ranks).item() / n


def _step(net, rule, xb: torch.Tensor, yb: torch.Tensor, loss_fn, optimizer, adversarial: float,
          amp: bool, forward: Callable | None, error_sum: torch.Tensor | None,
          share: float) -> torch.Tensor:
    """One training step on a batch (this rank's slice of it, whose loss counts ``share``
    times: 1 unless the ranks' slices differ); its loss."""
    if adversarial > 0:
        xb = fast_gradient_sign(net, loss_fn, xb, yb, adversarial)
    optimizer.zero_grad(set_to_none=True)
    set_targets(net, yb)                # for rules that need labels (auxiliary errors)
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=amp):
        out = (net if forward is None else forward)(xb)
        loss = loss_fn(out, yb)
    if error_sum is not None:
        with torch.no_grad():
            error_sum += loss_fn.errors(out.detach().float(), yb).double()
    (loss if share == 1 else loss * share).backward()
    optimizer.step()
    rule.after_step(net)
    return loss


def check_loss(mean: float, step: int, loss_bound: float) -> None:
    """Stop with :class:`TrainingDiverged` when the epoch's mean training loss so far is
    not finite, or above ``loss_bound``."""
    if not math.isfinite(mean):
        raise TrainingDiverged(f"the training loss became {mean} at step {step} "
                               "of the epoch; try a smaller learning rate")
    if mean > loss_bound:
        raise TrainingDiverged(f"the training loss reached {mean:.4g} at step {step} of the "
                               f"epoch, above its bound {loss_bound:.4g} "
                               "(`divergence_factor`); try a smaller learning rate")


def check_shards(n: int, batch_size: int, ranks: Ranks) -> None:
    """Every rank needs at least one example of every batch."""
    last = n % batch_size or batch_size
    if min(batch_size, last) < ranks.world:
        raise ValueError(f"{ranks.world} processes share batches of {batch_size} over "
                         f"{n} examples, whose last batch has {last}: every process needs at "
                         "least one example of each batch; change `batch_size` or "
                         "`train_size`")


def fast_gradient_sign(net: torch.nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor,
                       epsilon: float) -> torch.Tensor:
    """Goodfellow et al.'s adversarial examples (Nøkland's ADV rows):
    ``x + ε sign(∂loss/∂x)``, with the true gradient of the network as it is now (BP through
    the forward weights, whatever rule trains it)."""
    from ..conversion import exact_gradients
    x = x.detach().requires_grad_(True)
    with exact_gradients(net):
        set_targets(net, y)
        (grad,) = torch.autograd.grad(loss_fn(net(x), y), x)
    return (x + epsilon * grad.sign()).detach()


@torch.no_grad()
def evaluate(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn,
             batch_size: int = 1000, ranks: Ranks = Ranks()) -> tuple[float, float]:
    """Mean loss and error of ``net`` in eval mode: the fraction misclassified, or for a
    reconstruction loss the mean squared error per pixel (``loss_fn.errors``). With
    ``ranks`` of a process group, each rank evaluates its slice and the sums are shared."""
    was_training = net.training
    net.eval()
    n = len(x)
    if ranks.parallel:
        x, y = x.tensor_split(ranks.world)[ranks.rank], y.tensor_split(ranks.world)[ranks.rank]
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    wrong = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        logits = net(xb)
        loss_sum += loss_fn(logits, yb).double() * len(xb)
        wrong += loss_fn.errors(logits, yb).double()
    net.train(was_training)
    return sum_(loss_sum, ranks).item() / n, sum_(wrong, ranks).item() / n
