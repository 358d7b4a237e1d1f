"""``TrainerConfig``: one field per knob of the training engine, with its default.

The command line maps its flags onto these fields; checkpoints store ``dataclasses.asdict(config)``
and ``TrainerConfig.from_dict`` reads it back.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .distributed import parse_device
from .optim import OPTIMIZERS, SCHEDULES
from .precision import PRECISIONS

# Fields that may change when a run is resumed without breaking its exact continuation (those of
# the non-finite guard matter only once a loss is non-finite, and then the run has changed anyway).
FREE_ON_RESUME = frozenset(
    (
        "epochs",
        "max_steps",
        "time_budget",
        "out_dir",
        "device",
        "log_every",
        "progress",
        "checkpoint_minutes",
        "on_nonfinite",
        "max_nonfinite",
        "reload_decay_factor",
        "divergence_factor",
    )
)
NONFINITE_ACTIONS = ("stop", "skip", "reload")


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
        lr, min_lr: finite, ``0 <= min_lr <= lr``; momentum and betas in ``[0, 1)``.
        clip_norm: clip the global L2 norm of all gradients to this value (None or 0: off).
        eval_every: evaluate every N steps (None: at the end of every epoch); also at the end.
        eval_max_batches: batches per periodic evaluation (None: the whole split). The final
            evaluation always covers the whole split; the best checkpoint is chosen among the
            evaluations of the whole split once there is one (partial ones read other text).
        early_stopping_patience: stop after this many evaluations without a new best (None: off).
        checkpoint_every: checkpoint every N steps (None: only at the end, on a new best validation
            loss, on Ctrl-C/SIGTERM/SIGHUP, and every ``checkpoint_minutes``). Needs ``out_dir``.
        checkpoint_minutes: also checkpoint when this many minutes of wall time have passed since
            the last checkpoint (None: off), so that a killed run loses at most that much work.
        on_nonfinite: what a non-finite training loss (or gradient norm, when clipping) does:
            'stop' raises ``DivergenceError`` naming the step and the last good checkpoint; 'skip'
            drops the batch (no update; the step still counts and the carried state restarts);
            'reload' reloads the latest checkpoint and divides the learning rate by
            ``reload_decay_factor`` (a checkpoint at step 0 is written first when there is none).
            Checkpoints never hold non-finite weights whatever the choice.
        max_nonfinite: the most non-finite losses 'skip' or 'reload' handle in one ``fit``; the
            next one stops the run as 'stop' does.
        reload_decay_factor: the learning rate is divided by this (> 1) after each reload, on top
            of its schedule.
        divergence_factor: warn once when a logged training loss exceeds this multiple (> 1) of
            the lowest logged so far while that lowest is > 0 (None: never).
        keep_last: keep the last K step checkpoints (the best one is always kept too).
        out_dir: run directory for metrics.jsonl, curves.png and checkpoints/ (None: write nothing).
        seed: seeds Python, NumPy and torch before the model is built.
        device: 'auto' (cuda if available, else cpu), or any torch device string.
        log_every: steps between training log events (metrics.jsonl and progress bar figures).
        progress: show a tqdm progress bar (on a terminal, rank 0 only).
        deterministic: ``torch.use_deterministic_algorithms(True)`` for the duration of ``fit``.
        precision: the training steps' arithmetic (:mod:`rnnkit.train.precision`): 'float32';
            'bfloat16' (autocast: bfloat16 GEMMs, float32 weights, loss and optimizer); 'auto'
            (bfloat16 where the device computes it natively, else float32). Evaluation is float32.
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
    checkpoint_minutes: float | None = 5.0
    keep_last: int = 3
    out_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    log_every: int = 50
    progress: bool = True
    deterministic: bool = False
    precision: str = "float32"
    on_nonfinite: str = "stop"
    max_nonfinite: int = 10
    reload_decay_factor: float = 10.0
    divergence_factor: float | None = 10.0

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
        _positive("max_nonfinite", self.max_nonfinite)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.on_nonfinite not in NONFINITE_ACTIONS:
            raise ValueError(
                f"on_nonfinite must be one of {NONFINITE_ACTIONS}, got {self.on_nonfinite!r}"
            )
        self._check_numbers()
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a string, got {type(self.device).__name__}")
        if self.device != "auto":
            parse_device(self.device)

    def _check_numbers(self) -> None:
        """Every float field finite and in its range (NaN fails every comparison, so each check
        is written as 'value is inside', never as 'value is outside')."""
        _number("time_budget", self.time_budget, above=0, optional=True)
        _number("lr", self.lr, above=0)
        _number("min_lr", self.min_lr, minimum=0)
        if self.min_lr > self.lr:
            raise ValueError(
                f"min_lr must be <= lr, got min_lr {self.min_lr} > lr {self.lr}: the schedule "
                "would raise the rate instead of lowering it"
            )
        _number("weight_decay", self.weight_decay, minimum=0)
        _number("momentum", self.momentum, minimum=0, below=1)
        for i, beta in enumerate(self.betas):
            _number(f"betas[{i}]", beta, minimum=0, below=1)
        _number("clip_norm", self.clip_norm, minimum=0, optional=True, note=" (0: off)")
        _number("decay_factor", self.decay_factor, above=1 if self.schedule == "plateau" else 0)
        _number("checkpoint_minutes", self.checkpoint_minutes, above=0, optional=True)
        _number("reload_decay_factor", self.reload_decay_factor, above=1)
        _number("divergence_factor", self.divergence_factor, above=1, optional=True)

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
        return config_from_dict(cls, data)


def _positive(name: str, value: Any, *, allow_zero: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else ">= 1"
        raise ValueError(f"{name} must be {bound}{' or None' if optional else ''}, got {value}")


def _number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    optional: bool = False,
    note: str = "",
) -> None:
    """TypeError unless ``value`` is a real number (or None when ``optional``); ValueError unless
    it is finite, ``>= minimum``, ``> above`` and ``< below`` (those given)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    bounds = []
    ok = math.isfinite(value)
    if minimum is not None:
        bounds.append(f">= {minimum:g}")
        ok = ok and value >= minimum
    if above is not None:
        bounds.append(f"> {above:g}")
        ok = ok and value > above
    if below is not None:
        bounds.append(f"< {below:g}")
        ok = ok and value < below
    if not ok:
        wanted = " and ".join(bounds)
        raise ValueError(
            f"{name} must be {wanted}{' and ' if wanted else ''}finite"
            f"{' or None' if optional else ''}{note}, got {value!r}"
        )


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """A config dataclass from a dict; unknown keys are a ValueError naming them."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} fields {unknown}; expected some of {sorted(names)}"
        )
    return cls(**data)
