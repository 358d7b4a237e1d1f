"""The baseline forecasts beside the model's: seasonal naive, seasonal naive with yearly drift
(last season + k x the mean change over the last season), and statsmodels' ETS(A,A,A)
(Holt-Winters) and SARIMA(1,1,1)(0,1,1,m) fitted to the same history."""

from __future__ import annotations

import logging
import warnings

import numpy as np

log = logging.getLogger(__name__)


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
