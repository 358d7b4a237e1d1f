"""The training loop: epochs of truncated-BPTT steps, and what is due after each step (a log line,
an evaluation, a checkpoint every ``checkpoint_every`` steps or ``checkpoint_minutes``, a stop on
``max_steps``, the time budget or a signal)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...state import detach_state
from .. import distributed as dist_utils
from ..evaluation import prepare_batch
from ..optim import CosineSchedule, set_lr


class StepsMixin:
    """The ``Trainer``'s loop: ``_loop`` returns why it stopped ('completed', 'max_steps',
    'time_budget', 'early_stopping' or 'interrupted')."""

    def _prepare(self, batch: Any) -> Any:
        return prepare_batch(self.task, batch, self.ctx, self.device)

    def _loop(self) -> str:
        """Train through the epochs; after a non-finite loss with 'reload', reload and go on."""
        while True:
            reason = self._run_epochs()
            if reason != "reload":
                return reason
            self._reload_last_good()

    def _run_epochs(self) -> str:
        cfg = self.config
        if cfg.max_steps is not None and self.step >= cfg.max_steps:
            return "max_steps"
        self._train_model.train()  # evaluate() restores the mode it found
        while self.epoch < cfg.epochs:
            batches = self.task.batches("train", self.epoch)
            n = len(batches)
            state, need_init = self._carried, not self._carried_valid
            for i in range(self.batch_index, n):
                batch = self._prepare(batches[i])
                if need_init:
                    state = self.task.initial_state(batch, self.device)
                state, finite = self._train_step(batch, state)
                if not finite and cfg.on_nonfinite == "reload":
                    return "reload"
                need_init = not finite  # a skipped batch's state is not carried on
                self.batch_index, self._carried, self._carried_valid = i + 1, state, finite
                self._bar.update(1)
                reason = self._after_step(end_of_epoch=i + 1 == n, epoch_len=n)
                if reason is not None:
                    return reason
            self.epoch, self.batch_index = self.epoch + 1, 0
            self._carried, self._carried_valid = None, False
        return "completed"

    def _train_step(self, batch: Any, state: Any) -> tuple[Any, bool]:
        """One step: ``(detached new state, True)``; ``(None, False)`` when the loss or the
        gradient norm is not finite, with the weights and optimizer left as they were."""
        self._lr = self.schedule.lr(self.step) * self._lr_scale
        batch_scale = self._batch_lr_scale(batch)
        set_lr(self.optimizer, self._lr * batch_scale)
        lowp = self._step_dtype  # None: float32, autocast off
        with torch.autocast(self.device.type, dtype=lowp, enabled=lowp is not None):
            loss, state, count = self.task.loss(self._train_model, batch, state)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise TypeError(
                f"task.loss must return a scalar tensor first, got {type(loss).__name__}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        if not self._finite_on_every_rank(loss):
            return self._nonfinite_step("loss", loss)
        if self._watch.lowest is None:  # the loss before any update of this session: a baseline
            self._watch.update(float(loss.detach()), self.step + 1)
        loss.backward()
        if self.config.clip_norm:
            self._grad_norm = nn.utils.clip_grad_norm_(
                self.model.parameters(), self.config.clip_norm
            )
            if not self._finite_on_every_rank(self._grad_norm):
                self.optimizer.zero_grad(set_to_none=True)
                return self._nonfinite_step("gradient norm", self._grad_norm)
        self.optimizer.step()
        count = int(count)
        self._window.update(loss.detach(), count)
        self._local_tokens += count
        self._count_step()
        return detach_state(state), True

    def _batch_lr_scale(self, batch: Any) -> float:
        """``task.lr_scale(batch)`` when the task has one (AWD-LSTM's rate proportional to a
        variable window's length), else 1; a ValueError unless it is a finite number > 0."""
        scale_of = getattr(self.task, "lr_scale", None)
        if scale_of is None:
            return 1.0
        scale = scale_of(batch)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < 1e6:
            raise ValueError(f"task.lr_scale must return a number in (0, 1e6), got {scale!r}")
        return float(scale)

    def _count_step(self) -> None:
        """A step is done (trained, or skipped after a non-finite loss)."""
        self.step += 1
        self._clock.steps += 1

    def _after_step(self, end_of_epoch: bool, epoch_len: int) -> str | None:
        cfg = self.config
        self._epoch_len = epoch_len
        if self.step % cfg.log_every == 0:
            self._log_train()
        reason = None
        if (cfg.eval_every and self.step % cfg.eval_every == 0) or (
            end_of_epoch and not cfg.eval_every
        ):
            reason = self._evaluate_and_track(cfg.eval_max_batches)
        if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
            self._save()
        if reason is None and cfg.max_steps is not None and self.step >= cfg.max_steps:
            reason = "max_steps"
        if reason is None:
            interrupted, time_up, save_due = self._sync_flags()
            if interrupted:
                reason = "interrupted"
            elif time_up:
                reason = "time_budget"
            elif save_due:
                self._save()
        return reason

    def _sync_flags(self) -> tuple[bool, bool, bool]:
        """``(interrupted, out of time, a checkpoint is due by wall time)``, agreed by every rank
        (they stop, and save, at the same step)."""
        cfg = self.config
        time_up = self._clock.out_of_time()
        if cfg.time_budget is not None and isinstance(self.schedule, CosineSchedule):
            if self._clock.steps >= 5:  # re-estimate the schedule's length from the budget
                total = self.step + self._clock.steps_left()
                if cfg.max_steps is not None:
                    total = min(total, cfg.max_steps)
                total = min(total, cfg.epochs * self.steps_per_epoch)  # epochs may end it first
                self.schedule.set_total_steps(max(total, 1))
                self._bar.set_total(total)
        flags = [float(self._interrupt.requested), float(time_up), float(self._save_due())]
        flags = dist_utils.all_reduce_sum(flags, self.ctx, self.device)
        return bool(flags[0]), bool(flags[1]), bool(flags[2])
