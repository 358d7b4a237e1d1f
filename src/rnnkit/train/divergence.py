"""Telling a diverging run: non-finite losses, gradients and weights, and a loss running away.

``DivergenceError`` stops a run; ``LossWatch`` warns once when the logged training loss climbs far
above the lowest it has been (a finite divergence, which no non-finite check sees).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)


class DivergenceError(RuntimeError):
    """Training stopped on a non-finite loss, gradient norm or weights. ``step`` is the step at
    fault, ``checkpoint`` the last good checkpoint (None when none was written)."""

    def __init__(self, message: str, step: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


def last_good(checkpoint: Path | None) -> str:
    """The sentence of a divergence message that says where to go back to."""
    if checkpoint is None:
        return "No checkpoint was written before it."
    return (
        f"The last good checkpoint is {checkpoint}; nothing non-finite was saved (resume from it "
        "with a lower learning rate or gradient clipping)."
    )


def nonfinite_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters and buffers holding a NaN or an infinity."""
    names = []
    for name, t in model.state_dict().items():
        if isinstance(t, Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            names.append(name)
    return names


class LossWatch:
    """Warns once when a loss exceeds ``factor`` times the lowest seen so far (only while that
    lowest is positive: the ratio means nothing around zero). ``factor`` None: never.

    The trainer feeds it the loss of the first step of a session (before any update: a baseline
    that a run diverging from its first steps exceeds at once) and every logged training loss."""

    def __init__(self, factor: float | None) -> None:
        self.factor = factor
        self.lowest: tuple[float, int] | None = None  # (loss, step)
        self.warned = False

    def update(self, loss: float, step: int) -> bool:
        """Record a logged loss; True when this one triggered the warning."""
        if self.factor is None or not math.isfinite(loss):
            return False
        if self.lowest is None or loss < self.lowest[0]:
            self.lowest = (loss, step)
            return False
        low, low_step = self.lowest
        if self.warned or low <= 0 or loss <= self.factor * low:
            return False
        self.warned = True
        logger.warning(
            "step %d: the training loss %.4g is over %gx its lowest, %.4g at step %d: the run may "
            "be diverging (lower the learning rate, or clip the gradient norm)",
            step,
            loss,
            self.factor,
            low,
            low_step,
        )
        return True
