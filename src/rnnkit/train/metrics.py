"""Figures derived from a mean loss, and a token-weighted running mean.

Language-model losses are mean negative log-likelihoods in nats per token. Perplexity is
``exp(loss)`` (Jelinek et al. 1977; the figure of Mikolov's and Zaremba et al. 2014's PTB tables)
and bits per character is ``loss / ln 2`` (Graves 2013, "Generating Sequences With Recurrent Neural
Networks").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# exp(709.78) is the largest finite double; above it perplexity is reported as inf, not an error.
_MAX_EXP_ARG = math.log(1.7976931348623157e308)


def perplexity(loss: float) -> float:
    """``exp(loss)`` for a mean loss in nats per token; ``inf`` instead of an OverflowError."""
    loss = float(loss)
    if math.isnan(loss):
        return math.nan
    if loss > _MAX_EXP_ARG:
        return math.inf
    return math.exp(loss)


def bits_per_char(loss: float) -> float:
    """``loss / ln 2``: nats per character to bits per character."""
    return float(loss) / math.log(2.0)


class RunningMean:
    """Token-weighted mean of per-token mean losses: ``sum(loss_i * n_i) / sum(n_i)``.

    ``update`` accepts Python numbers or 0-d tensors; tensors are accumulated on their device
    without a host sync, so calling it every step costs nothing on a GPU. ``value`` syncs once.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._sum: float | Tensor = 0.0
        self._weight = 0

    def update(self, value: float | Tensor, weight: int = 1) -> None:
        """Add a mean ``value`` that covers ``weight`` tokens (weight >= 0)."""
        weight = int(weight)
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise ValueError(f"value must be a scalar, got shape {tuple(value.shape)}")
            value = value.detach().reshape(()).to(torch.float64)
        self._sum = self._sum + value * weight
        self._weight += weight

    def load(self, total: float, weight: int) -> None:
        """Set the running sums (as read back from a checkpoint's ``[total, weight]``)."""
        self._sum, self._weight = float(total), int(weight)

    @property
    def weight(self) -> int:
        """Total weight (tokens) seen since the last reset."""
        return self._weight

    @property
    def total(self) -> float:
        """``sum(loss_i * n_i)`` as a float."""
        return float(self._sum)

    @property
    def value(self) -> float:
        """The weighted mean; NaN when nothing was added."""
        if self._weight == 0:
            return math.nan
        return float(self._sum) / self._weight
