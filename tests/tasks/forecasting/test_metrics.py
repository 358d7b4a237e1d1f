"""Forecast errors and the naive baselines, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.tasks.forecasting import (
    forecast_errors,
    seasonal_naive,
)


def test_metrics_and_naive_baselines_by_hand():
    history = np.array([1.0, 2, 3, 4, 2, 3, 4, 5])[:, None]  # period 4, +1 a season
    np.testing.assert_array_equal(seasonal_naive(history, 6, 4)[:, 0], [2, 3, 4, 5, 2, 3])
    drift = seasonal_naive(history, 6, 4, drift=True)[:, 0]
    np.testing.assert_array_equal(drift, [3, 4, 5, 6, 4, 5])
    truth = drift[:, None]
    fc = truth + np.array([1.0, -1, 1, -1, 1, -1])[:, None]
    err = forecast_errors(truth, fc, history, period=4)
    assert err["mae"] == 1.0 and err["rmse"] == 1.0
    assert err["mase"] == pytest.approx(1.0 / 1.0)  # in-sample seasonal naive MAE is 1
