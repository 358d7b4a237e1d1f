"""Saving and restoring a run: the trainer's position (epoch, batch, carried state), schedule,
bookkeeping and every rank's RNG state go into a checkpoint beside the model and optimizer, and come
back from one, checked first that this trainer can continue it exactly."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from .. import distributed as dist_utils
from ..checkpoint import (
    META_FILE,
    TASK_DIGEST_KEY,
    CheckpointError,
    LoadedCheckpoint,
    check_task_state,
    save_checkpoint,
    step_dir_name,
    task_digest,
)
from ..checkpoint.layout import CHECKPOINTS_DIR
from ..config import FREE_ON_RESUME
from ..evaluation import move_to_device
from ..optim import CosineSchedule
from ..rng import capture_rng_state, restore_rng_state

logger = logging.getLogger(__name__)

# What a checkpoint must hold for the trainer to continue from it.
POSITION_KEYS = ("step", "epoch", "batch_index", "tokens")


class SavingMixin:
    """The ``Trainer``'s checkpoints: ``_save`` and ``_restore`` (with ``_restore_position``)."""

    # ------------------------------------------------------------------ restoring

    def _check_resumable(self, ckpt: LoadedCheckpoint) -> None:
        """CheckpointError/ValueError unless this trainer can continue ``ckpt`` exactly: it holds
        the trainer's position, one state per process, and the task state this task has."""
        meta = ckpt.meta
        missing = [k for k in POSITION_KEYS if k not in meta]
        if missing:
            raise CheckpointError(
                f"{ckpt.path / META_FILE} has no {missing}: expected the trainer's position "
                f"{list(POSITION_KEYS)} (was it written by another program?)"
            )
        if len(ckpt.ranks) != self.ctx.world_size:
            raise ValueError(
                f"{ckpt.path} was written by {len(ckpt.ranks)} processes, this run has "
                f"{self.ctx.world_size}: exact continuation needs each rank's RNG and carried state"
            )
        check_task_state(ckpt.path, meta, self.task.state_dict())

    def _restore(self, ckpt: LoadedCheckpoint) -> None:
        self._check_resumable(ckpt)
        meta = ckpt.meta
        changed = self.config.changed_fields(meta.get("config", {}), ignore=FREE_ON_RESUME)
        if changed:
            logger.warning(
                "resuming with changed settings %s: continuation may not be exact", changed
            )
        if meta.get("schedule_name") != self.config.schedule:
            logger.warning(
                "schedule changed from %s: starting it afresh", meta.get("schedule_name")
            )
        self._restore_position(ckpt)
        planned = self._planned_steps()
        if isinstance(self.schedule, CosineSchedule) and planned is not None:
            if meta.get("schedule_name") == self.config.schedule:
                if planned != self.schedule.total_steps:
                    logger.warning(
                        "run length changed: the cosine schedule now ends at step %d (was %s)",
                        planned,
                        self.schedule.total_steps,
                    )
                    self.schedule.set_total_steps(planned)
        self.resumed_from = ckpt.path
        logger.info(
            "resumed from %s at step %d (epoch %d, batch %d)",
            ckpt.path,
            self.step,
            self.epoch,
            self.batch_index,
        )

    def _restore_position(self, ckpt: LoadedCheckpoint) -> None:
        """Schedule, position, bookkeeping and this rank's state from a checkpoint (the model and
        optimizer were loaded with it)."""
        meta = ckpt.meta
        if meta.get("schedule_name") == self.config.schedule:
            self.schedule.load_state_dict(meta["schedule"])
        self.step, self.epoch = int(meta["step"]), int(meta["epoch"])
        self.batch_index, self.tokens = int(meta["batch_index"]), int(meta["tokens"])
        self.best, self._bad_evals = meta.get("best"), int(meta.get("bad_evals", 0))
        self._best_whole = bool(meta.get("best_whole", True))
        self._elapsed_before = float(meta.get("elapsed", 0.0))
        self._lr_scale = float(meta.get("lr_scale", 1.0))
        mine = ckpt.ranks[self.ctx.rank]
        self._pending_rng = mine["rng"]
        self._carried = move_to_device(mine["carried"], self.device)
        self._carried_valid = bool(meta.get("carried_valid", self.batch_index > 0))
        self._local_tokens = int(mine["tokens"])
        self._window.load(*mine["window"])

    def _apply_pending_rng(self) -> None:
        """Restore the RNG states a checkpoint held, once, just before training goes on."""
        if self._pending_rng is not None:
            restore_rng_state(self._pending_rng, self.device)
            self._pending_rng = None

    # ------------------------------------------------------------------ saving

    def _position(self) -> tuple[int, int, Any, bool]:
        """(epoch, batch index, carried state, whether it is carried on) to resume from,
        normalised at an epoch's end."""
        if self.batch_index >= getattr(self, "_epoch_len", math.inf):
            return self.epoch + 1, 0, None, False
        valid = self._carried_valid and self.batch_index > 0
        return self.epoch, self.batch_index, self._carried if valid else None, valid

    def _save_due(self) -> bool:
        """Whether ``checkpoint_minutes`` of wall time have passed since the last checkpoint."""
        minutes = self.config.checkpoint_minutes
        if self.run_dir is None or minutes is None:
            return False
        return self._clock.now() - self._last_save_time >= 60.0 * minutes

    def _save(self, best: bool = False) -> None:
        """Write a checkpoint (rank 0, with every rank's state gathered), unless there is no run
        directory or this step was already saved. DivergenceError instead when the weights are
        not finite: a checkpoint is always a point worth going back to."""
        if self.run_dir is None:
            return
        if self._saved_step == self.step and not best:
            self._last_save_time = self._clock.now()
            return
        self._refuse_nonfinite_weights()
        start = self._clock.now()
        epoch, batch_index, carried, carried_valid = self._position()
        mine = {
            "rng": capture_rng_state(self.device),
            "carried": move_to_device(carried, torch.device("cpu")),
            "tokens": self._local_tokens,
            "window": [self._window.total, self._window.weight],
        }
        ranks = dist_utils.all_gather_object(mine, self.ctx)
        if self.ctx.is_main:
            task_state = self.task.state_dict()
            meta = {
                "epoch": epoch,
                "batch_index": batch_index,
                "carried_valid": carried_valid,
                "tokens": self.tokens,
                "elapsed": self._clock.elapsed(),
                "lr": self._lr,
                "lr_scale": self._lr_scale,
                "schedule_name": self.config.schedule,
                "schedule": self.schedule.state_dict(),
                "best": self.best,
                "best_whole": self._best_whole,
                "bad_evals": self._bad_evals,
                "world_size": self.ctx.world_size,
                "config": self.config.to_dict(),
                "task": task_state,
                TASK_DIGEST_KEY: task_digest(task_state),
            }
            save_checkpoint(
                self.run_dir,
                self.step,
                self.model,
                self.optimizer,
                meta,
                ranks,
                keep_last=self.config.keep_last,
                best=self.best if best else None,
            )
            hook = getattr(self.task, "on_checkpoint", None)
            if hook is not None:
                hook(self.run_dir)
        dist_utils.barrier(self.ctx)
        self._checkpoint = self.run_dir / CHECKPOINTS_DIR / step_dir_name(self.step)
        self._saved_step = self.step
        self._last_save_time = self._clock.now()
        self._clock.paused += self._last_save_time - start
