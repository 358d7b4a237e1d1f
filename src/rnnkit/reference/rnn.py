"""Elman RNN of the NumPy oracle: one step with optional relu, layer norm, zoneout and recurrent
dropout, its hand-written backward, and the sequence versions.

``Wx (D, H)``, ``Wh (H, H)`` and one bias ``b (H,)`` (torch's ``b_ih + b_hh``). The options and
their papers are described in :mod:`rnnkit.reference.variants`; with every option off (tanh)
these are :func:`rnnkit.reference.layers.rnn_step_forward` and friends.
"""

from __future__ import annotations

import numpy as np

from .common import (
    _add_grads,
    _backward_through_time,
    _forward_through_time,
    _gate_inputs,
    _gate_inputs_backward,
    _mask,
    _zoneout,
    _zoneout_backward,
)

__all__ = [
    "rnn_variant_backward",
    "rnn_variant_forward",
    "rnn_variant_step_backward",
    "rnn_variant_step_forward",
]

_NONLINEARITIES = ("tanh", "relu")


def rnn_variant_step_forward(
    x,
    prev_h,
    Wx,
    Wh,
    b,
    *,
    nonlinearity: str = "tanh",
    gamma_x=None,
    gamma_h=None,
    zoneout_h=None,
    dropout_mask=None,
    eps: float = 1e-5,
) -> tuple[np.ndarray, dict]:
    """One Elman RNN step with optional relu, layer norm, zoneout and recurrent dropout.

    ``h_new = act(LN(x Wx; gamma_x) + LN((prev_h * dropout_mask) Wh; gamma_h) + b)`` with
    ``act`` tanh or relu, ``next_h = m_h prev_h + (1 - m_h) h_new``.

    Shapes: x ``(N, D)``, prev_h ``(N, H)``, Wx ``(D, H)``, Wh ``(H, H)``, b/gamma_x/gamma_h
    ``(H,)``, masks broadcastable to ``(N, H)`` -> ``(next_h (N, H), cache)``.
    """
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"nonlinearity: expected one of {_NONLINEARITIES}, got {nonlinearity!r}")
    m_h = _mask("zoneout_h", zoneout_h, prev_h.shape)
    ax, ah, inputs = _gate_inputs(x, prev_h, Wx, Wh, gamma_x, gamma_h, dropout_mask, eps)
    a = ax + ah + b
    h_new = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
    next_h = _zoneout(m_h, prev_h, h_new)
    cache = dict(inputs, h_new=h_new, relu=nonlinearity == "relu", m_h=m_h)
    return next_h, cache


def rnn_variant_step_backward(dnext_h, cache: dict) -> dict:
    """Backward of :func:`rnn_variant_step_forward` -> dict with ``dx, dprev_h, dWx, dWh, db``
    and ``dgamma_x``/``dgamma_h`` when given."""
    C = cache
    dh_new, dprev_zoned = _zoneout_backward(C["m_h"], dnext_h)
    h_new = C["h_new"]
    da = dh_new * (h_new > 0) if C["relu"] else dh_new * (1.0 - h_new**2)
    dx, dh_rec, dWx, dWh, dgamma_x, dgamma_h = _gate_inputs_backward(da, da, C)
    grads = dict(dx=dx, dprev_h=dh_rec + dprev_zoned, dWx=dWx, dWh=dWh, db=da.sum(axis=0))
    return _add_grads(grads, dgamma_x=dgamma_x, dgamma_h=dgamma_h)


def rnn_variant_forward(
    x, h0, Wx, Wh, b, *, zoneout_h=None, dropout_mask=None, **options
) -> tuple[np.ndarray, list]:
    """RNN over a sequence with the options of :func:`rnn_variant_step_forward`.

    Shapes: x ``(N, T, D)``, h0 ``(N, H)``, zoneout_h broadcastable to ``(N, T, H)``,
    dropout_mask to ``(N, H)``; ``options`` are nonlinearity, gamma_x, gamma_h, eps ->
    ``(h (N, T, H), cache)``; the cache is the list of step caches.
    """
    h, _, caches = _forward_through_time(
        lambda x_t, h, **m: rnn_variant_step_forward(x_t, h, Wx, Wh, b, **m, **options),
        x,
        (h0,),
        dict(zoneout_h=zoneout_h, dropout_mask=dropout_mask),
        np.result_type(x, h0, Wx),
    )
    return h, caches


def rnn_variant_backward(dh, cache: list) -> dict:
    """Backward of :func:`rnn_variant_forward`: dh ``(N, T, H)`` -> dict with ``dx, dh0, dWx,
    dWh, db`` and the given options' gradients."""
    return _backward_through_time(rnn_variant_step_backward, dh, cache)
