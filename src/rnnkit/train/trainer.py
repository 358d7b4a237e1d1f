"""The training loop: truncated BPTT over a task's batches, with evaluation, checkpoints and logs.

``Trainer(task, config).fit()`` trains; ``Trainer(task, config, resume=RUN_DIR).fit()`` continues a
run exactly where its last checkpoint left it (model, optimizer, schedule, RNG states, epoch, batch
index, carried hidden state): on the CPU the per-step losses equal those of an uninterrupted run,
bit for bit. The trainer talks to the task only through ``TrainableTask``.

One step (Williams & Peng 1990's truncated BPTT, as in Zaremba et al. 2014 and PyTorch's
``word_language_model``): set the scheduled learning rate, ``loss, state, n = task.loss(model,
batch, state)``, backward, clip the global gradient norm (Pascanu et al. 2013), optimizer step, and
detach the carried state so the next window does not backpropagate into this one. The state is reset
to ``task.initial_state`` at the start of every epoch.

Signals: the first SIGINT (Ctrl-C), SIGTERM or SIGHUP lets the current step (and any evaluation or
checkpoint due after it) finish, writes a checkpoint, then ``fit`` raises ``RunInterrupted`` (a
``KeyboardInterrupt``); ``resume`` continues exactly from there. A second signal quits at once (the
last checkpoint stays the resume point). Besides ``checkpoint_every``, a checkpoint is written once
``checkpoint_minutes`` of wall time have passed since the last one.

Non-finite values: every step checks the loss (and the gradient norm when clipping) on the host
before the update; ``on_nonfinite`` says whether that stops the run (``DivergenceError``, naming the
step and the last good checkpoint), skips the batch, or reloads the last checkpoint with a lower
learning rate. No checkpoint is ever written with non-finite weights, and a non-finite validation
loss is never the best. A training loss far above its lowest logs one warning.

One writer per run: the trainer holds ``RUN_DIR/run.lock`` (see ``lock.py``) from its construction
to the end of ``fit`` (or ``close()``).
"""

from __future__ import annotations

import logging
import math
import os
import weakref
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..state import detach_state
from . import distributed as dist_utils
from .checkpoint import (
    META_FILE,
    TASK_DIGEST_KEY,
    CheckpointError,
    LoadedCheckpoint,
    check_task_state,
    latest_checkpoint,
    list_checkpoints,
    load_newest_intact,
    step_dir_name,
    task_digest,
)
from .checkpoint import save_checkpoint as write_checkpoint
from .clock import RunClock
from .config import FREE_ON_RESUME, TrainerConfig
from .divergence import DivergenceError, LossWatch, last_good, nonfinite_parameters
from .evaluation import evaluate_task, move_to_device, prepare_batch
from .lock import RunLock
from .metrics import RunningMean
from .optim import CosineSchedule, build_optimizer, build_schedule, set_lr
from .progress import CURVES_FILE, MetricsLog, ProgressBar, plot_curves
from .rng import capture_rng_state, restore_rng_state, seed_everything
from .signals import InterruptFlag, RunInterrupted
from .task_protocol import check_task

logger = logging.getLogger(__name__)

# What a checkpoint must hold for the trainer to continue from it.
POSITION_KEYS = ("step", "epoch", "batch_index", "tokens")


def run_of(resume: str | os.PathLike) -> Path:
    """The run directory of a run directory, its checkpoints/ folder or one checkpoint in it."""
    path = Path(resume)
    if (path / META_FILE).is_file():
        return path.parent.parent
    return path.parent if path.name == "checkpoints" else path


def check_run_dir(path: Path) -> None:
    """ValueError unless ``path`` is a directory or can become one (no file in the way)."""
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "is an existing file" if p == path else f"is inside {p}, a file"
                raise ValueError(
                    f"out_dir {str(path)!r} {what}: expected a directory (a new one, or a run "
                    "directory to resume)"
                )
            return


