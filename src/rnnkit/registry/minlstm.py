"""minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?"): an LSTM
whose gates read only the input and whose forget and input gates are normalised to sum to one,
so that its recurrence is linear in ``h`` and a whole sequence runs as one parallel scan.

Gates ``(f, i, h)``; state ``(h,)``, ``h (N, H)`` (no cell state: the normalised gates make
``h`` time-independent in scale); no recurrent weight. With ``[k_f, k_i, k_h] = LN(x W_ih^T;
ln_ih) + b_ih``::

    f_t = sigmoid(k_f),  i_t = sigmoid(k_i),  h~_t = g(k_h)          (g of minGRU: g > 0)
    f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
    h_t = f'_t h_{t-1} + i'_t h~_t

In logs (the paper's appendix): ``d = softplus(-k_f) - softplus(-k_i) = log(i / f)``,
``log f' = -softplus(d)``, ``log i' = -softplus(-d)``; so ``f' = sigmoid(-d)``, ``i' =
sigmoid(d)``. Over a sequence ``log a = log f'`` and ``log b = log i' + log g(k_h)`` run as the
log-space scan of :mod:`rnnkit.parallel_scan`. Options: ``layer_norm`` (input projection,
``ln_ih (3H,)``) and ``scan_chunk``, as minGRU's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..parallel_scan import linear_sequence
from .mingru import g, log_g
from .spec import CellSpec, StateSpec, input_layer_norm_parameters, register_cell


def _log_ratio(k_f: Tensor, k_i: Tensor) -> Tensor:
    """``d = log(i / f) = softplus(-k_f) - softplus(-k_i)``."""
    return F.softplus(-k_f) - F.softplus(-k_i)


def minlstm_step(gx: Tensor, h: Tensor) -> Tensor:
    """One minLSTM step: ``gx (N, 3H)`` the input projection ``[k_f, k_i, k_h]``, ``h (N, H)``;
    ``h' = f' h + i' g(k_h) = h + i' (g(k_h) - h)`` with ``i' = sigmoid(d)``."""
    k_f, k_i, k_h = gx.chunk(3, dim=-1)
    return torch.lerp(h, g(k_h), torch.sigmoid(_log_ratio(k_f, k_i)))


def coefficients(gx: Tensor) -> tuple[Tensor, Tensor]:
    """``(a, b) = (f', i' g(k_h))``, ``gx (T, N, 3H) -> (T, N, H)`` each."""
    k_f, k_i, k_h = gx.chunk(3, dim=-1)
    d = _log_ratio(k_f, k_i)
    return torch.sigmoid(-d), torch.sigmoid(d) * g(k_h)


def log_coefficients(gx: Tensor) -> tuple[Tensor, Tensor]:
    """``(log a, log b) = (log f', log i' + log g(k_h))``, ``gx (T, N, 3H) -> (T, N, H)`` each."""
    k_f, k_i, k_h = gx.chunk(3, dim=-1)
    d = _log_ratio(k_f, k_i)
    return -F.softplus(d), -F.softplus(-d) + log_g(k_h)


def _step(gx, state, p, w_hh=None, dropout_mask=None):
    return (minlstm_step(gx, state[0]),)


MINLSTM = register_cell(
    CellSpec(
        name="minlstm",
        title="minLSTM",
        torch_mode="",
        gates=("f", "i", "h"),
        states=(StateSpec("h", "output"),),
        step=_step,
        parameters=input_layer_norm_parameters(3),
        layer="MinLSTM",
        cell="MinLSTMCell",
        options=frozenset({"scan_chunk"}),
        backends=("parallel", "reference"),
        paper="Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024",
        recurrent="none",
        common_options=frozenset({"layer_norm"}),
        sequence=linear_sequence(coefficients, log_coefficients),
    )
)
