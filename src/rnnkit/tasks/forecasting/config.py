"""Forecasting settings (:class:`ForecastConfig`) and named presets (:data:`PRESETS`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F

from ...data.series import BUILTIN_SERIES, TRANSFORMS
from ..config import CellConfig, check_choices, check_positive

LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.smooth_l1_loss}
MODES = ("direct", "autoregressive")


@dataclass
class ForecastConfig(CellConfig):
    """Forecasting settings (the trainer's live in :class:`rnnkit.train.TrainerConfig`).

    ``data`` None uses the built-in ``dataset``; a file (``.csv``, ``.npy``, ``.npz``) is read with
    :func:`rnnkit.data.series.load_series`. ``columns``/``target``: comma-separated column names
    (default all numeric columns / all of ``columns``). ``period`` None: the built-in's (12, 11,
    the sine's period) or guessed from the dates (monthly 12, quarterly 4, daily 7, hourly 24).
    ``drop_last`` > 0 ignores the series' last steps, moving every split earlier (backtesting).
    The cell, sizes, dropout, batch size and seed are :class:`rnnkit.tasks.config.CellConfig`'s.
    """

    CELLS = ("lstm", "gru", "mingru", "minlstm", "indrnn", "slstm")

    data: str | None = None
    dataset: str = "co2"
    columns: str | None = None
    target: str | None = None
    date_column: str | None = "auto"
    drop_last: int = 0
    period: int | None = None
    horizon: int = 48
    input_len: int = 144
    transform: str = "diff"
    mode: str = "direct"
    hidden_size: int = 64
    ensemble: int = 1
    loss: str = "mse"
    batch_size: int = 32
    statsmodels_baselines: bool = True
    sine_length: int = 1000
    sine_period: float = 25.0
    sine_noise: float = 0.1

    def __post_init__(self) -> None:
        if self.dataset not in BUILTIN_SERIES:
            raise ValueError(
                f"dataset must be one of {sorted(BUILTIN_SERIES)}, got {self.dataset!r}"
            )
        check_choices(self, transform=TRANSFORMS, mode=MODES)
        super().__post_init__()
        check_choices(self, loss=tuple(LOSSES))
        check_positive(self, "horizon", "input_len", "ensemble")
        if self.drop_last < 0:
            raise ValueError(f"drop_last must be >= 0, got {self.drop_last}")
        if self.period is not None and self.period < 1:
            raise ValueError(f"period must be >= 1 or None, got {self.period}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


_ADAM = dict(optimizer="adam", clip_norm=1.0, schedule="cosine")
# name -> (ForecastConfig overrides, TrainerConfig overrides)
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # The target: co2, last 48 months held out, MASE <= 0.85 (docs/tasks_forecasting.md).
    "co2": (
        dict(dataset="co2", horizon=48, input_len=144, transform="diff", ensemble=3),
        dict(_ADAM, lr=3e-3, epochs=60),
    ),
    "sunspots": (
        dict(dataset="sunspots", horizon=11, input_len=44, transform="none", ensemble=3),
        dict(_ADAM, lr=3e-3, epochs=100),
    ),
    # Chainer's example: a noisy sine, next values step by step (no statsmodels baselines:
    # SARIMA with period 25 takes ~20 s per forecast).
    "sine": (
        dict(
            dataset="sine",
            horizon=25,
            input_len=50,
            transform="none",
            mode="autoregressive",
            hidden_size=32,
            statsmodels_baselines=False,
        ),
        dict(_ADAM, lr=1e-2, epochs=10),
    ),
    "tiny": (
        dict(
            dataset="sine",
            sine_length=200,
            horizon=10,
            input_len=20,
            transform="none",
            hidden_size=8,
            statsmodels_baselines=False,
        ),
        dict(optimizer="adam", lr=1e-2, epochs=2),
    ),
}
