"""rnnkit.train: the training engine for recurrent models.

Truncated BPTT with carried, detached state; gradient clipping; SGD/Adam/AdamW with constant,
plateau (step decay) or cosine-with-warm-up schedules; evaluation, early stopping and a time budget;
a progress bar, ``metrics.jsonl`` and ``curves.png``; atomic, pickle-free, checksummed checkpoints
with exact resume; a stop on non-finite losses; SIGINT/SIGTERM/SIGHUP handling and periodic
checkpoints; one writer per run directory; DDP data parallelism under ``torchrun``. The trainer
knows tasks only through ``TrainableTask``. See docs/reliability.md for what it guarantees.

Example::

    from rnnkit.train import Trainer, TrainerConfig

    config = TrainerConfig(epochs=2, lr=2e-3, clip_norm=1.0, out_dir="runs/lm", eval_every=200)
    summary = Trainer(my_task, config).fit()          # my_task follows TrainableTask
    summary = Trainer(my_task, config, resume="runs/lm").fit()   # continue it exactly
"""

from __future__ import annotations

from .checkpoint import (
    CheckpointCorrupt,
    CheckpointError,
    CheckpointWriteError,
    LoadedCheckpoint,
    best_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model_weights,
    load_newest_intact,
    prune_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from .config import TrainerConfig
from .distributed import DistributedContext, default_shard
from .divergence import DivergenceError
from .evaluation import move_to_device
from .lock import RunLock, RunLockError
from .metrics import RunningMean, bits_per_char, perplexity
from .optim import (
    ConstantSchedule,
    CosineSchedule,
    PlateauSchedule,
    build_optimizer,
    build_schedule,
)
from .progress import MetricsLog, plot_curves, read_metrics
from .rng import capture_rng_state, restore_rng_state, seed_everything
from .signals import RunInterrupted
from .task_protocol import TrainableTask
from .trainer import Trainer

__all__ = [
    "CheckpointCorrupt",
    "CheckpointError",
    "CheckpointWriteError",
    "ConstantSchedule",
    "CosineSchedule",
    "DistributedContext",
    "DivergenceError",
    "LoadedCheckpoint",
    "MetricsLog",
    "PlateauSchedule",
    "RunInterrupted",
    "RunLock",
    "RunLockError",
    "RunningMean",
    "TrainableTask",
    "Trainer",
    "TrainerConfig",
    "best_checkpoint",
    "bits_per_char",
    "build_optimizer",
    "build_schedule",
    "capture_rng_state",
    "default_shard",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_model_weights",
    "load_newest_intact",
    "move_to_device",
    "perplexity",
    "plot_curves",
    "prune_checkpoints",
    "read_metrics",
    "resolve_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
    "seed_everything",
    "verify_checkpoint",
]
