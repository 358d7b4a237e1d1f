"""Optimizers and learning-rate schedules.

A schedule is a small object with ``lr(step)`` (the rate to use for optimizer step ``step``, counted
from 0), ``on_eval(loss)`` (called after each validation) and a JSON-able ``state_dict``. The
trainer writes the rate into every parameter group before each step, so schedules need no optimizer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "plateau", "cosine")


def build_optimizer(
    params: Iterable[nn.Parameter],
    name: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """``torch.optim.Adam``/``AdamW``/``SGD`` with the given hyper-parameters.

    ``momentum`` is used by SGD only, ``betas`` by Adam and AdamW only.
    """
    params = list(params)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


class ConstantSchedule:
    """The same rate at every step."""

    def __init__(self, base_lr: float) -> None:
        self.base_lr = float(base_lr)

    def lr(self, step: int) -> float:
        return self.base_lr

    def on_eval(self, loss: float) -> None:
        """Constant: ignores validation."""

    def state_dict(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base_lr = float(state["base_lr"])


class PlateauSchedule:
    """Step decay on a validation plateau: divide the rate by ``factor`` after every evaluation
    whose loss is not lower than the best so far; never below ``min_lr``.

    The annealing of Zaremba et al. 2014 ("Recurrent Neural Network Regularization") as the PyTorch
    ``word_language_model`` example applies it: ``if val_loss >= best: lr /= factor``.
    """

    def __init__(self, base_lr: float, factor: float = 2.0, min_lr: float = 0.0) -> None:
        if factor <= 1.0:
            raise ValueError(f"decay factor must be > 1, got {factor}")
        self.current = float(base_lr)
        self.factor = float(factor)
        self.min_lr = float(min_lr)
        self.best = math.inf

    def lr(self, step: int) -> float:
        return self.current

    def on_eval(self, loss: float) -> None:
        if loss < self.best:
            self.best = float(loss)
            return
        new = max(self.current / self.factor, self.min_lr)
        if new != self.current:
            logger.info(
                "validation loss %.4f did not improve: lr %.4g -> %.4g", loss, self.current, new
            )
        self.current = new

    def state_dict(self) -> dict[str, Any]:
        # None for "no evaluation yet" keeps the JSON standard (no Infinity literal).
        return {"current": self.current, "best": None if math.isinf(self.best) else self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.current = float(state["current"])
        self.best = math.inf if state["best"] is None else float(state["best"])


class CosineSchedule:
    """Linear warm-up over ``warmup_steps`` then half-cosine decay to ``min_lr`` at ``total_steps``
    (Loshchilov & Hutter 2017, "SGDR", without restarts; warm-up as in Goyal et al. 2017).

    ``lr(s) = base * (s + 1) / warmup`` for ``s < warmup``, then with
    ``p = (s - warmup) / (total - warmup)`` clipped to ``[0, 1]``:
    ``lr(s) = min_lr + (base - min_lr) * (1 + cos(pi * p)) / 2``.

    ``total_steps`` may be None while unknown (a time budget before any step was timed): the rate
    then stays at ``base`` after the warm-up until ``set_total_steps`` gives an estimate.
    """

    def __init__(
        self,
        base_lr: float,
        total_steps: int | None,
        warmup_steps: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.base_lr = float(base_lr)
        self.warmup_steps = int(warmup_steps)
        self.min_lr = float(min_lr)
        self.total_steps: int | None = None
        self.set_total_steps(total_steps)

    def set_total_steps(self, total_steps: int | None) -> None:
        """Set (or re-estimate) the step at which the rate reaches ``min_lr``."""
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.total_steps = None if total_steps is None else int(total_steps)

    def lr(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.total_steps is None:
            return self.base_lr
        span = self.total_steps - self.warmup_steps
        progress = 1.0 if span <= 0 else min(max((step - self.warmup_steps) / span, 0.0), 1.0)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (
            1.0 + math.cos(math.pi * progress)
        )

    def on_eval(self, loss: float) -> None:
        """Cosine: ignores validation."""

    def state_dict(self) -> dict[str, Any]:
        return {"total_steps": self.total_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.set_total_steps(state["total_steps"])


Schedule = ConstantSchedule | PlateauSchedule | CosineSchedule


def build_schedule(
    name: str,
    base_lr: float,
    *,
    total_steps: int | None = None,
    warmup_steps: int = 0,
    decay_factor: float = 2.0,
    min_lr: float = 0.0,
) -> Schedule:
    """The schedule called ``name`` ('constant', 'plateau' or 'cosine')."""
    if name == "constant":
        return ConstantSchedule(base_lr)
    if name == "plateau":
        return PlateauSchedule(base_lr, factor=decay_factor, min_lr=min_lr)
    if name == "cosine":
        return CosineSchedule(base_lr, total_steps, warmup_steps=warmup_steps, min_lr=min_lr)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")
