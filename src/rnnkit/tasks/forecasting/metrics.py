"""Forecast errors: MAE, RMSE and MASE (Hyndman & Koehler 2006: MAE over the in-sample MAE of the
seasonal naive forecast with period ``period`` on the history)."""

from __future__ import annotations

import numpy as np


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
