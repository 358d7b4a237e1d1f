"""Time-series forecasting with an LSTM/GRU (Chainer's sine-wave examples, grown up).

Data (:mod:`rnnkit.data.series`): a built-in series (``co2``, ``sunspots``, ``sine``) or a CSV/NumPy
file, univariate or multivariate. The last ``horizon`` steps are the test split, the ``horizon``
steps before them the validation split; each is *one* forecast of ``horizon`` steps from the
history before it (the rest of the series), as in the M-competitions. The model sees
``scaler(transform(y))`` (``transform``: none, diff, seasonal_diff; the scaler fitted on the
training part only) and is trained on every window of ``input_len`` inputs and ``horizon``
targets that lies inside the training part.

Modes: ``direct`` -- the recurrent layer reads the window and one linear layer emits all
``horizon x targets`` values at once (the MIMO strategy, Ben Taieb et al. 2012); ``autoregressive``
-- the layer predicts the next step at every position (teacher forcing, Chainer's example) and the
forecast feeds each prediction back. ``ensemble`` > 1 trains several members (different initial
weights) side by side and averages their forecasts.

Metrics: MAE, RMSE and MASE (Hyndman & Koehler 2006: MAE over the in-sample MAE of the seasonal
naive forecast with period ``period`` on the history), beside the baselines: seasonal naive,
seasonal naive with yearly drift (last season + k x the mean change over the last season), and
statsmodels' ETS(A,A,A) (Holt-Winters) and SARIMA(1,1,1)(0,1,1,m) fitted to the same history.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.series import (
    BUILTIN_SERIES,
    TRANSFORMS,
    Scaler,
    Series,
    apply_transform,
    builtin_series,
    future_dates,
    infer_period,
    invert_transform,
    load_series,
    sliding_windows,
    transform_offset,
)
from ..decode import LayerStepper
from ..layers import GRU, LSTM
from .base import config_from_dict, register

log = logging.getLogger(__name__)

CELLS = {"lstm": LSTM, "gru": GRU}
LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.smooth_l1_loss}
SPLITS = ("valid", "test")


@dataclass
class ForecastConfig:
    """Forecasting settings (the trainer's live in :class:`rnnkit.train.TrainerConfig`).

    ``data`` None uses the built-in ``dataset``; a file (``.csv``, ``.npy``, ``.npz``) is read with
    :func:`rnnkit.data.series.load_series`. ``columns``/``target``: comma-separated column names
    (default all numeric columns / all of ``columns``). ``period`` None: the built-in's (12, 11,
    the sine's period) or guessed from the dates (monthly 12, quarterly 4, daily 7, hourly 24).
    ``drop_last`` > 0 ignores the series' last steps, moving every split earlier (backtesting).
    """

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
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    ensemble: int = 1
    loss: str = "mse"
    batch_size: int = 32
    statsmodels_baselines: bool = True
    sine_length: int = 1000
    sine_period: float = 25.0
    sine_noise: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dataset not in BUILTIN_SERIES:
            raise ValueError(
                f"dataset must be one of {sorted(BUILTIN_SERIES)}, got {self.dataset!r}"
            )
        choices = dict(transform=TRANSFORMS, mode=("direct", "autoregressive"), cell=tuple(CELLS),
                       loss=tuple(LOSSES))  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("horizon", "input_len", "hidden_size", "num_layers", "ensemble", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
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


class _Member(nn.Module):
    def __init__(self, cfg: ForecastConfig, n_in: int, n_out: int) -> None:
        super().__init__()
        self.rnn = CELLS[cfg.cell](
            n_in, cfg.hidden_size, num_layers=cfg.num_layers,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )  # fmt: skip
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size, n_out)


class Forecaster(nn.Module):
    """An ensemble of ``E`` recurrent forecasters.

    ``forward(x (T, N, C)) -> (E, ...)``: direct mode ``(E, N, H, K)``, the ``H`` next values of
    the ``K`` targets after the window; autoregressive mode ``(E, T, N, C)``, the next step after
    every position. :meth:`forecast` gives the ensemble mean ``(N, H, K)`` in both modes.
    """

    def __init__(self, cfg: ForecastConfig, n_in: int, n_targets: int) -> None:
        super().__init__()
        self.mode, self.horizon, self.n_targets = cfg.mode, cfg.horizon, n_targets
        n_out = n_targets * cfg.horizon if cfg.mode == "direct" else n_in
        self.members = nn.ModuleList(_Member(cfg, n_in, n_out) for _ in range(cfg.ensemble))

    def forward(self, x: Tensor) -> Tensor:
        outs = []
        for m in self.members:
            out, _ = m.rnn(x)  # (T, N, R)
            if self.mode == "direct":
                y = m.head(m.drop(out[-1]))  # (N, H*K)
                outs.append(y.view(x.shape[1], self.horizon, self.n_targets))
            else:
                outs.append(m.head(m.drop(out)))  # (T, N, C)
        return torch.stack(outs)

    @torch.no_grad()
    def forecast(self, x: Tensor, horizon: int | None = None) -> Tensor:
        """``x (T, N, C) -> (N, H, K)``: the ensemble's mean forecast (evaluation semantics)."""
        if self.mode == "direct":
            return self(x).mean(0)
        horizon = horizon or self.horizon
        outs = []
        for m in self.members:
            out, state = m.rnn(x)
            y, preds, stepper = m.head(out[-1]), [], LayerStepper(m.rnn)
            for _ in range(horizon):
                preds.append(y)
                h, state = stepper.step(y, state)
                y = m.head(h)
            outs.append(torch.stack(preds, dim=1))  # (N, H, C)
        return torch.stack(outs).mean(0)


# ---------------------------------------------------------------- metrics and baselines


def mase_scale(history: np.ndarray, period: int) -> np.ndarray:
    """Per column, the in-sample MAE of the seasonal naive forecast ``y_{t-period}`` (MASE's
    denominator, Hyndman & Koehler 2006)."""
    m = min(period, len(history) - 1)
    return np.mean(np.abs(history[m:] - history[:-m]), axis=0)


def forecast_errors(
    truth: np.ndarray, forecast: np.ndarray, history: np.ndarray, period: int
) -> dict[str, float]:
    """``mae``, ``rmse`` and ``mase`` of ``forecast (H, K)`` against ``truth (H, K)``, averaged
    over the ``K`` columns (MASE scaled by each column's :func:`mase_scale` on ``history``)."""
    err = forecast - truth
    scale = np.maximum(mase_scale(history, period), 1e-12)
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.mean(np.sqrt(np.mean(err**2, axis=0)))),
        "mase": float(np.mean(np.mean(np.abs(err), axis=0) / scale)),
    }


