"""``torch.distributed`` helpers shared by the trainers: process group, batch shards, rank 0 work.

A trainer launched by ``torchrun --nproc_per_node N ...`` runs once per rank. These helpers keep
the ``N = 1`` path (a plain ``python`` launch, no process group) identical to a single-process
trainer, so one code path serves both:

* :func:`distributed_session` joins the process group when ``torchrun`` launched the process
  (``WORLD_SIZE`` > 1 in the environment; gloo for CPU training, NCCL for one GPU per rank), and
  leaves it at the end (only if it joined it itself);
* :func:`shard` splits a global batch of ``B`` samples into contiguous per-rank slices (sizes
  differ by at most one), and :func:`shard_weight` is the factor that makes DDP's mean over ranks
  of per-rank mean losses the size-weighted mean over the global batch;
* :func:`main_first` lets rank 0 do shared work first (e.g. fill the feature cache) while the
  other ranks wait on a barrier, then lets them read the result;
* :func:`wrap_ddp`, :func:`unwrap`, :func:`all_reduce_mean`, :func:`gather_objects`,
  :func:`broadcast_object` and :func:`barrier` are no-ops (or identities) without a process group.

Only rank 0 should write files (checkpoints, TensorBoard, summaries); every rank must take part
in each collective (:func:`all_reduce_mean`, :func:`gather_objects`, :func:`barrier`).

Example (how a trainer uses them; ``sarm2_gym/reward/trainer.py`` is a full one)::

    from sarm2_gym.common.distributed import (
        all_reduce_mean, distributed_session, main_first, shard, shard_weight, unwrap, wrap_ddp,
    )

    with distributed_session() as dist:          # rank 0 of 1 under plain python
        with main_first(dist):                   # rank 0 fills the cache, then the others
            data = load_and_cache(...)
        torch.manual_seed(seed)                  # same init everywhere (DDP also broadcasts)
        # DDP synchronises what runs inside its forward: wrap a module whose forward returns
        # the loss if the loss is computed outside the model's own forward.
        net = wrap_ddp(ModelWithLoss(build_model()), dist)
        opt = torch.optim.AdamW(net.parameters())
        sampler = Sampler(seed=seed)             # same seed on every rank: same global batch
        for step in range(steps):
            part = shard(batch_size, dist)       # this rank's slice of the global batch
            batch = sampler.sample(batch_size, part)   # draws the whole batch, keeps `part`
            loss = net(batch) * shard_weight(part, batch_size, dist)
            opt.zero_grad(); loss.backward(); opt.step()   # DDP all-reduces the gradients
            logged = all_reduce_mean({"loss": float(loss)}, dist)  # every rank calls it
            if dist.is_main:
                writer.add_scalar("loss", logged["loss"], step)
                save(unwrap(net).model)
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import torch
from torch import nn

__all__ = [
    "DistInfo",
    "all_reduce_mean",
    "barrier",
    "broadcast_object",
    "current",
    "distributed_session",
    "gather_objects",
    "launched_by_torchrun",
    "main_first",
    "shard",
    "shard_weight",
    "unwrap",
    "wrap_ddp",
]

T = TypeVar("T")

DEFAULT_TIMEOUT_S: Final[float] = 6 * 3600.0
"""Collective timeout: long, because ranks wait on a barrier while rank 0 extracts features."""


@dataclass(frozen=True, slots=True)
class DistInfo:
    """Where this process stands in the job.

    Attributes:
        rank: Global rank (0 without a process group).
        world_size: Number of processes (1 without a process group).
        local_rank: Rank on this machine (picks the CUDA device).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and shows progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """A process group with more than one process is in use."""
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """Whether the environment describes a multi-process ``torchrun`` job."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current() -> DistInfo:
    """The job as the initialised default process group sees it (rank 0 of 1 without one)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
    )


@contextmanager
def distributed_session(
    backend: str = "gloo", timeout_s: float = DEFAULT_TIMEOUT_S
) -> Iterator[DistInfo]:
    """Join the ``torchrun`` process group for the duration of the block.

    Without ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing is initialised and the block sees
    rank 0 of 1. A process group that is already initialised is used as it is and left alone.

    Args:
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (one CUDA device per rank).
        timeout_s: Collective timeout in seconds.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        yield current()
        return
    if not launched_by_torchrun():
        yield DistInfo()
        return
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    try:
        yield current()
    finally:
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op for one process)."""
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


@contextmanager
def main_first(info: DistInfo) -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks (they wait on a barrier).

    Use it for work whose result later ranks read instead of redoing, e.g. a feature cache.
    """
    if not info.is_main:
        barrier(info)
    yield
    if info.is_main:
        barrier(info)


def shard(total: int, info: DistInfo) -> slice:
    """This rank's contiguous slice of ``range(total)``; sizes differ by at most one.

    Example:
        >>> [shard(5, DistInfo(rank=r, world_size=2)) for r in range(2)]
        [slice(0, 3, None), slice(3, 5, None)]
    """
    base, extra = divmod(total, info.world_size)
    start = info.rank * base + min(info.rank, extra)
    return slice(start, start + base + (1 if info.rank < extra else 0))


def shard_weight(part: slice, total: int, info: DistInfo) -> float:
    """Loss factor so that DDP's gradient mean over ranks weights each rank by its shard size.

    DDP averages gradients over ranks; with per-rank mean losses ``L_r`` over ``n_r`` samples,
    scaling ``L_r`` by ``n_r * world_size / total`` turns that average into
    ``sum_r n_r L_r / total`` (exactly 1.0 when the shards are equal).
    """
    n = len(range(total)[part])
    return n * info.world_size / total


def wrap_ddp(model: nn.Module, info: DistInfo, **kwargs: Any) -> nn.Module:
    """``DistributedDataParallel(model)`` under a process group, else ``model`` itself.

    On CUDA the model must already be on ``cuda:<local_rank>``. Parameters that a step leaves
    unused (e.g. a phase that trains part of the model) are allowed by default.
    """
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    kwargs.setdefault("find_unused_parameters", True)
    device = next(model.parameters()).device
    if device.type == "cuda":
        kwargs.setdefault("device_ids", [device.index])
    return DistributedDataParallel(model, **kwargs)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (the model itself otherwise)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def all_reduce_mean(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Mean of each value over the ranks (every rank must call it with the same keys)."""
    if not info.enabled or not values:
        return dict(values)
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def gather_objects(obj: T, info: DistInfo) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: T, info: DistInfo, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank."""
    if not info.enabled:
        return obj
    import torch.distributed as dist

    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
