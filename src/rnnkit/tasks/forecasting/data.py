"""The forecasting task's series and its training batches.

Data (:mod:`rnnkit.data.series`): a built-in series (``co2``, ``sunspots``, ``sine``) or a CSV/NumPy
file, univariate or multivariate, with its seasonal period. Training batches are the windows of
``input_len`` inputs and ``horizon`` targets that lie inside the training part, shuffled per epoch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ...data.series import BUILTIN_SERIES, Series, builtin_series, infer_period, load_series
from ..batches import Batches
from .config import ForecastConfig


def column_names(text: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; None or empty -> None."""
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def load_task_series(cfg: ForecastConfig) -> tuple[Series, int]:
    """The series of ``cfg`` (file or built-in, its ``columns``, without its ``drop_last`` last
    steps) and its period (``cfg.period``, else the built-in's or the one the dates suggest)."""
    cols = column_names(cfg.columns)
    if cfg.data is not None:
        series = load_series(cfg.data, cols, cfg.date_column)
        period = infer_period(series.dates)
    elif cfg.dataset == "sine":
        series = builtin_series("sine", length=cfg.sine_length, period=cfg.sine_period,
                                noise=cfg.sine_noise, seed=cfg.seed)  # fmt: skip
        period = max(1, round(cfg.sine_period))
    else:
        series, period = builtin_series(cfg.dataset), BUILTIN_SERIES[cfg.dataset][1]
    if cols and cfg.data is None:
        series = series.select(cols)
    if cfg.drop_last:
        n = max(len(series) - cfg.drop_last, 0)
        dates = series.dates[:n] if series.dates else None
        series = Series(series.values[:n], series.columns, dates, series.source)
    return series, cfg.period or period


def training_batches(
    windows: np.ndarray, cfg: ForecastConfig, target_idx: list[int], epoch: int
) -> Batches[np.ndarray, tuple[Tensor, ...]]:
    """The windows ``(W, L + H, C)`` shuffled for ``epoch`` in batches of ``batch_size``: direct
    mode ``(x (L, N, C), y (H, N, K))`` (``K`` the ``target_idx`` columns), autoregressive
    ``(seq (L + H, N, C),)``."""
    perm = np.random.default_rng([cfg.seed, epoch]).permutation(len(windows))
    bs = cfg.batch_size

    def build(idx: np.ndarray) -> tuple[Tensor, ...]:
        w = torch.from_numpy(windows[idx]).transpose(0, 1)  # (L + H, N, C)
        if cfg.mode == "autoregressive":
            return (w,)
        L = cfg.input_len
        return w[:L], w[L:, :, target_idx]

    return Batches([perm[i : i + bs] for i in range(0, len(perm), bs)], build)