def seasonal_naive(
    history: np.ndarray, horizon: int, period: int, drift: bool = False
) -> np.ndarray:
    """``(H, K)``: the last season repeated; with ``drift``, plus ``k`` times the mean change over
    the last season for the ``k``-th season ahead (a yearly drift for monthly data)."""
    m = min(period, len(history))
    h = np.arange(horizon)
    out = history[len(history) - m + h % m]
    if drift and len(history) >= 2 * m:
        step = np.mean(history[-m:] - history[-2 * m : -m], axis=0)
        out = out + (h // m + 1)[:, None] * step
    return out


def _statsmodels_forecast(name: str, y: np.ndarray, horizon: int, period: int) -> np.ndarray:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    seasonal = period > 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "ets":
            model = ExponentialSmoothing(
                y, trend="add", seasonal="add" if seasonal else None,
                seasonal_periods=period if seasonal else None,
            ).fit()  # fmt: skip
        else:
            order = (0, 1, 1, period) if seasonal else (0, 0, 0, 0)
            model = SARIMAX(y, order=(1, 1, 1), seasonal_order=order).fit(disp=False)
        return np.asarray(model.forecast(horizon))


def baseline_forecasts(
    history: np.ndarray, horizon: int, period: int, statsmodels: bool = True
) -> dict[str, np.ndarray]:
    """``{name: (H, K)}`` for ``snaive``, ``snaive_drift`` and, with ``statsmodels``, ``ets``
    (ETS(A,A,A); (A,A,N) when ``period == 1``) and ``sarima`` (SARIMA(1,1,1)(0,1,1,period);
    ARIMA(1,1,1) when ``period == 1``), each fitted per column; a model that fails to fit is left
    out with a warning in the log."""
    out = {"snaive": seasonal_naive(history, horizon, period),
           "snaive_drift": seasonal_naive(history, horizon, period, drift=True)}  # fmt: skip
    if not statsmodels:
        return out
    for name in ("ets", "sarima"):
        try:
            cols = [_statsmodels_forecast(name, history[:, k], horizon, period)
                    for k in range(history.shape[1])]  # fmt: skip
            out[name] = np.stack(cols, axis=1)
        except ImportError:
            log.warning("statsmodels is not installed: no ETS/SARIMA baselines")
            break
        except Exception as e:  # statsmodels raises many kinds on short or odd series
            log.warning("%s baseline could not be fitted: %s", name, e)
    return out


# ---------------------------------------------------------------- the task


class _Batches:
    """One epoch's training batches: direct ``(x (L, N, C), y (H, N, K))``, autoregressive
    ``(seq (L + H, N, C),)``."""

    def __init__(self, windows: np.ndarray, order: list[np.ndarray], task: ForecastTask) -> None:
        self.windows, self.order, self.task = windows, order, task

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        w = torch.from_numpy(self.windows[self.order[i]]).transpose(0, 1)  # (L + H, N, C)
        if self.task.cfg.mode == "autoregressive":
            return (w,)
        L = self.task.cfg.input_len
        return w[:L], w[L:, :, self.task.target_idx]


@register("forecast")
class ForecastTask:
    """Forecast a time series ``horizon`` steps ahead with an LSTM/GRU (direct or step by step)."""

    Config = ForecastConfig
    PRESETS = PRESETS

    def __init__(self, cfg: ForecastConfig, scaler: Scaler | None = None) -> None:
        self.cfg = cfg
        self.series, self.period = self._load(cfg)
        cols = self.series.columns
        self.targets = _names(cfg.target) or list(cols)
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

    @staticmethod
    def _load(cfg: ForecastConfig) -> tuple[Series, int]:
        cols = _names(cfg.columns)
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

    def _transform(self, y: np.ndarray) -> np.ndarray:
        """``scaler(transform(y))``: ``(T, C) -> (T - offset, C)``."""
        return self.scaler.transform(apply_transform(y, self.cfg.transform, self.period))

    # ---- TrainableTask protocol
    def build_model(self) -> Forecaster:
        return Forecaster(self.cfg, len(self.series.columns), len(self.targets))

    def batches(self, split: str, epoch: int) -> _Batches | list[int]:
        """Training: the epoch's shuffled windows. 'valid'/'test': one item, the forecast origin
        (:meth:`evaluate` makes that one forecast)."""
        if split != "train":
            return [self.origin(split)]
        rng = np.random.default_rng([self.cfg.seed, epoch])
        perm = rng.permutation(len(self.windows))
        bs = self.cfg.batch_size
        return _Batches(self.windows, [perm[i : i + bs] for i in range(0, len(perm), bs)], self)

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
        data = {**state["config"], **{k: v for k, v in overrides.items() if v is not None}}
        task = cls(config_from_dict(ForecastConfig, data), Scaler.from_dict(state["scaler"]))
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
            path, self._labels(), history, labelled.pop(first), self.targets, truth=truth,
            baselines=labelled, title=f"{self.series.source}: {split} forecast", label=first,
        )  # fmt: skip

    def _labels(self, series: Series | None = None) -> list[str]:
        series = series or self.series
        n, h = len(series), self.cfg.horizon
        base = series.dates or [str(i) for i in range(n)]
        return (
            list(base) + future_dates(base, h) if series.dates else [str(i) for i in range(n + h)]
        )

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
            labels = self._labels(series)[len(series) :]
            lines.append(f"# {series.source}: {self.cfg.horizon} steps ahead")
            lines.append("\t".join(["date" if series.dates else "step", *self.targets]))
            rows = ["\t".join([lab, *(f"{v:.6g}" for v in row)]) for lab, row in zip(labels, fc)]
            lines.extend(rows)
            if out_dir is not None:
                out = Path(out_dir)
                out.mkdir(parents=True, exist_ok=True)
                (out / f"{stem}.csv").write_text("\n".join([lines[-len(rows) - 1], *rows]) + "\n")
                plot_forecast(out / f"{stem}.png", self._labels(series),
                              series.values[:, self.target_idx], fc, self.targets,
                              title=f"{series.source}: forecast")  # fmt: skip
        if out_dir is not None and not inputs:
            self.plot(model, "test", Path(out_dir) / "test.png")
        return lines


