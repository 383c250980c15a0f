"""Data-parallel training on ``torch.distributed``: which rank this process is, the
collectives the training loop and the learned-feedback rules need, and the check that every
rank holds the same feedback.

A converted model trains under :class:`~torch.nn.parallel.DistributedDataParallel` like any
other module: DDP all-reduces the weight gradients that ``loss.backward()`` leaves in
``.grad``, whatever rule made them (a direct rule's taps project each rank's own output
error). What DDP does not see is the rules' own state:

* fixed feedback (FA, DFA, …) must be drawn identically on every rank, from the same seed;
  :func:`check_same_on_every_rank` verifies it with one checksum per tensor;
* KP and URFB follow the step the optimizer took, which DDP made identical on every rank;
* DKP's feedback gradient ``e hᵀ`` is averaged over the ranks (:func:`average_`) before its
  own optimizer steps, in :meth:`~biocredit.rules.dkp.DirectKolenPollack.after_step`.

Every function here is a no-op in a single process (no process group, or a group of one).
"""

from __future__ import annotations

import hashlib
import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Ranks:
    """This process's place in the process group: ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1

    @property
    def writer(self) -> bool:
        """Whether this process writes files and shows progress (rank 0)."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1


def current() -> Ranks:
    """The default process group's view of this process (rank 0 of 1 without one)."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


def launched_in_parallel() -> bool:
    """Whether ``torchrun`` (or another ``env://`` launcher) started this process as one of
    several: ``WORLD_SIZE`` > 1 and ``RANK`` set."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def start_from_environment() -> Ranks:
    """Join the process group the launcher describes (``env://``: ``MASTER_ADDR``,
    ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``). CPU tensors go over gloo and, where this
    machine has CUDA and NCCL, CUDA tensors over NCCL."""
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; run one process")
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() and \
            dist.is_nccl_available() else "gloo"
        dist.init_process_group(backend)
    return current()


def stop() -> None:
    """Leave the process group (if this process joined one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device(name: str) -> str:
    """Under a parallel launch, ``auto`` and ``cuda`` mean this process's own GPU
    (``cuda:LOCAL_RANK``); anything else is kept as asked."""
    if current().parallel and name in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
    return name


def average_(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor ← mean over the ranks of tensor``, in place (a no-op in one process)."""
    ranks = current()
    return sum_(tensor, ranks).div_(ranks.world) if ranks.parallel else tensor


def sum_(tensor: torch.Tensor, ranks: Ranks | None = None) -> torch.Tensor:
    """``tensor ← sum over the ranks of tensor``, in place; a no-op in one process, or when
    ``ranks`` (given) says the caller works alone."""
    if (ranks or current()).parallel:
        dist.all_reduce(tensor)
    return tensor


def share_buffers(module: nn.Module) -> None:
    """Rank 0's buffers on every rank: the running statistics of batch norms, which each
    rank updates from its own slice of the batches (feedback is the same everywhere)."""
    if current().parallel:
        for buffer in module.buffers():
            if buffer.dtype != torch.bool:
                dist.broadcast(buffer, src=0)


def from_writer(value):
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not current().parallel:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value) -> list:
    """Every rank's ``value``, in rank order, on every rank."""
    ranks = current()
    if not ranks.parallel:
        return [value]
    values = [None] * ranks.world
    dist.all_gather_object(values, value)
    return values


def checksums(module: nn.Module) -> dict[str, str]:
    """A SHA-256 of every tensor in ``module``'s state dict (weights and feedback)."""
    return {name: hashlib.sha256(tensor.detach().cpu().contiguous().reshape(-1)
                                 .view(torch.uint8)
                                 .numpy().tobytes() if tensor.numel() else b"").hexdigest()
            for name, tensor in module.state_dict().items() if torch.is_tensor(tensor)}


def check_same_on_every_rank(module: nn.Module) -> None:
    """Raise ``RuntimeError`` naming the tensors (weights, feedback matrices, masks) that
    differ between rank 0 and another rank: feedback must be drawn from the same seed on
    every rank, or the ranks would train with different rules. A no-op in one process."""
    ranks = current()
    if not ranks.parallel:
        return
    every = gather(checksums(module))
    for rank, sums in enumerate(every[1:], start=1):
        differ = sorted(k for k in set(every[0]) | set(sums) if every[0].get(k) != sums.get(k))
        if differ:
            raise RuntimeError(
                f"rank {rank} holds other values than rank 0 for {', '.join(differ[:5])}"
                + (" …" if len(differ) > 5 else "") + "; draw the model and its feedback from "
                "the same seed on every rank (convert(..., generator=torch.Generator()"
                ".manual_seed(seed)))")


def data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` wrapped in ``DistributedDataParallel`` (gradients all-reduced in the
    backward pass). Buffers are not re-broadcast every forward: the feedback state is the
    same on every rank by construction (see :func:`check_same_on_every_rank`)."""
    from torch.nn.parallel import DistributedDataParallel
    options = {"device_ids": [device.index]} if device.type == "cuda" else {}
    accepted = inspect.signature(DistributedDataParallel.__init__).parameters
    options["forward_sync_buffers" if "forward_sync_buffers" in accepted
            else "broadcast_buffers"] = False
    return DistributedDataParallel(module, **options)


def unwrap(module: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` (or ``DataParallel``) wrapper."""
    while isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        module = module.module
    return module
