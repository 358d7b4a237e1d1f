"""``Trainer``: sets up a run (model, optimizer, schedule, lock, resume) and ``fit`` drives it.

The loop itself is in :mod:`.loop`, the records and evaluation in :mod:`.tracking`, checkpoints in
:mod:`.saving`, and the non-finite guards in :mod:`.guards`: ``Trainer`` combines them.
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

from ...memory import keep_freed_memory
from ...reproducibility import blas_is_reproducible
from .. import distributed as dist_utils
from ..checkpoint import latest_checkpoint, load_newest_intact
from ..clock import RunClock
from ..config import TrainerConfig
from ..divergence import LossWatch
from ..evaluation import evaluate_task
from ..lock import RunLock
from ..metrics import RunningMean
from ..optim import build_optimizer, build_schedule
from ..precision import training_dtype
from ..progress import CURVES_FILE, MetricsLog, ProgressBar, plot_curves
from ..rng import seed_everything
from ..signals import InterruptFlag, RunInterrupted
from ..task_protocol import check_task
from .guards import GuardsMixin
from .loop import StepsMixin
from .rundir import check_target, run_of
from .saving import SavingMixin
from .tracking import TrackingMixin

logger = logging.getLogger(__name__)


class Trainer(StepsMixin, TrackingMixin, SavingMixin, GuardsMixin):
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
            check_target(self.run_dir, resume)
            if rank == 0:  # the one writer
                self._lock = RunLock(self.run_dir)
                self._lock.acquire()
                weakref.finalize(self, self._lock.release)
        try:
            self._set_up(task, cfg, resume, local_rank)
        except BaseException:
            self.close()
            raise

    def _set_up(
        self, task: Any, cfg: TrainerConfig, resume: str | os.PathLike | None, local_rank: int
    ) -> None:
        self.device = dist_utils.resolve_device(cfg.device, local_rank)
        self.ctx = dist_utils.init_distributed(self.device)
        if self.device.type == "cpu" and not blas_is_reproducible():
            logger.warning("MKL's reproducible mode is off (torch computed before rnnkit was "
                           "imported, or MKL_CBWR turns it off): on this CPU a resumed run can "
                           "drift from an unbroken one; import rnnkit first or set "
                           "MKL_CBWR=AUTO,STRICT")  # fmt: skip
        self._step_dtype = training_dtype(cfg.precision, self.device)  # None: float32
        if self._step_dtype is not None:
            logger.info("rnnkit: training steps in %s autocast (precision %r); evaluation in "
                        "float32", self._step_dtype, cfg.precision)  # fmt: skip
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
        self._best_whole = True  # whether the best loss covered the whole validation split
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
        keep_freed_memory()  # the step's large buffers are reused, not page-faulted anew
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
            self._apply_pending_rng()
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
