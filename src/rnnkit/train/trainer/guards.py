"""Guards against non-finite values: the per-step check of the loss and gradient norm (agreed by
every rank), ``on_nonfinite``'s stop/skip/reload, and the refusal to checkpoint non-finite weights.
The helpers that find and describe them live in ``train/divergence.py``."""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from .. import distributed as dist_utils
from ..checkpoint import latest_checkpoint, load_newest_intact
from ..divergence import DivergenceError, last_good, nonfinite_parameters

logger = logging.getLogger(__name__)


class GuardsMixin:
    """The ``Trainer``'s handling of non-finite losses, gradient norms and weights."""

    def _finite_on_every_rank(self, value: Tensor) -> bool:
        """Whether ``value`` is finite here and on every other rank (one host sync; under DDP one
        small all-reduce, so that every rank takes the same branch)."""
        bad = float(not bool(torch.isfinite(value.detach()).all()))
        return dist_utils.all_reduce_sum([bad], self.ctx, self.device)[0] == 0

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
            self._count_step()
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
        self._apply_pending_rng()
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

    def _refuse_nonfinite_weights(self) -> None:
        bad = nonfinite_parameters(self.model)
        if bad:
            raise self._divergence(
                f"the weights are not finite after step {self.step} ({bad[0]!r}, {len(bad)} "
                "tensor(s) in all), so no checkpoint was written for it",
                self.step,
            )
