"""rnnkit.train: the training engine for recurrent models.

Truncated BPTT with carried, detached state; gradient clipping; SGD/Adam/AdamW with constant,
plateau (step decay) or cosine-with-warm-up schedules; evaluation, early stopping and a time budget;
a progress bar, ``metrics.jsonl`` and ``curves.png``; atomic, pickle-free checkpoints with exact
resume; DDP data parallelism under ``torchrun``. The trainer knows tasks only through
``TrainableTask``.

Example::

    from rnnkit.train import Trainer, TrainerConfig

    config = TrainerConfig(epochs=2, lr=2e-3, clip_norm=1.0, out_dir="runs/lm", eval_every=200)
    summary = Trainer(my_task, config).fit()          # my_task follows TrainableTask
    summary = Trainer(my_task, config, resume="runs/lm").fit()   # continue it exactly
"""

from __future__ import annotations

from .checkpoint import (
    CheckpointError,
    LoadedCheckpoint,
    best_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model_weights,
    prune_checkpoints,
    resolve_checkpoint,
    save_checkpoint,
)
from .config import TrainerConfig
from .distributed import DistributedContext, default_shard
from .evaluation import move_to_device
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
from .task_protocol import TrainableTask
from .trainer import Trainer

__all__ = [
    "CheckpointError",
    "ConstantSchedule",
    "CosineSchedule",
    "DistributedContext",
    "LoadedCheckpoint",
    "MetricsLog",
    "PlateauSchedule",
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
    "move_to_device",
    "perplexity",
    "plot_curves",
    "prune_checkpoints",
    "read_metrics",
    "resolve_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
    "seed_everything",
]
