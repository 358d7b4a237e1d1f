"""Batches to the model, and the default evaluation: the token-weighted mean loss of a split."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from . import distributed as dist_utils
from .metrics import RunningMean


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Every tensor nested in tuples, lists and dicts moved to ``device`` (``non_blocking``)."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple):
        return tuple(move_to_device(b, device) for b in batch)
    if isinstance(batch, list):
        return [move_to_device(b, device) for b in batch]
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    return batch


def prepare_batch(
    task: Any, batch: Any, ctx: dist_utils.DistributedContext, device: torch.device
) -> Any:
    """This rank's shard of a global batch (``task.shard`` or ``default_shard``), on ``device``
    (``task.to_device`` or ``move_to_device``)."""
    if ctx.enabled:
        shard = getattr(task, "shard", None) or dist_utils.default_shard
        batch = shard(batch, ctx.rank, ctx.world_size)
    to_device = getattr(task, "to_device", None) or move_to_device
    return to_device(batch, device)


@torch.no_grad()
def evaluate_loss(
    task: Any,
    model: nn.Module,
    split: str,
    device: torch.device,
    ctx: dist_utils.DistributedContext,
    max_batches: int | None = None,
) -> dict[str, Any] | None:
    """``{'loss', 'tokens', **task.metrics(loss)}`` over ``task.batches(split, 0)``.

    The first ``max_batches`` batches (all when None) run in order with the recurrent state carried
    from ``task.initial_state`` of the first one; the loss is the token-weighted mean (nats per
    token). Under DDP each rank evaluates its shard and the sums are added over ranks. None when
    the split has no batches. The caller sets the model's eval mode.
    """
    batches = task.batches(split, 0)
    n = len(batches) if max_batches is None else min(len(batches), max_batches)
    if n == 0:
        return None
    mean, state = RunningMean(), None
    for i in range(n):
        batch = prepare_batch(task, batches[i], ctx, device)
        if i == 0:
            state = task.initial_state(batch, device)
        loss, state, count = task.loss(model, batch, state)
        mean.update(loss, int(count))
    total, weight = dist_utils.all_reduce_sum([mean.total, mean.weight], ctx, device)
    value = total / weight if weight else math.nan
    return {"loss": value, "tokens": int(weight), **task.metrics(value)}


def evaluate_task(
    task: Any,
    model: nn.Module,
    split: str,
    device: torch.device,
    ctx: dist_utils.DistributedContext,
    max_batches: int | None = None,
) -> dict[str, Any] | None:
    """``task.evaluate(model, split)`` when the task defines it (must give ``'loss'``; rank 0's
    result is broadcast under DDP), else :func:`evaluate_loss`. The caller sets eval mode."""
    custom = getattr(task, "evaluate", None)
    if custom is None:
        return evaluate_loss(task, model, split, device, ctx, max_batches)
    result = dist_utils.broadcast_object(dict(custom(model, split)), ctx)
    if "loss" not in result:
        raise ValueError(f"task.evaluate must return a dict with 'loss', got {sorted(result)}")
    return result