def _names(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def plot_forecast(
    path: str | Path,
    labels: list[str],
    history: np.ndarray,
    forecast: np.ndarray,
    names: list[str],
    truth: np.ndarray | None = None,
    baselines: dict[str, np.ndarray] | None = None,
    title: str = "",
    label: str = "rnnkit",
) -> Path:
    """A PNG, one panel per target: the end of ``history (T, K)``, ``truth``, the ``forecast
    (H, K)`` and the ``baselines``; ``labels`` names steps ``0 .. T + H - 1`` on the x axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, h = len(history), len(forecast)
    start = max(0, t - 3 * h)
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 3.2 * len(names)), squeeze=False)
    past, ahead = np.arange(start, t), np.arange(t, t + h)
    for k, (ax, name) in enumerate(zip(axes[:, 0], names)):
        ax.plot(past, history[start:, k], color="0.3", label="history")
        if truth is not None:
            ax.plot(ahead, truth[:, k], color="black", lw=2, label="truth")
        for bname, fc in (baselines or {}).items():
            ax.plot(ahead, fc[:, k], ls="--", lw=1.2, label=bname)
        ax.plot(ahead, forecast[:, k], color="tab:red", lw=1.8, alpha=0.85, label=label)
        ticks = np.linspace(start, t + h - 1, 6).round().astype(int)
        ax.set_xticks(ticks, [labels[i] for i in ticks])
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
