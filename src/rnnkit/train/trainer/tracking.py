"""What a run reports: training-loss windows and validation results in ``metrics.jsonl`` and on
the progress bar, the best validation loss (its checkpoint is ``best.json``), early stopping, and
the summary ``fit`` returns."""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

from .. import distributed as dist_utils
from ..checkpoint import best_checkpoint, load_model_weights, point_best, step_dir_name
from ..evaluation import evaluate_task

logger = logging.getLogger(__name__)


class TrackingMixin:
    """The ``Trainer``'s records, evaluation during training and best-loss tracking."""

    def _task_metrics(self, loss: float) -> dict[str, Any]:
        """The task's metrics of a loss (none for a non-finite one)."""
        return self.task.metrics(loss) if math.isfinite(loss) else {}

    def _record(
        self, split: str, loss: float, metrics: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        if metrics is None:
            metrics = self._task_metrics(loss)
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
        metrics = self._task_metrics(loss)
        metrics.update({k: v for k, v in result.items() if k not in ("loss", "tokens")})
        record = self._record("valid", loss, metrics, eval_tokens=result.get("tokens"))
        figures = "".join(f", {k} {v:.4g}" for k, v in record["metrics"].items())
        line = f"step {self.step}: valid loss {loss:.4f}{figures}"
        if self._bar.enabled:  # above the bar; a log line would tear it
            self._bar.write(line)
        else:
            logger.info(line)
        self.schedule.on_eval(loss)
        whole = done == full
        if whole and math.isfinite(loss):
            self._rescore_partial_best()
        if math.isfinite(loss) and self._is_new_best(loss, whole):
            self.best, self._bad_evals = {"loss": loss, "step": self.step}, 0
            self._best_whole = whole
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

    def _rescore_partial_best(self) -> None:
        """Before a whole-split loss replaces a best from partial evaluations of an earlier step,
        that checkpoint is evaluated on the whole split too, so the two are compared on the same
        text: a long run that over-fits keeps its best weights rather than its last ones."""
        best = self.best
        if best is None or self._best_whole or best["step"] == self.step or self.run_dir is None:
            return
        checkpoint = best_checkpoint(self.run_dir)
        if checkpoint is None or checkpoint.name != step_dir_name(best["step"]):
            return
        start = self._clock.now()
        model = copy.deepcopy(self.model)
        load_model_weights(checkpoint, model)
        model.eval()
        result = evaluate_task(self.task, model, "valid", self.device, self.ctx, None)
        self._clock.paused += self._clock.now() - start
        if result is None or not math.isfinite(float(result["loss"])):
            return
        self.best = {"loss": float(result["loss"]), "step": best["step"]}
        self._best_whole = True
        if self.ctx.is_main:
            point_best(self.run_dir, best["step"], {"loss": self.best["loss"]})
        logger.info("step %d's best, on the whole validation split: loss %.4f", best["step"],
                    self.best["loss"])  # fmt: skip

    def _is_new_best(self, loss: float, whole: bool) -> bool:
        """Whether an evaluation's loss is the best so far. A loss over the whole split is never
        compared with one over its first ``eval_max_batches`` (other text): a best from partial
        evaluations is first scored on the whole split (:meth:`_rescore_partial_best`; where its
        checkpoint is gone, the first whole-split loss replaces it), and partial ones never
        replace a whole-split best. (A best saved before this rule counts as whole-split.)"""
        if self.best is None:
            return True
        if whole != self._best_whole:
            return whole
        return loss < self.best["loss"]

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
