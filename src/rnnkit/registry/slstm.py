"""sLSTM (Beck, Pöppel, Spanring, Auer, Prudnikova, Kopp, Klambauer, Brandstetter & Hochreiter
2024, "xLSTM: Extended Long Short-Term Memory", sec. 2.2): an LSTM with exponential gating, a
normaliser state and a stabiliser state, and a recurrent weight block-diagonal by heads.

Gates ``(i, f, z, o)`` (the xLSTM code's order); state ``(h, c, n, m)``, each ``(N, H)``;
recurrent weight ``R = weight_hh (K, 4H/K, H/K)`` for ``K`` heads
(:func:`rnnkit.functional.apply_recurrent_weight`). With ``[i~, f~, z~, o~] = LN(x W_ih^T;
ln_ih) + b_ih + LN(blockdiag(R) (h_{t-1} * mask); ln_hh) + b_hh``::

    log f_t = f~  (forget_gate="exp")   or   log sigmoid(f~) = -softplus(-f~)  ("sigmoid")
    m_t  = max(log f_t + m_{t-1}, i~)                               stabiliser
    i'_t = exp(i~ - m_t),  f'_t = exp(log f_t + m_{t-1} - m_t)      stabilised gates, <= 1
    c_t  = f'_t c_{t-1} + i'_t tanh(z~)
    n_t  = f'_t n_{t-1} + i'_t                                      normaliser, > 0 after a step
    h_t  = sigmoid(o~) c_t / n_t

``m`` rescales ``c`` and ``n`` together, so ``h`` is the unstabilised ``o c / n`` exactly; the
zero state (``n_0 = 0``) is valid because ``n_1 = i'_1 > 0``. Options: ``num_heads`` (default 4
when it divides ``H``, else 1), ``forget_gate`` (``"exp"`` or ``"sigmoid"``), ``layer_norm`` (of
both projections, ``ln_ih``, ``ln_hh (4H,)``), ``recurrent_dropout`` (on ``h`` before ``R``),
``weight_drop`` (DropConnect on ``R``), ``forget_bias`` (initial ``b_ih`` of ``f~``). Zoneout is
refused: it would blend ``c`` and ``n`` at different stabiliser scales.

Backends: on CPU float32/float64 a direction runs as one C time loop
(:mod:`rnnkit.backends.cpu_kernels.slstm`); the step loop of :func:`slstm_step` serves the rest
(``lengths``, recurrent dropout, DropConnect, ``layer_norm``, CUDA, torch.func transforms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..functional import CellParams, recurrent_projection
from .spec import CellSpec, StateSpec, layer_norm_parameters, register_cell

FORGET_GATES = ("exp", "sigmoid")


def slstm_step(
    gx: Tensor,
    state: tuple[Tensor, Tensor, Tensor, Tensor],
    p: CellParams,
    w_hh: Tensor | None = None,
    dropout_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One sLSTM step: ``gx (N, 4H)`` the input projection, ``state = (h, c, n, m)``, each
    ``(N, H)``; returns the new ``(h, c, n, m)`` (equations in the module docstring)."""
    h, c, n, m = state
    i_t, f_t, z_t, o_t = (gx + recurrent_projection(h, p, w_hh, dropout_mask)).chunk(4, dim=-1)
    sigmoid_gate = getattr(p.variants, "forget_gate", "exp") == "sigmoid"
    log_f = -F.softplus(-f_t) if sigmoid_gate else f_t
    decayed = log_f + m
    m_new = torch.maximum(decayed, i_t)
    i_gate = torch.exp(i_t - m_new)
    f_gate = torch.exp(decayed - m_new)
    c_new = f_gate * c + i_gate * torch.tanh(z_t)
    n_new = f_gate * n + i_gate
    return torch.sigmoid(o_t) * c_new / n_new, c_new, n_new, m_new


def _step(gx, state, p, w_hh=None, dropout_mask=None):
    return slstm_step(gx, state, p, w_hh, dropout_mask)


SLSTM = register_cell(
    CellSpec(
        name="slstm",
        title="sLSTM",
        torch_mode="",
        kernel="slstm",
        backends=("cpu_kernels", "reference"),
        gates=("i", "f", "z", "o"),
        states=(
            StateSpec("h", "output"),
            StateSpec("c", "hidden", mixable=False),
            StateSpec("n", "hidden", mixable=False),
            StateSpec("m", "hidden", mixable=False),
        ),
        step=_step,
        parameters=layer_norm_parameters(4),
        layer="SLSTM",
        cell="SLSTMCell",
        options=frozenset({"num_heads", "forget_gate", "forget_bias"}),
        paper="Beck et al. 2024 (xLSTM)",
        recurrent="heads",
        common_options=frozenset({"layer_norm", "recurrent_dropout", "weight_drop"}),
    )
)
