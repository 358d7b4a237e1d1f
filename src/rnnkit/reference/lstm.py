"""LSTM of the NumPy oracle: one step with optional layer norm, peephole, zoneout and recurrent
dropout, its hand-written backward, and the sequence versions.

CS231n gate order ``i, f, o, g`` in ``Wx (D, 4H)``, ``Wh (H, 4H)`` and one bias ``b (4H,)``
(torch's ``b_ih + b_hh``). The options and their papers are described in
:mod:`rnnkit.reference.variants`; with every option off these are
:func:`rnnkit.reference.layers.lstm_step_forward` and friends.
"""

from __future__ import annotations

import numpy as np

from .common import (
    _add_grads,
    _backward_through_time,
    _check_shape,
    _forward_through_time,
    _gate_inputs,
    _gate_inputs_backward,
    _ln_back,
    _mask,
    _maybe_ln,
    _zoneout,
    _zoneout_backward,
    sigmoid,
)

__all__ = [
    "lstm_variant_backward",
    "lstm_variant_forward",
    "lstm_variant_step_backward",
    "lstm_variant_step_forward",
]


def lstm_variant_step_forward(
    x,
    prev_h,
    prev_c,
    Wx,
    Wh,
    b,
    *,
    gamma_x=None,
    gamma_h=None,
    gamma_c=None,
    beta_c=None,
    peephole=None,
    zoneout_h=None,
    zoneout_c=None,
    dropout_mask=None,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One LSTM step with optional layer norm, peephole, zoneout and recurrent dropout.

    ``a = LN(x Wx; gamma_x) + LN((prev_h * dropout_mask) Wh; gamma_h) + b`` split into i, f, o, g;
    ``i = s(a_i + P0 c_prev)``, ``f = s(a_f + P1 c_prev)``, ``g = tanh(a_g)``,
    ``c_new = f c_prev + i g``, ``o = s(a_o + P2 c_new)``, ``h_new = o tanh(LN(c_new; gamma_c) +
    beta_c)``, then zoneout: ``next_h = m_h h_prev + (1 - m_h) h_new`` (same for c). Absent
    options drop their term. See :mod:`rnnkit.reference.variants` for the papers.

    Shapes: x ``(N, D)``, prev_h/prev_c ``(N, H)``, Wx ``(D, 4H)``, Wh ``(H, 4H)``, b ``(4H,)``,
    gamma_x/gamma_h ``(4H,)``, gamma_c/beta_c ``(H,)``, peephole ``(3, H)``, masks broadcastable to
    ``(N, H)`` -> ``(next_h (N, H), next_c (N, H), cache)``.
    """
    N, H = prev_h.shape
    m_h = _mask("zoneout_h", zoneout_h, (N, H))
    m_c = _mask("zoneout_c", zoneout_c, (N, H))
    ax, ah, inputs = _gate_inputs(x, prev_h, Wx, Wh, gamma_x, gamma_h, dropout_mask, eps)
    a = ax + ah + b
    a_i, a_f, a_o, a_g = (a[:, k * H : (k + 1) * H] for k in range(4))
    if peephole is not None:
        _check_shape("peephole", peephole, (3, H))
        a_i = a_i + peephole[0] * prev_c
        a_f = a_f + peephole[1] * prev_c
    i, f, g = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g)
    c_new = f * prev_c + i * g
    if peephole is not None:
        a_o = a_o + peephole[2] * c_new
    o = sigmoid(a_o)
    cn, ln_c = _maybe_ln(c_new, gamma_c, eps, beta_c, name="gamma_c")
    tanh_c = np.tanh(cn)
    h_new = o * tanh_c
    next_h = _zoneout(m_h, prev_h, h_new)
    next_c = _zoneout(m_c, prev_c, c_new)
    cache = dict(
        inputs, prev_c=prev_c, peephole=peephole, i=i, f=f, o=o, g=g, c_new=c_new,
        tanh_c=tanh_c, ln_c=ln_c, m_h=m_h, m_c=m_c,
    )  # fmt: skip
    return next_h, next_c, cache


def lstm_variant_step_backward(dnext_h, dnext_c, cache: dict) -> dict:
    """Backward of :func:`lstm_variant_step_forward`.

    Returns a dict with ``dx, dprev_h, dprev_c, dWx, dWh, db`` and, for the options that were
    given, ``dgamma_x, dgamma_h, dgamma_c, dbeta_c, dpeephole``.
    """
    C = cache
    i, f, o, g, prev_c = C["i"], C["f"], C["o"], C["g"], C["prev_c"]
    P = C["peephole"]
    dh_new, dprev_h = _zoneout_backward(C["m_h"], dnext_h)
    dc_new, dprev_c = _zoneout_backward(C["m_c"], dnext_c)
    # h_new = o * tanh(LN(c_new) + beta_c)
    dcn, dgamma_c, dbeta_c = _ln_back(dh_new * o * (1.0 - C["tanh_c"] ** 2), C["ln_c"])
    dc_new = dc_new + dcn
    da_o = dh_new * C["tanh_c"] * o * (1.0 - o)
    if P is not None:
        dc_new = dc_new + da_o * P[2]
    # c_new = f * c_prev + i * g
    da_i = dc_new * g * i * (1.0 - i)
    da_f = dc_new * prev_c * f * (1.0 - f)
    da_g = dc_new * i * (1.0 - g**2)
    dprev_c = dprev_c + dc_new * f
    dpeephole = None
    if P is not None:
        dprev_c = dprev_c + da_i * P[0] + da_f * P[1]
        dpeephole = np.stack(
            [(da_i * prev_c).sum(0), (da_f * prev_c).sum(0), (da_o * C["c_new"]).sum(0)]
        )
    da = np.concatenate([da_i, da_f, da_o, da_g], axis=1)
    dx, dh_rec, dWx, dWh, dgamma_x, dgamma_h = _gate_inputs_backward(da, da, C)
    grads = dict(
        dx=dx, dprev_h=dprev_h + dh_rec, dprev_c=dprev_c, dWx=dWx, dWh=dWh, db=da.sum(axis=0)
    )
    return _add_grads(
        grads,
        dgamma_x=dgamma_x,
        dgamma_h=dgamma_h,
        dgamma_c=dgamma_c,
        dbeta_c=dbeta_c,
        dpeephole=dpeephole,
    )


def lstm_variant_forward(
    x, h0, c0, Wx, Wh, b, *, zoneout_h=None, zoneout_c=None, dropout_mask=None, **options
) -> tuple[np.ndarray, np.ndarray, list]:
    """LSTM over a sequence with the options of :func:`lstm_variant_step_forward`.

    Shapes: x ``(N, T, D)``, h0 ``(N, H)``, c0 ``(N, H)`` or None (zeros); zoneout masks
    broadcastable to ``(N, T, H)`` (one per step; a scalar rate for eval), dropout_mask to
    ``(N, H)`` (the same at every step); ``options`` are gamma_x, gamma_h, gamma_c, beta_c,
    peephole, eps -> ``(h (N, T, H), c_last (N, H), cache)``; the cache is the list of step
    caches.
    """
    c0 = np.zeros_like(h0) if c0 is None else c0
    h, (_, c_last), caches = _forward_through_time(
        lambda x_t, h, c, **m: lstm_variant_step_forward(x_t, h, c, Wx, Wh, b, **m, **options),
        x,
        (h0, c0),
        dict(zoneout_h=zoneout_h, zoneout_c=zoneout_c, dropout_mask=dropout_mask),
        np.result_type(x, h0, c0, Wx),
    )
    return h, c_last, caches


def lstm_variant_backward(dh, dc_last, cache: list) -> dict:
    """Backward of :func:`lstm_variant_forward`: dh ``(N, T, H)``, dc_last ``(N, H)`` or None ->
    dict with ``dx, dh0, dc0, dWx, dWh, db`` and the given options' gradients."""
    dc_last = np.zeros_like(dh[:, 0]) if dc_last is None else dc_last
    return _backward_through_time(lstm_variant_step_backward, dh, cache, c=dc_last)
