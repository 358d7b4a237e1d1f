"""``TrainerConfig``: one field per knob of the training engine, with its default.

The command line maps its flags onto these fields; checkpoints store ``dataclasses.asdict(config)``
and ``TrainerConfig.from_dict`` reads it back.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .optim import OPTIMIZERS, SCHEDULES

# Fields that may change when a run is resumed without breaking its exact continuation.
FREE_ON_RESUME = frozenset(
    ("epochs", "max_steps", "time_budget", "out_dir", "device", "log_every", "progress")
)


@dataclass
class TrainerConfig:
    """Training-loop settings; task-specific settings live in the task's own config.

    Attributes:
        epochs: passes over ``task.batches('train', epoch)``.
        max_steps: stop after this many optimizer steps in all (None: no limit).
        time_budget: wall-clock seconds for training, counted over resumed sessions too; when the
            next step would overrun it (keeping room for the final evaluation, estimated from
            earlier ones) training stops cleanly, then evaluates and checkpoints. None: no limit.
        optimizer: 'adam', 'adamw' or 'sgd'.
        lr, weight_decay, momentum (SGD), betas (Adam/AdamW): optimizer hyper-parameters.
        schedule: 'constant'; 'plateau' (divide lr by ``decay_factor`` after an evaluation that does
            not improve on the best validation loss, Zaremba et al. 2014); 'cosine' (linear warm-up
            over ``warmup_steps``, cosine decay to ``min_lr`` at ``max_steps``, or at an estimate
            from the time budget, or at epochs x batches per epoch).
        clip_norm: clip the global L2 norm of all gradients to this value (None or 0: off).
        eval_every: evaluate every N steps (None: at the end of every epoch); also at the end.
        eval_max_batches: batches per periodic evaluation (None: the whole split). The final
            evaluation always covers the whole split.
        early_stopping_patience: stop after this many evaluations without a new best (None: off).
        checkpoint_every: checkpoint every N steps (None: only at the end, on a new best validation
            loss, and on Ctrl-C). Needs ``out_dir``.
        keep_last: keep the last K step checkpoints (the best one is always kept too).
        out_dir: run directory for metrics.jsonl, curves.png and checkpoints/ (None: write nothing).
        seed: seeds Python, NumPy and torch before the model is built.
        device: 'auto' (cuda if available, else cpu), or any torch device string.
        log_every: steps between training log events (metrics.jsonl and progress bar figures).
        progress: show a tqdm progress bar (on a terminal, rank 0 only).
        deterministic: ``torch.use_deterministic_algorithms(True)`` for the duration of ``fit``.
    """

    epochs: int = 1
    max_steps: int | None = None
    time_budget: float | None = None
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "constant"
    decay_factor: float = 2.0
    warmup_steps: int = 0
    min_lr: float = 0.0
    clip_norm: float | None = None
    eval_every: int | None = None
    eval_max_batches: int | None = None
    early_stopping_patience: int | None = None
    checkpoint_every: int | None = None
    keep_last: int = 3
    out_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    log_every: int = 50
    progress: bool = True
    deterministic: bool = False

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # lists come back from JSON
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two floats, got {self.betas}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _positive("epochs", self.epochs, allow_zero=True)
        _positive("log_every", self.log_every)
        _positive("keep_last", self.keep_last)
        _positive("warmup_steps", self.warmup_steps, allow_zero=True)
        for name in ("max_steps", "eval_every", "eval_max_batches", "checkpoint_every"):
            _positive(name, getattr(self, name), optional=True)
        _positive("early_stopping_patience", self.early_stopping_patience, optional=True)
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"time_budget must be > 0 seconds or None, got {self.time_budget}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.clip_norm is not None and self.clip_norm < 0:
            raise ValueError(f"clip_norm must be >= 0 or None, got {self.clip_norm}")
        if self.schedule == "plateau" and self.decay_factor <= 1:
            raise ValueError(f"decay_factor must be > 1, got {self.decay_factor}")

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict``, JSON-able."""
        return dataclasses.asdict(self)

    def changed_fields(self, saved: dict[str, Any], ignore: Iterable[str] = ()) -> list[str]:
        """Fields whose value differs from ``saved`` (a ``to_dict`` read back from JSON)."""
        mine = json.loads(json.dumps(self.to_dict()))  # tuples -> lists, as saved
        return [k for k, v in mine.items() if k not in set(ignore) and saved.get(k) != v]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerConfig:
        """Inverse of ``to_dict``; unknown keys are a ValueError naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown TrainerConfig fields {unknown}; expected some of {sorted(names)}"
            )
        return cls(**data)


def _positive(name: str, value: Any, *, allow_zero: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else ">= 1"
        raise ValueError(f"{name} must be {bound}{' or None' if optional else ''}, got {value}")
