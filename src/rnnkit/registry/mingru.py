"""minGRU (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?"): a GRU
whose gates read only the input, so that its recurrence is linear in ``h`` and a whole sequence
runs as one parallel scan.

Gates ``(z, h)``; state ``(h,)``, ``h (N, H)``; no recurrent weight (``W_hh``, ``b_hh``). With
``[k_z, k_h] = LN(x W_ih^T; ln_ih) + b_ih``::

    z_t = sigmoid(k_z),  h~_t = g(k_h),  h_t = (1 - z_t) h_{t-1} + z_t h~_t
    g(x) = x + 0.5 for x >= 0, sigmoid(x) for x < 0      (the paper's log-space version: g > 0)

Over a sequence (:func:`sequence`) ``h_t = a_t h_{t-1} + b_t`` with ``log a_t = -softplus(k_z)``,
``log b_t = log z_t + log g(k_h)``, ``log z_t = -softplus(-k_z) = k_z + log a_t`` and
``log g(x) = log(x + 0.5)`` for ``x >= 0``, ``-softplus(-x)`` else, runs as Heinsen's
log-space scan (:mod:`rnnkit.parallel_scan`). Options: ``layer_norm`` (of the input projection
only: ``ln_ih (2H,)``) and ``scan_chunk`` (steps per chunk of the scan; 1: Heinsen's scan over
every step).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..parallel_scan import linear_sequence
from .spec import CellSpec, StateSpec, input_layer_norm_parameters, register_cell


def g(x: Tensor) -> Tensor:
    """minGRU/minLSTM's positive activation: ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` else,
    computed without a branch as ``relu(x) + sigmoid(min(x, 0))`` (one-sided derivatives 1 and
    ``sigmoid'``; at ``x = 0`` autograd gives ``sigmoid'(0) = 0.25``)."""
    return F.relu(x) + torch.sigmoid(torch.clamp(x, max=0.0))


def log_g(x: Tensor) -> Tensor:
    """``log g(x)``: ``log(x + 0.5)`` for ``x >= 0``, ``log sigmoid(x) = -softplus(-x)`` else;
    without a branch, ``log(relu(x) + 0.5) - softplus(-min(x, 0)) + log 2`` (finite for every
    finite ``x``; same derivatives as :func:`g` / ``g``)."""
    return torch.log(F.relu(x) + 0.5) - F.softplus(-torch.clamp(x, max=0.0)) + LOG2


LOG2 = math.log(2.0)


def mingru_step(gx: Tensor, h: Tensor) -> Tensor:
    """One minGRU step: ``gx (N, 2H)`` the input projection ``[k_z, k_h]``, ``h (N, H)``;
    ``h' = h + sigmoid(k_z) (g(k_h) - h)``."""
    k_z, k_h = gx.chunk(2, dim=-1)
    return torch.lerp(h, g(k_h), torch.sigmoid(k_z))


def coefficients(gx: Tensor) -> tuple[Tensor, Tensor]:
    """``(a, b) = (1 - z, z g(k_h))`` of the linear recurrence, ``gx (T, N, 2H) -> (T, N, H)``
    each (``1 - z = sigmoid(-k_z)``, exact where ``z`` is close to 1)."""
    k_z, k_h = gx.chunk(2, dim=-1)
    return torch.sigmoid(-k_z), torch.sigmoid(k_z) * g(k_h)


def log_coefficients(gx: Tensor) -> tuple[Tensor, Tensor]:
    """``(log a, log b)`` of the linear recurrence, ``gx (T, N, 2H) -> (T, N, H)`` each."""
    k_z, k_h = gx.chunk(2, dim=-1)
    log_a = -F.softplus(k_z)  # log(1 - z)
    return log_a, k_z + log_a + log_g(k_h)  # log z + log g(k_h)


def _step(gx, state, p, w_hh=None, dropout_mask=None):
    return (mingru_step(gx, state[0]),)


MINGRU = register_cell(
    CellSpec(
        name="mingru",
        title="minGRU",
        torch_mode="",
        gates=("z", "h"),
        states=(StateSpec("h", "output"),),
        step=_step,
        parameters=input_layer_norm_parameters(2),
        layer="MinGRU",
        cell="MinGRUCell",
        options=frozenset({"scan_chunk"}),
        backends=("parallel", "reference"),
        paper="Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024",
        recurrent="none",
        common_options=frozenset({"layer_norm"}),
        sequence=linear_sequence(coefficients, log_coefficients),
    )
)
