"""The forecaster: an ensemble of recurrent layers with a linear head each.

Modes: ``direct`` -- the recurrent layer reads the window and one linear layer emits all
``horizon x targets`` values at once (the MIMO strategy, Ben Taieb et al. 2012); ``autoregressive``
-- the layer predicts the next step at every position (teacher forcing, Chainer's example) and the
forecast feeds each prediction back. ``ensemble`` > 1 trains several members (different initial
weights) side by side and averages their forecasts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...decode import LayerStepper
from ..cells import recurrent_layer
from .config import ForecastConfig


class _Member(nn.Module):
    def __init__(self, cfg: ForecastConfig, n_in: int, n_out: int) -> None:
        super().__init__()
        self.rnn = recurrent_layer(
            cfg.cell, n_in, cfg.hidden_size, num_layers=cfg.num_layers,
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
