"""sLSTM of the NumPy oracle (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory", sec.
2.2): one step with optional layer norm, recurrent dropout and a sigmoid forget gate, its
hand-written backward, the sequence versions, and the block-diagonal recurrent weight of heads
as a dense matrix.

Gates ``i, f, z, o`` (the xLSTM code's order) in ``Wx (D, 4H)``, ``Wh (H, 4H)`` (dense here:
:func:`slstm_dense_recurrent` builds it from heads), one bias ``b (4H,)``; state ``(h, c, n, m)``::

    a = LN(x Wx; gamma_x) + LN((prev_h * dropout_mask) Wh; gamma_h) + b = [i~, f~, z~, o~]
    lf = f~ (forget_gate "exp") or log s(f~) ("sigmoid");  u = lf + prev_m
    m = max(u, i~),  i' = exp(i~ - m),  f' = exp(u - m)
    c = f' prev_c + i' tanh(z~),  n = f' prev_n + i',  h = s(o~) c / n

``max`` passes its gradient to the larger argument, half to each on a tie (``torch.maximum``).
"""

from __future__ import annotations

import numpy as np

from .common import (
    _add_grads,
    _backward_through_time,
    _forward_through_time,
    _gate_inputs,
    _gate_inputs_backward,
    sigmoid,
)

__all__ = [
    "slstm_backward",
    "slstm_dense_recurrent",
    "slstm_forward",
    "slstm_heads_gradient",
    "slstm_step_backward",
    "slstm_step_forward",
]

FORGET_GATES = ("exp", "sigmoid")


def slstm_dense_recurrent(R) -> np.ndarray:
    """The dense ``Wh (H, 4H)`` of a recurrent weight by heads, ``R (K, 4H/K, H/K)`` in rnnkit's
    layout: head ``k``, row ``g*H/K + j`` maps unit ``k*H/K + l`` of ``h`` to gate ``g``, unit
    ``k*H/K + j``."""
    K, rows, d = R.shape
    G, H = rows // d, K * d
    W = np.zeros((G * H, H), dtype=R.dtype)  # torch orientation: out = h W^T
    for k in range(K):
        for g in range(G):
            W[g * H + k * d : g * H + (k + 1) * d, k * d : (k + 1) * d] = R[k, g * d : (g + 1) * d]
    return W.T


def slstm_heads_gradient(dWh, heads: int) -> np.ndarray:
    """The gradient of ``R (K, 4H/K, H/K)`` from that of its dense ``Wh (H, 4H)``: the blocks."""
    W = dWh.T
    H = W.shape[1]
    G, d = W.shape[0] // H, H // heads
    dR = np.zeros((heads, G * d, d), dtype=dWh.dtype)
    for k in range(heads):
        for g in range(G):
            dR[k, g * d : (g + 1) * d] = W[g * H + k * d : g * H + (k + 1) * d, k * d : (k + 1) * d]
    return dR


