"""The contract between the trainer and a task: what a task provides, what the trainer does with it.

The trainer imports no task; any object with these methods can be trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class TrainableTask(Protocol):
    """A task as the trainer sees it.

    Optional methods, used when present:

    - ``evaluate(model, split) -> dict``: replaces the default evaluation; must return at least
      ``{'loss': float}``.
    - ``on_checkpoint(run_dir)``: called on rank 0 after each checkpoint is written (e.g. to save a
      vocabulary file beside it).
    - ``shard(batch, rank, world_size) -> batch``: this rank's share of a global batch under DDP
      (default: ``distributed.default_shard``, time-major tensors split along dim 1).
    - ``to_device(batch, device) -> batch``: move a batch (default: every tensor nested in tuples,
      lists and dicts, with ``non_blocking=True``).
    - ``lr_scale(batch) -> float``: a factor (> 0) on the learning rate of this batch's step, on
      top of the schedule (AWD-LSTM scales the rate by a variable window's length over ``bptt``).
    """

    def build_model(self) -> nn.Module:
        """A fresh model (on the CPU; the trainer moves it)."""
        ...

    def batches(self, split: str, epoch: int) -> Sequence[Any]:
        """Deterministic for ``(split, epoch)``: a list-like of batches (``len()`` and ``[i]``).

        Under DDP every rank gets the same global batches and keeps its shard."""
        ...

    def initial_state(self, batch: Any, device: torch.device) -> Any:
        """Recurrent state carried across consecutive batches (TBPTT), or None."""
        ...

    def loss(self, model: nn.Module, batch: Any, state: Any) -> tuple[Tensor, Any, int]:
        """``(mean loss per token as a 0-d tensor, new state, number of tokens)``.

        The new state is carried to the next batch (the trainer detaches it)."""
        ...

    def metrics(self, mean_loss: float) -> dict[str, float]:
        """Figures derived from a mean loss: ``{'ppl': exp(loss)}`` or ``{'bpc': loss / ln 2}``."""
        ...

    def state_dict(self) -> dict:
        """JSON-able task state saved with checkpoints (config, vocabulary...)."""
        ...


def check_task(task: Any) -> None:
    """TypeError naming the missing methods when ``task`` does not follow ``TrainableTask``."""
    required = ("build_model", "batches", "initial_state", "loss", "metrics", "state_dict")
    missing = [name for name in required if not callable(getattr(task, name, None))]
    if missing:
        raise TypeError(
            f"task {type(task).__name__} must implement the TrainableTask protocol; "
            f"missing {missing}"
        )
