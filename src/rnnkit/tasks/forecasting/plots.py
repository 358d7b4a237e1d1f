"""Figures of forecasts: the history, the truth, the forecast and the baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...data.series import Series, future_dates


def step_labels(series: Series, horizon: int) -> list[str]:
    """Names of the series' steps and the ``horizon`` after it: dates when it has them, else
    ``"0" .. str(T + H - 1)``."""
    n = len(series)
    if not series.dates:
        return [str(i) for i in range(n + horizon)]
    return list(series.dates) + future_dates(series.dates, horizon)


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