def slstm_step_forward(
    x,
    prev_h,
    prev_c,
    prev_n,
    prev_m,
    Wx,
    Wh,
    b,
    *,
    gamma_x=None,
    gamma_h=None,
    forget_gate: str = "exp",
    dropout_mask=None,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """One sLSTM step. Shapes: x ``(N, D)``, the four states ``(N, H)``, Wx ``(D, 4H)``, Wh ``(H,
    4H)``, b/gamma_x/gamma_h ``(4H,)``, dropout_mask broadcastable to ``(N, H)`` -> ``(next_h,
    next_c, next_n, next_m, cache)``."""
    if forget_gate not in FORGET_GATES:
        raise ValueError(f"forget_gate: expected one of {FORGET_GATES}, got {forget_gate!r}")
    H = prev_h.shape[1]
    ax, ah, inputs = _gate_inputs(x, prev_h, Wx, Wh, gamma_x, gamma_h, dropout_mask, eps)
    a = ax + ah + b
    a_i, a_f, a_z, a_o = (a[:, k * H : (k + 1) * H] for k in range(4))
    lf = a_f if forget_gate == "exp" else -np.logaddexp(0.0, -a_f)
    u = lf + prev_m
    m = np.maximum(u, a_i)
    i_g, f_g = np.exp(a_i - m), np.exp(u - m)
    tz, o = np.tanh(a_z), sigmoid(a_o)
    c = f_g * prev_c + i_g * tz
    n = f_g * prev_n + i_g
    h = o * c / n
    cache = dict(inputs, a_f=a_f, u=u, a_i=a_i, i_g=i_g, f_g=f_g, tz=tz, o=o, c=c, n=n,
                 prev_c=prev_c, prev_n=prev_n, sigmoid_gate=forget_gate == "sigmoid")  # fmt: skip
    return h, c, n, m, cache


def slstm_step_backward(dnext_h, dnext_c, dnext_n, dnext_m, cache: dict) -> dict:
    """Backward of :func:`slstm_step_forward` -> dict with ``dx, dprev_h, dprev_c, dprev_n,
    dprev_m, dWx, dWh, db`` and ``dgamma_x``/``dgamma_h`` when given."""
    C = cache
    o, c, n, f_g, i_g = C["o"], C["c"], C["n"], C["f_g"], C["i_g"]
    da_o = dnext_h * c / n * o * (1.0 - o)
    dc = dnext_c + dnext_h * o / n
    dn = dnext_n - dnext_h * o * c / n**2
    df_g = dc * C["prev_c"] + dn * C["prev_n"]
    di_g = dc * C["tz"] + dn
    da_z = dc * i_g * (1.0 - C["tz"] ** 2)
    du, da_i = df_g * f_g, di_g * i_g  # through exp(u - m), exp(i~ - m)
    dm = dnext_m - du - da_i
    u_wins = np.where(C["u"] > C["a_i"], 1.0, np.where(C["u"] == C["a_i"], 0.5, 0.0))
    du = du + dm * u_wins
    da_i = da_i + dm * (1.0 - u_wins)
    da_f = du * sigmoid(-C["a_f"]) if C["sigmoid_gate"] else du  # d log s(y) / dy = s(-y)
    da = np.concatenate([da_i, da_f, da_z, da_o], axis=1)
    dx, dh_rec, dWx, dWh, dgamma_x, dgamma_h = _gate_inputs_backward(da, da, C)
    grads = dict(dx=dx, dprev_h=dh_rec, dprev_c=dc * f_g, dprev_n=dn * f_g, dprev_m=du,
                 dWx=dWx, dWh=dWh, db=da.sum(axis=0))  # fmt: skip
    return _add_grads(grads, dgamma_x=dgamma_x, dgamma_h=dgamma_h)


def slstm_forward(
    x, h0, c0, n0, m0, Wx, Wh, b, *, dropout_mask=None, **options
) -> tuple[np.ndarray, tuple, list]:
    """sLSTM over a sequence. Shapes: x ``(N, T, D)``, the initial states ``(N, H)`` (None:
    zeros), dropout_mask broadcastable to ``(N, H)`` (the same every step); ``options`` are
    gamma_x, gamma_h, forget_gate, eps -> ``(h (N, T, H), (c, n, m) after the last step,
    cache)``."""
    c0, n0, m0 = (np.zeros_like(h0) if s is None else s for s in (c0, n0, m0))
    h, (_, c, n, m), caches = _forward_through_time(
        lambda x_t, h, c, n, m, **mk: slstm_step_forward(x_t, h, c, n, m, Wx, Wh, b, **mk,
                                                         **options),
        x, (h0, c0, n0, m0), dict(dropout_mask=dropout_mask), np.result_type(x, h0, Wx),
    )  # fmt: skip
    return h, (c, n, m), caches


def slstm_backward(dh, dlast: tuple | None, cache: list) -> dict:
    """Backward of :func:`slstm_forward`: dh ``(N, T, H)``, dlast the gradients of the last
    ``(c, n, m)`` or None -> dict with ``dx, dh0, dc0, dn0, dm0, dWx, dWh, db`` and the given
    options' gradients."""
    zeros = np.zeros_like(dh[:, 0])
    dc, dn, dm = (zeros, zeros, zeros) if dlast is None else dlast
    return _backward_through_time(slstm_step_backward, dh, cache, c=dc, n=dn, m=dm)
