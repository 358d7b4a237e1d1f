"""GRU of the NumPy oracle: one step with optional layer norm, zoneout and recurrent dropout, its
hand-written backward, and the sequence versions.

torch.nn.GRU's form and gate order ``r, z, n`` in ``Wx (D, 3H)``, ``Wh (H, 3H)`` with two biases
``bx, bh (3H,)`` (the ``n`` gate needs ``bh_n`` inside the reset product). The options and their
papers are described in :mod:`rnnkit.reference.variants`; with every option off these are
:func:`rnnkit.reference.layers.gru_step_forward` and friends.
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
    sigmoid,
)

__all__ = [
    "gru_variant_backward",
    "gru_variant_forward",
    "gru_variant_step_backward",
    "gru_variant_step_forward",
]


def gru_variant_step_forward(
    x,
    prev_h,
    Wx,
    Wh,
    bx,
    bh,
    *,
    gamma_x=None,
    gamma_h=None,
    zoneout_h=None,
    dropout_mask=None,
    eps: float = 1e-5,
) -> tuple[np.ndarray, dict]:
    """One GRU step (torch form, order r, z, n) with optional layer norm, zoneout, dropout.

    ``ax = LN(x Wx; gamma_x) + bx``, ``ah = LN((prev_h * dropout_mask) Wh; gamma_h) + bh``,
    ``r = s(ax_r + ah_r)``, ``z = s(ax_z + ah_z)``, ``n = tanh(ax_n + r ah_n)``,
    ``h_new = (1 - z) n + z prev_h``, ``next_h = m_h prev_h + (1 - m_h) h_new``.

    Shapes: x ``(N, D)``, prev_h ``(N, H)``, Wx ``(D, 3H)``, Wh ``(H, 3H)``, bx/bh/gamma_x/gamma_h
    ``(3H,)``, masks broadcastable to ``(N, H)`` -> ``(next_h (N, H), cache)``.
    """
    N, H = prev_h.shape
    m_h = _mask("zoneout_h", zoneout_h, (N, H))
    ax, ah, inputs = _gate_inputs(x, prev_h, Wx, Wh, gamma_x, gamma_h, dropout_mask, eps)
    ax = ax + bx
    ah = ah + bh
    r = sigmoid(ax[:, :H] + ah[:, :H])
    z = sigmoid(ax[:, H : 2 * H] + ah[:, H : 2 * H])
    ah_n = ah[:, 2 * H :]
    n = np.tanh(ax[:, 2 * H :] + r * ah_n)
    h_new = (1.0 - z) * n + z * prev_h
    next_h = _zoneout(m_h, prev_h, h_new)
    cache = dict(inputs, prev_h=prev_h, r=r, z=z, n=n, ah_n=ah_n, m_h=m_h)
    return next_h, cache


def gru_variant_step_backward(dnext_h, cache: dict) -> dict:
    """Backward of :func:`gru_variant_step_forward` -> dict with ``dx, dprev_h, dWx, dWh, dbx,
    dbh`` and ``dgamma_x``/``dgamma_h`` when given."""
    C = cache
    r, z, n = C["r"], C["z"], C["n"]
    dh_new, dprev_zoned = _zoneout_backward(C["m_h"], dnext_h)
    dn_pre = dh_new * (1.0 - z) * (1.0 - n**2)  # gradient of ax_n + r * ah_n
    dz_pre = dh_new * (C["prev_h"] - n) * z * (1.0 - z)
    dr_pre = dn_pre * C["ah_n"] * r * (1.0 - r)
    dax = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
    dah = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)
    dx, dh_rec, dWx, dWh, dgamma_x, dgamma_h = _gate_inputs_backward(dax, dah, C)
    grads = dict(
        dx=dx,
        dprev_h=dh_new * z + dprev_zoned + dh_rec,
        dWx=dWx,
        dWh=dWh,
        dbx=dax.sum(axis=0),
        dbh=dah.sum(axis=0),
    )
    return _add_grads(grads, dgamma_x=dgamma_x, dgamma_h=dgamma_h)


def gru_variant_forward(
    x, h0, Wx, Wh, bx, bh, *, zoneout_h=None, dropout_mask=None, **options
) -> tuple[np.ndarray, list]:
    """GRU over a sequence with the options of :func:`gru_variant_step_forward`.

    Shapes: x ``(N, T, D)``, h0 ``(N, H)``, zoneout_h broadcastable to ``(N, T, H)``,
    dropout_mask to ``(N, H)``; ``options`` are gamma_x, gamma_h, eps -> ``(h (N, T, H), cache)``;
    the cache is the list of step caches.
    """
    h, _, caches = _forward_through_time(
        lambda x_t, h, **m: gru_variant_step_forward(x_t, h, Wx, Wh, bx, bh, **m, **options),
        x,
        (h0,),
        dict(zoneout_h=zoneout_h, dropout_mask=dropout_mask),
        np.result_type(x, h0, Wx),
    )
    return h, caches


def gru_variant_backward(dh, cache: list) -> dict:
    """Backward of :func:`gru_variant_forward`: dh ``(N, T, H)`` -> dict with ``dx, dh0, dWx,
    dWh, dbx, dbh`` and the given options' gradients."""
    return _backward_through_time(gru_variant_step_backward, dh, cache)
