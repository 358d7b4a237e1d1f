"""The forecasting task (:class:`ForecastTask`): splits, training batches, evaluation, prediction.

The last ``horizon`` steps are the test split and the ``horizon`` before them the validation split,
one forecast each; the model (:mod:`.model`) sees ``scaler(transform(y))`` with the scaler fitted on
the training part, and trains on its windows (:mod:`.data`). Evaluation: :mod:`.metrics` beside
:mod:`.baselines`; figures: :mod:`.plots`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...data.series import (
    Scaler,
    apply_transform,
    invert_transform,
    load_series,
    sliding_windows,
    transform_offset,
)
from ..base import config_from_state, register
from ..batches import Batches
from .baselines import baseline_forecasts
from .config import LOSSES, PRESETS, ForecastConfig
from .data import column_names, load_task_series, training_batches
from .metrics import forecast_errors
from .model import Forecaster
from .plots import plot_forecast, step_labels

log = logging.getLogger(__name__)

SPLITS = ("valid", "test")


@register("forecast")
class ForecastTask:
    """Forecast a time series ``horizon`` steps ahead with an LSTM/GRU (direct or step by step)."""

    Config = ForecastConfig
    PRESETS = PRESETS

    def __init__(self, cfg: ForecastConfig, scaler: Scaler | None = None) -> None:
        self.cfg = cfg
        self.series, self.period = load_task_series(cfg)
        cols = self.series.columns
        self.targets = column_names(cfg.target) or list(cols)
        missing = [t for t in self.targets if t not in cols]
        if missing:
            raise ValueError(f"{self.series.source}: target {missing} is not among columns {cols}")
        if cfg.mode == "autoregressive" and self.targets != cols:
            raise ValueError(
                f"autoregressive mode feeds every column back, so it forecasts all of {cols}; "
                f"got target {self.targets} (use mode='direct')"
            )
        self.target_idx = [cols.index(t) for t in self.targets]
        self.offset = transform_offset(cfg.transform, self.period)
        n, h, L = len(self.series), cfg.horizon, cfg.input_len
        self.train_end = n - 2 * h
        need = L + 3 * h + self.offset
        if n < need:
            raise ValueError(
                f"{self.series.source}: {n} rows are too few for one window: input_len {L} + "
                f"horizon {h} to train on, {h} validation and {h} test steps, and {self.offset} "
                f"for the {cfg.transform!r} transform need {need}"
            )
        z_train = apply_transform(self.series.values[: self.train_end], cfg.transform, self.period)
        self.scaler = scaler if scaler is not None else Scaler.fit(z_train)
        self.windows = sliding_windows(self.scaler.transform(z_train), L + h).astype(np.float32)
        self._baselines: dict[str, dict[str, np.ndarray]] = {}
        log.info("%s: %d steps x %d columns, period %d, %d training windows", self.series.source,
                 n, len(cols), self.period, len(self.windows))  # fmt: skip

    def _transform(self, y: np.ndarray) -> np.ndarray:
        """``scaler(transform(y))``: ``(T, C) -> (T - offset, C)``."""
        return self.scaler.transform(apply_transform(y, self.cfg.transform, self.period))

    # ---- TrainableTask protocol
    def build_model(self) -> Forecaster:
        return Forecaster(self.cfg, len(self.series.columns), len(self.targets))

    def batches(self, split: str, epoch: int) -> Batches | list[int]:
        """Training: the epoch's shuffled windows. 'valid'/'test': one item, the forecast origin
        (:meth:`evaluate` makes that one forecast)."""
        if split != "train":
            return [self.origin(split)]
        return training_batches(self.windows, self.cfg, self.target_idx, epoch)

    def initial_state(self, batch: Any, device: torch.device) -> None:
        return None

    def loss(self, model: nn.Module, batch: tuple[Tensor, ...], state: Any):
        loss_fn = LOSSES[self.cfg.loss]
        if self.cfg.mode == "autoregressive":
            (seq,) = batch
            pred, target = model(seq[:-1]), seq[1:]  # (E, T-1, N, C)
        else:
            x, y = batch
            pred, target = model(x), y.transpose(0, 1)  # (E, N, H, K)
        return loss_fn(pred, target.expand_as(pred)), None, target.numel()

    def metrics(self, mean_loss: float) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"config": dataclasses.asdict(self.cfg), "scaler": self.scaler.to_dict(),
                "columns": self.series.columns}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any], **overrides: Any) -> ForecastTask:
        task = cls(config_from_state(ForecastConfig, state, overrides),
                   Scaler.from_dict(state["scaler"]))  # fmt: skip
        if task.series.columns != state["columns"]:
            raise ValueError(f"{task.series.source}: columns {task.series.columns}, but the model "
                             f"was trained on {state['columns']}")  # fmt: skip
        return task

    # ---- forecasting and evaluation
    @torch.no_grad()
    def forecast(self, model: Forecaster, history: np.ndarray) -> np.ndarray:
        """The model's ``(H, K)`` forecast of the targets after ``history (T, C)`` (levels)."""
        return self._levels(history, self._forecast_z(model, history))

    def _forecast_z(self, model: Forecaster, history: np.ndarray) -> np.ndarray:
        L = self.cfg.input_len
        if len(history) < L + self.offset:
            raise ValueError(
                f"forecasting needs {L + self.offset} history steps (input_len {L} + "
                f"{self.offset} for {self.cfg.transform!r}), got {len(history)}"
            )
        z = self._transform(history)[-L:]
        device = next(model.parameters()).device
        x = torch.as_tensor(z, dtype=torch.float32, device=device).unsqueeze(1)  # (L, 1, C)
        was_training = model.training
        model.eval()
        try:
            out = model.forecast(x, self.cfg.horizon)[0].double().cpu().numpy()  # (H, K or C)
        finally:
            model.train(was_training)
        return out[:, self.target_idx] if out.shape[1] != len(self.targets) else out

    def _levels(self, history: np.ndarray, z: np.ndarray) -> np.ndarray:
        t = self.target_idx
        d = z * self.scaler.std[t] + self.scaler.mean[t]
        return invert_transform(history[:, t], d, self.cfg.transform, self.period)

    def origin(self, split: str) -> int:
        """Index of the first forecast step of ``split`` ('valid' or 'test')."""
        if split not in SPLITS:
            raise ValueError(f"forecast splits are {SPLITS} (one forecast each), got {split!r}")
        return len(self.series) - self.cfg.horizon * (2 if split == "valid" else 1)

    def baselines(self, split: str) -> dict[str, np.ndarray]:
        """The baseline forecasts of ``split`` (computed once; statsmodels takes seconds)."""
        if split not in self._baselines:
            s, y = self.origin(split), self.series.values[:, self.target_idx]
            self._baselines[split] = baseline_forecasts(
                y[:s], self.cfg.horizon, self.period, self.cfg.statsmodels_baselines
            )
        return self._baselines[split]  # fmt: skip

    def evaluate(self, model: Forecaster, split: str) -> dict[str, float]:
        """``loss`` (scaled, transformed), ``mae``, ``rmse``, ``mase`` and each baseline's
        ``{name}_mase`` for the one forecast of ``split``."""
        s, h, y = self.origin(split), self.cfg.horizon, self.series.values
        z = self._forecast_z(model, y[:s])
        z_true = self._transform(y[: s + h])[-h:, self.target_idx]
        loss = float(LOSSES[self.cfg.loss](torch.from_numpy(z), torch.from_numpy(z_true)))
        history, truth = y[:s, self.target_idx], y[s : s + h, self.target_idx]
        out: dict[str, float] = {"loss": loss, "tokens": int(z_true.size)}
        out.update(forecast_errors(truth, self._levels(y[:s], z), history, self.period))
        for name, fc in self.baselines(split).items():
            out[f"{name}_mase"] = forecast_errors(truth, fc, history, self.period)["mase"]
        return out

    def plot(self, model: Forecaster, split: str, path: str | Path) -> Path:
        """A PNG of the history, the truth, the forecast and the baselines of ``split`` (their
        MASE in the legend)."""
        s, h, y = self.origin(split), self.cfg.horizon, self.series.values
        t = self.target_idx
        history, truth = y[:s, t], y[s : s + h, t]
        forecasts = {"rnnkit": self.forecast(model, y[:s]), **self.baselines(split)}
        mase = {k: forecast_errors(truth, fc, history, self.period)["mase"]
                for k, fc in forecasts.items()}  # fmt: skip
        labelled = {f"{k} (MASE {mase[k]:.2f})": fc for k, fc in forecasts.items()}
        first = next(iter(labelled))
        return plot_forecast(
            path, step_labels(self.series, h), history, labelled.pop(first), self.targets,
            truth=truth, baselines=labelled, title=f"{self.series.source}: {split} forecast",
            label=first,
        )  # fmt: skip

    def predict(
        self, model: Forecaster, inputs: list[str], out_dir: Path | None = None
    ) -> list[str]:
        """Forecast ``horizon`` steps past the end of the task's series (no inputs) or of each
        series file in ``inputs``. Lines: a header, then ``date/step  value ...``; with
        ``out_dir``, ``forecast[_i].csv`` and ``forecast[_i].png`` (and ``test.png``, the held-out
        forecast beside the baselines, for the task's own series)."""
        cols = self.series.columns
        sources = [(self.series, "forecast")] if not inputs else [
            (load_series(p, cols, self.cfg.date_column), f"forecast_{i}")
            for i, p in enumerate(inputs)]  # fmt: skip
        lines = []
        for series, stem in sources:
            fc = self.forecast(model, series.values)
            labels = step_labels(series, self.cfg.horizon)[len(series) :]
            lines.append(f"# {series.source}: {self.cfg.horizon} steps ahead")
            lines.append("\t".join(["date" if series.dates else "step", *self.targets]))
            rows = ["\t".join([lab, *(f"{v:.6g}" for v in row)]) for lab, row in zip(labels, fc)]
            lines.extend(rows)
            if out_dir is not None:
                out = Path(out_dir)
                out.mkdir(parents=True, exist_ok=True)
                (out / f"{stem}.csv").write_text("\n".join([lines[-len(rows) - 1], *rows]) + "\n")
                plot_forecast(out / f"{stem}.png", step_labels(series, self.cfg.horizon),
                              series.values[:, self.target_idx], fc, self.targets,
                              title=f"{series.source}: forecast")  # fmt: skip
        if out_dir is not None and not inputs:
            self.plot(model, "test", Path(out_dir) / "test.png")
        return lines