class Trainer:
    """Trains a ``TrainableTask``'s model.

    Args:
        task: the task (model, data, loss, metrics).
        config: the loop's knobs (``TrainerConfig()`` when None).
        resume: a run directory (its newest intact checkpoint: a damaged latest one is skipped
            with a warning), its ``checkpoints/`` folder, or one checkpoint directory. The run
            directory defaults to the resumed one.

    The trainer takes the run directory's lock at once (``RunLockError`` when another process
    holds it) and keeps it until ``fit`` returns or ``close()`` is called.

    Attributes:
        model: the (unwrapped) model; ``optimizer``; ``schedule``; ``device``; ``step``;
        ``epoch``; ``history`` (the metrics.jsonl records after ``fit``).
    """

    def __init__(
        self,
        task: Any,
        config: TrainerConfig | None = None,
        resume: str | os.PathLike | None = None,
    ) -> None:
        check_task(task)
        self.task = task
        self.config = cfg = config if config is not None else TrainerConfig()
        run_dir = cfg.out_dir or (run_of(resume) if resume is not None else None)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if cfg.on_nonfinite == "reload" and self.run_dir is None:
            raise ValueError("on_nonfinite='reload' needs out_dir: a run directory to reload from")
        rank, _, local_rank = dist_utils.detect_env()
        self._lock: RunLock | None = None
        if self.run_dir is not None:
            self._check_target(resume)
            if rank == 0:  # the one writer
                self._lock = RunLock(self.run_dir)
                self._lock.acquire()
                weakref.finalize(self, self._lock.release)
        try:
            self._set_up(task, cfg, resume, local_rank)
        except BaseException:
            self.close()
            raise

    def _check_target(self, resume: str | os.PathLike | None) -> None:
        """The run directory can be written: no file in the way, and no checkpoints of another
        run (a fresh run, or a resumed one written into another directory)."""
        check_run_dir(self.run_dir)
        if not list_checkpoints(self.run_dir):
            return
        if resume is None:
            raise ValueError(
                f"{self.run_dir} already holds checkpoints: pass resume={str(self.run_dir)!r} to "
                "continue that run, or choose another out_dir"
            )
        if run_of(resume).resolve() != self.run_dir.resolve():
            raise ValueError(
                f"{self.run_dir} already holds checkpoints of its own: resuming {str(resume)!r} "
                "into it would mix two runs; choose a new out_dir"
            )

    def _set_up(
        self, task: Any, cfg: TrainerConfig, resume: str | os.PathLike | None, local_rank: int
    ) -> None:
        self.device = dist_utils.resolve_device(cfg.device, local_rank)
        self.ctx = dist_utils.init_distributed(self.device)
        seed_everything(cfg.seed)
        self.model: nn.Module = task.build_model().to(self.device)
        if self.ctx.rank > 0:  # distinct dropout masks per rank; rank 0 keeps the 1-process stream
            seed_everything(cfg.seed + self.ctx.rank)
        self.optimizer = build_optimizer(
            self.model.parameters(),
            cfg.optimizer,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            momentum=cfg.momentum,
            betas=cfg.betas,
        )
        self.steps_per_epoch = len(task.batches("train", 0))
        self.schedule = build_schedule(
            cfg.schedule,
            cfg.lr,
            total_steps=self._planned_steps(),
            warmup_steps=cfg.warmup_steps,
            decay_factor=cfg.decay_factor,
            min_lr=cfg.min_lr,
        )
        # Position and bookkeeping (all restored on resume).
        self.step = self.epoch = self.batch_index = 0
        self.tokens = 0  # over all ranks, updated at log events
        self.best: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self._local_tokens = 0
        self._bad_evals = 0
        self._elapsed_before = 0.0
        self._carried: Any = None
        self._carried_valid = False
        self._window = RunningMean()
        self._grad_norm: Tensor | float = math.nan
        self._pending_rng: dict[str, Any] | None = None
        self._lr_scale = 1.0  # lowered by each reload after a non-finite loss
        self._checkpoint: Path | None = None
        self.resumed_from: Path | None = None
        if resume is not None:
            self._restore(load_newest_intact(resume, self.model, self.optimizer))
        self._train_model = dist_utils.wrap_model(self.model, self.ctx, self.device)

    def close(self) -> None:
        """Release the run directory's lock (``fit`` takes it again if called once more)."""
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ set-up helpers

    def _planned_steps(self) -> int | None:
        """Steps the run is planned for: max_steps, else epochs x batches (None with a time budget,
        which is estimated while running)."""
        cfg = self.config
        if cfg.max_steps is not None:
            return cfg.max_steps
        if cfg.time_budget is not None:
            return None
        return max(cfg.epochs * self.steps_per_epoch, 1)

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
        self._elapsed_before = float(meta.get("elapsed", 0.0))
        self._lr_scale = float(meta.get("lr_scale", 1.0))
        mine = ckpt.ranks[self.ctx.rank]
        self._pending_rng = mine["rng"]
        self._carried = move_to_device(mine["carried"], self.device)
        self._carried_valid = bool(meta.get("carried_valid", self.batch_index > 0))
        self._local_tokens = int(mine["tokens"])
        self._window.load(*mine["window"])

    def _prepare(self, batch: Any) -> Any:
        return prepare_batch(self.task, batch, self.ctx, self.device)

    # ------------------------------------------------------------------ evaluation

    def evaluate(
        self, split: str = "valid", max_batches: int | None = None
    ) -> dict[str, Any] | None:
        """``{'loss', 'tokens', **task.metrics(loss)}`` on ``split`` (None if it has no batches).

        Uses ``task.evaluate(model, split)`` when the task defines it; otherwise runs
        ``task.batches(split, 0)`` (the first ``max_batches``) under ``no_grad`` in eval mode with
        the state carried from ``initial_state`` of the first batch, and returns the token-weighted
        mean loss. Under DDP the shards' sums are added over ranks.
        """
        model = self.model
        was_training = model.training
        model.eval()
        try:
            return evaluate_task(self.task, model, split, self.device, self.ctx, max_batches)
        finally:
            model.train(was_training)

    # ------------------------------------------------------------------ training

    def fit(self) -> dict[str, Any]:
        """Train until the epochs, ``max_steps``, the time budget or early stopping end it, then
        evaluate on 'valid', checkpoint, and plot; returns a summary::

            {"step", "epoch", "tokens", "elapsed", "stop_reason", "train": {"loss", ...},
             "valid": {"loss", "tokens", ...} or None, "best": {"loss", "step"} or None,
             "checkpoint": path or None}

        ``stop_reason`` is 'completed', 'max_steps', 'time_budget' or 'early_stopping'.

        Raises:
            RunInterrupted: a SIGINT, SIGTERM or SIGHUP arrived; a checkpoint was written first
                (its ``checkpoint``), and ``exit_code`` is 128 + the signal number.
            DivergenceError: a non-finite loss or gradient norm with ``on_nonfinite='stop'`` (or
                past ``max_nonfinite``), or non-finite weights at a checkpoint.
        """
        cfg = self.config
        if self.steps_per_epoch == 0:
            raise ValueError("task.batches('train', 0) is empty: nothing to train on")
        if self._lock is not None:
            self._lock.acquire()  # released by an earlier fit() or close()
        previous_deterministic = torch.are_deterministic_algorithms_enabled()
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        main = self.ctx.is_main
        try:
            self._log = MetricsLog(self.run_dir if main else None)
            if self.resumed_from is not None or self.step > 0:  # resumed, or a second fit()
                self._log.truncate_after(self.step)
            else:
                self._log.clear()
            self.history = self._log.records
            self._bar = ProgressBar(
                self._planned_steps(), initial=self.step, enabled=cfg.progress and main
            )
            self._clock = RunClock(cfg.time_budget, self._elapsed_before)
            self._last_log = (self._clock.now(), 0.0)  # (time, clock.paused then)
            self._last_eval: tuple[int, dict] | None = None
            self._saved_step = self.step if self.resumed_from is not None else None
            self._last_save_time = self._clock.now()
            self._checkpoint = None
            self._nonfinite = 0
            self._watch = LossWatch(cfg.divergence_factor)
            self._lr = self.schedule.lr(self.step) * self._lr_scale
            if self._pending_rng is not None:
                restore_rng_state(self._pending_rng, self.device)
                self._pending_rng = None
            with InterruptFlag() as interrupt:
                self._interrupt = interrupt
                if cfg.on_nonfinite == "reload" and latest_checkpoint(self.run_dir) is None:
                    self._save()  # the point to go back to
                reason = self._loop()
                if reason == "interrupted":
                    self._save()
                    raise RunInterrupted(interrupt.signum, self._checkpoint or self.resumed_from)
                summary = self._finish(reason)
                if interrupt.requested:  # arrived during the final evaluation or checkpoint
                    raise RunInterrupted(interrupt.signum, self._checkpoint)
            return summary
        finally:
            if hasattr(self, "_bar"):
                self._bar.close()
            if self.run_dir is not None and main and getattr(self, "_log", None) is not None:
                self._plot()
            torch.use_deterministic_algorithms(previous_deterministic)
            dist_utils.cleanup(self.ctx)
            self.close()

    def _plot(self) -> None:
        if not self._log.records:
            return
        try:
            plot_curves(self._log.records, self.run_dir / CURVES_FILE)
        except Exception as e:  # a plot must never hide the run's own outcome
            logger.warning("could not write %s: %s", CURVES_FILE, e)

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
        set_lr(self.optimizer, self._lr)
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
        self.step += 1
        self._clock.steps += 1
        return detach_state(state), True

    def _finite_on_every_rank(self, value: Tensor) -> bool:
        """Whether ``value`` is finite here and on every other rank (one host sync; under DDP one
        small all-reduce, so that every rank takes the same branch)."""
        bad = float(not bool(torch.isfinite(value.detach()).all()))
        if self.ctx.enabled:
            bad = dist_utils.all_reduce_sum([bad], self.ctx, self.device)[0]
        return bad == 0

    def _nonfinite_step(self, what: str, value: Tensor) -> tuple[None, bool]:
        """Apply ``on_nonfinite`` to a step whose ``what`` ('loss', 'gradient norm') is ``value``:
        raise DivergenceError ('stop', or past ``max_nonfinite``), or count the step as skipped
        ('skip'), or leave it to the loop to reload ('reload')."""
        cfg = self.config
        self._nonfinite += 1
        step = self.step + 1
        figure = float(value.detach().reshape(()))
        if cfg.on_nonfinite == "stop" or self._nonfinite > cfg.max_nonfinite:
            limit = (
                f"; {self._nonfinite} non-finite steps in this session, more than max_nonfinite "
                f"{cfg.max_nonfinite}"
                if cfg.on_nonfinite != "stop"
                else ""
            )
            raise self._divergence(
                f"the training {what} is {figure} at step {step} (lr {self._lr:.3g}){limit}", step
            )
        if cfg.on_nonfinite == "skip":
            logger.warning(
                "step %d: the training %s is %s: batch skipped, weights unchanged (%d of at most "
                "%d)",
                step,
                what,
                figure,
                self._nonfinite,
                cfg.max_nonfinite,
            )
            self.step += 1
            self._clock.steps += 1
        return None, False

    def _divergence(self, detail: str, step: int) -> DivergenceError:
        checkpoint = latest_checkpoint(self.run_dir) if self.run_dir is not None else None
        message = f"training stopped: {detail}. {last_good(checkpoint)}"
        return DivergenceError(message, step, checkpoint)

    def _reload_last_good(self) -> None:
        """Continue from the latest checkpoint with the learning rate divided by
        ``reload_decay_factor`` (on top of any earlier reloads)."""
        scale = self._lr_scale / self.config.reload_decay_factor
        failed_step = self.step + 1
        loaded = load_newest_intact(self.run_dir, self.model, self.optimizer)
        self._restore_position(loaded)
        restore_rng_state(self._pending_rng, self.device)
        self._pending_rng = None
        self._lr_scale = scale
        self._saved_step, self._last_eval = self.step, None
        self._log.truncate_after(self.step)
        self.history = self._log.records
        logger.warning(
            "step %d: non-finite training loss: reloaded %s (step %d); learning rate x%.3g from now",
            failed_step,
            loaded.path,
            self.step,
            scale,
        )

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
        if self.ctx.enabled:
            flags = dist_utils.all_reduce_sum(flags, self.ctx, self.device)
        return bool(flags[0]), bool(flags[1]), bool(flags[2])

    def _save_due(self) -> bool:
        minutes = self.config.checkpoint_minutes
        if self.run_dir is None or minutes is None:
            return False
        return self._clock.now() - self._last_save_time >= 60.0 * minutes

    # ------------------------------------------------------------------ logging and evaluation

    def _record(
        self, split: str, loss: float, metrics: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        if metrics is None:
            metrics = self.task.metrics(loss) if math.isfinite(loss) else {}
        record = {"step": self.step, "epoch": self.epoch, "split": split, "loss": loss}
        record.update(metrics=metrics, lr=self._lr, tokens=self.tokens)
        record["elapsed"] = self._clock.elapsed()
        record.update(extra)
        if self.ctx.is_main:
            self._log.append(record)
        return record

    def _log_train(self) -> None:
        total, weight = dist_utils.all_reduce_sum(
            [self._window.total, self._window.weight], self.ctx, self.device
        )
        self._window.reset()
        if weight == 0:
            return
        now = self._clock.now()
        since, paused_then = self._last_log
        seconds = max(now - since - (self._clock.paused - paused_then), 1e-9)
        self._last_log = (now, self._clock.paused)
        self.tokens += int(weight)
        loss = total / weight if weight else math.nan
        extra: dict[str, Any] = {"tokens_per_s": weight / seconds}
        if self.config.clip_norm:
            extra["grad_norm"] = float(self._grad_norm)
        record = self._record("train", loss, **extra)
        self._bar.show(loss, record["metrics"], extra["tokens_per_s"], self._lr)
        if self.ctx.is_main:
            self._watch.update(loss, self.step)

    def _evaluate_and_track(self, max_batches: int | None) -> str | None:
        start = self._clock.now()
        result = self.evaluate("valid", max_batches)
        seconds = self._clock.now() - start
        self._clock.paused += seconds
        if result is None:
            return None
        full = len(self.task.batches("valid", 0))
        done = full if max_batches is None else min(full, max_batches)
        self._clock.final_eval_seconds = seconds * full / max(done, 1)
        self._last_eval = (self.step, result) if done == full else None
        loss = float(result["loss"])
        metrics = self.task.metrics(loss) if math.isfinite(loss) else {}
        metrics.update({k: v for k, v in result.items() if k not in ("loss", "tokens")})
        record = self._record("valid", loss, metrics, eval_tokens=result.get("tokens"))
        figures = "".join(f", {k} {v:.4g}" for k, v in record["metrics"].items())
        line = f"step {self.step}: valid loss {loss:.4f}{figures}"
        if self._bar.enabled:  # above the bar; a log line would tear it
            self._bar.write(line)
        else:
            logger.info(line)
        self.schedule.on_eval(loss)
        if math.isfinite(loss) and (self.best is None or loss < self.best["loss"]):
            self.best, self._bad_evals = {"loss": loss, "step": self.step}, 0
            self._save(best=True)
            return None
        if not math.isfinite(loss):
            logger.warning("step %d: the validation loss is %s: never a best", self.step, loss)
        self._bad_evals += 1
        patience = self.config.early_stopping_patience
        if patience is not None and self._bad_evals >= patience:
            logger.info("early stopping: %d evaluations without improvement", self._bad_evals)
            return "early_stopping"
        return None

    # ------------------------------------------------------------------ checkpoints

    def _position(self) -> tuple[int, int, Any, bool]:
        """(epoch, batch index, carried state, whether it is carried on) to resume from,
        normalised at an epoch's end."""
        if self.batch_index >= getattr(self, "_epoch_len", math.inf):
            return self.epoch + 1, 0, None, False
        valid = self._carried_valid and self.batch_index > 0
        return self.epoch, self.batch_index, self._carried if valid else None, valid

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
                "bad_evals": self._bad_evals,
                "world_size": self.ctx.world_size,
                "config": self.config.to_dict(),
                "task": task_state,
                TASK_DIGEST_KEY: task_digest(task_state),
            }
            write_checkpoint(
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
        self._checkpoint = self.run_dir / "checkpoints" / step_dir_name(self.step)
        self._saved_step = self.step
        self._last_save_time = self._clock.now()
        self._clock.paused += self._last_save_time - start

    def _refuse_nonfinite_weights(self) -> None:
        bad = nonfinite_parameters(self.model)
        if bad:
            raise self._divergence(
                f"the weights are not finite after step {self.step} ({bad[0]!r}, {len(bad)} "
                "tensor(s) in all), so no checkpoint was written for it",
                self.step,
            )

    def _finish(self, reason: str) -> dict[str, Any]:
        if self.step % self.config.log_every:  # the last, partial window
            self._log_train()
        if self._last_eval is not None and self._last_eval[0] == self.step:
            valid = self._last_eval[1]
        else:
            self._evaluate_and_track(None)
            valid = self._last_eval[1] if self._last_eval is not None else None
        self._save()
        train = next((r for r in reversed(self._log.records) if r["split"] == "train"), None)
        summary = {
            "step": self.step,
            "epoch": self.epoch,
            "tokens": self.tokens,
            "elapsed": self._clock.elapsed(),
            "stop_reason": reason,
            "train": None if train is None else {"loss": train["loss"], **train["metrics"]},
            "valid": valid,
            "best": self.best,
            "checkpoint": None if self._checkpoint is None else str(self._checkpoint),
        }
        logger.info("training stopped (%s) at step %d: %s", reason, self.step, valid)
        return summary
