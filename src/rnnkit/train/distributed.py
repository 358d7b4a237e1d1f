"""Data-parallel training on ``torch.distributed`` (DDP): gloo on CPU, NCCL on GPU.

Start it with ``torchrun --nproc-per-node K -m rnnkit.cli train ...`` (or any launcher that sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``). Without those
variables everything here degrades to a single process and costs nothing.

How a step is split: every rank receives the same *global* batch from the task and keeps its shard
(``task.shard(batch, rank, world_size)`` when the task defines it, else ``default_shard``, which
splits time-major ``(T, N, ...)`` tensors along N). Each rank's loss is the mean over its shard and
DDP averages the gradients over ranks, so with equal shards the gradient is exactly the mean over
the global batch: the result equals single-process training on the same global batch (up to float
rounding). For that the batch size N must be divisible by the world size.

Only rank 0 logs, shows progress and writes checkpoints; ranks meet at a barrier around each
checkpoint, and the per-rank state (RNG, carried hidden state) is gathered to rank 0 to be saved.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: rank, world size, local rank (GPU index on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when init_distributed created the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def detect_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the environment; ``(0, 1, 0)`` if unset."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers: {e}") from e
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"expected 0 <= RANK < WORLD_SIZE, got RANK={rank} WORLD_SIZE={world}")
    return rank, world, local


DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
DEVICE_FORMS = "'auto', 'cpu', 'cuda', 'cuda:N' (N from 0), 'mps' or 'xpu'"


def parse_device(name: str) -> torch.device:
    """``torch.device(name)`` for a device a model can train on, or a ValueError naming the valid
    forms (``torch.device`` itself raises a RuntimeError listing every backend it knows)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ValueError(f"device must be {DEVICE_FORMS}, got {name!r}") from e
    if device.type not in DEVICE_TYPES:
        raise ValueError(f"device must be {DEVICE_FORMS}, got {name!r}")
    return device


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> ``cuda:LOCAL_RANK`` if CUDA is available else cpu; 'cuda' -> ``cuda:LOCAL_RANK``;
    anything else is parsed by ``torch.device``. A ValueError names the device when it does not
    parse or does not exist on this machine."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = parse_device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available")
        count = torch.cuda.device_count()
        if device.index is None:
            device = torch.device("cuda", local_rank % count)
        elif device.index >= count:
            raise ValueError(
                f"device {name!r} does not exist: this machine has {count} CUDA device(s), "
                f"cuda:0 to cuda:{count - 1}"
            )
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        _check_available(device)
    return device


def _check_available(device: torch.device) -> None:
    """ValueError unless a tensor can be placed on ``device`` (mps, xpu)."""
    try:
        torch.empty(0, device=device)
    except Exception as e:  # RuntimeError, AssertionError ("Torch not compiled with ..."), ...
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise ValueError(
            f"device {str(device)!r} is not available on this machine ({first_line})"
        ) from e


def init_distributed(device: torch.device) -> DistributedContext:
    """Join (or create) the default process group when the environment names more than one rank.

    The backend is NCCL for a CUDA device, gloo otherwise; rendezvous is ``env://``.
    """
    rank, world, local = detect_env()
    if world == 1:
        return DistributedContext()
    if dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(), local, owns_group=False)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    logger.info("joined process group: rank %d of %d (%s)", rank, world, backend)
    return DistributedContext(rank, world, local, owns_group=True)


def cleanup(ctx: DistributedContext) -> None:
    """Destroy the process group if ``init_distributed`` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, ctx: DistributedContext, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` when running on several ranks, else ``model``."""
    if not ctx.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (the one whose state_dict is saved)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def default_shard(batch: Any, rank: int, world_size: int) -> Any:
    """This rank's equal share of a time-major batch.

    Tensors of 2 or more dimensions ``(T, N, ...)`` are split along dim 1 (the batch dimension N);
    1-D tensors ``(N,)`` (lengths, labels) along dim 0; 0-d tensors and non-tensors are kept whole.
    Tuples, lists and dicts are walked recursively. N must be divisible by ``world_size``.
    Tasks with batch-first data define ``shard(batch, rank, world_size)`` instead.
    """
    if world_size == 1:
        return batch
    if isinstance(batch, Tensor):
        if batch.dim() == 0:
            return batch
        dim = 1 if batch.dim() >= 2 else 0
        n = batch.shape[dim]
        if n % world_size:
            raise ValueError(
                f"batch dimension {dim} of a tensor of shape {tuple(batch.shape)} must be "
                f"divisible by the world size {world_size} for equal shards, got {n}"
            )
        size = n // world_size
        return batch.narrow(dim, rank * size, size)
    if isinstance(batch, tuple):
        return tuple(default_shard(b, rank, world_size) for b in batch)
    if isinstance(batch, list):
        return [default_shard(b, rank, world_size) for b in batch]
    if isinstance(batch, dict):
        return {k: default_shard(v, rank, world_size) for k, v in batch.items()}
    return batch


def barrier(ctx: DistributedContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_reduce_sum(
    values: list[float], ctx: DistributedContext, device: torch.device
) -> list[float]:
    """Element-wise sum of ``values`` over ranks (float64), or ``values`` itself on one rank."""
    if not ctx.enabled:
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_gather_object(obj: Any, ctx: DistributedContext) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` on one rank)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistributedContext, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
