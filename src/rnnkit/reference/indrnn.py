"""IndRNN of the NumPy oracle (Li, Li, Cook, Zhu & Gao 2018, "Independently Recurrent Neural
Network"): one step with optional layer norm of the input projection, the recurrent-weight bound,
zoneout and recurrent dropout, its hand-written backward, and the sequence versions.

``Wx (D, H)``, recurrent weight ``u (H,)`` (elementwise), one bias ``b (H,)`` (torch's ``b_ih +
b_hh``)::

    u' = clip(u, -recurrent_max, recurrent_max)             (u without a bound)
    h_new = relu(LN(x Wx; gamma_x) + u' * (prev_h * dropout_mask) + b)
    next_h = m_h prev_h + (1 - m_h) h_new                  (zoneout; m_h = 1 keeps prev_h)

A clipped entry of ``u`` gets no gradient (``np.clip``'s, and ``torch.clamp``'s, derivative is 1
inside the closed interval, 0 outside); ``relu'(0) = 0``. DropConnect on ``u``: pass the dropped
``u`` and chain ``du``.
"""

from __future__ import annotations

import numpy as np

from .common import (
    _add_grads,
    _backward_through_time,
    _check_shape,
    _forward_through_time,
    _ln_back,
    _mask,
    _maybe_ln,
    _zoneout,
    _zoneout_backward,
)

__all__ = [
    "indrnn_backward",
    "indrnn_forward",
    "indrnn_step_backward",
    "indrnn_step_forward",
]


def indrnn_step_forward(
    x,
    prev_h,
    Wx,
    u,
    b,
    *,
    gamma_x=None,
    recurrent_max=None,
    zoneout_h=None,
    dropout_mask=None,
    eps: float = 1e-5,
) -> tuple[np.ndarray, dict]:
    """One IndRNN step. Shapes: x ``(N, D)``, prev_h ``(N, H)``, Wx ``(D, H)``, u, b and gamma_x
    ``(H,)``, masks broadcastable to ``(N, H)`` -> ``(next_h (N, H), cache)``."""
    N, H = prev_h.shape
    _check_shape("u", u, (H,))
    m_h = _mask("zoneout_h", zoneout_h, (N, H))
    m_d = _mask("dropout_mask", dropout_mask, (N, H))
    hd = prev_h if m_d is None else prev_h * m_d
    inside = np.ones_like(u) if recurrent_max is None else np.abs(u) <= recurrent_max
    u_eff = u if recurrent_max is None else np.clip(u, -recurrent_max, recurrent_max)
    ax, ln_x = _maybe_ln(x @ Wx, gamma_x, eps, name="gamma_x")
    h_new = np.maximum(ax + u_eff * hd + b, 0.0)
    next_h = _zoneout(m_h, prev_h, h_new)
    cache = dict(x=x, Wx=Wx, hd=hd, m_d=m_d, m_h=m_h, u_eff=u_eff, inside=inside, ln_x=ln_x,
                 h_new=h_new)  # fmt: skip
    return next_h, cache


def indrnn_step_backward(dnext_h, cache: dict) -> dict:
    """Backward of :func:`indrnn_step_forward` -> dict with ``dx, dprev_h, dWx, du, db`` and
    ``dgamma_x`` when given."""
    C = cache
    dh_new, dprev_zoned = _zoneout_backward(C["m_h"], dnext_h)
    da = dh_new * (C["h_new"] > 0)
    dhd = da * C["u_eff"]
    dprev_h = (dhd if C["m_d"] is None else dhd * C["m_d"]) + dprev_zoned
    dax, dgamma_x, _ = _ln_back(da, C["ln_x"])
    grads = dict(
        dx=dax @ C["Wx"].T, dprev_h=dprev_h, dWx=C["x"].T @ dax,
        du=(da * C["hd"]).sum(axis=0) * C["inside"], db=da.sum(axis=0),
    )  # fmt: skip
    return _add_grads(grads, dgamma_x=dgamma_x)


def indrnn_forward(
    x, h0, Wx, u, b, *, zoneout_h=None, dropout_mask=None, **options
) -> tuple[np.ndarray, list]:
    """IndRNN over a sequence. Shapes: x ``(N, T, D)``, h0 ``(N, H)``, zoneout_h broadcastable
    to ``(N, T, H)`` (a scalar rate for eval), dropout_mask to ``(N, H)`` (the same every step);
    ``options`` are gamma_x, recurrent_max, eps -> ``(h (N, T, H), cache)``."""
    h, _, caches = _forward_through_time(
        lambda x_t, h, **m: indrnn_step_forward(x_t, h, Wx, u, b, **m, **options),
        x, (h0,), dict(zoneout_h=zoneout_h, dropout_mask=dropout_mask),
        np.result_type(x, h0, Wx),
    )  # fmt: skip
    return h, caches


def indrnn_backward(dh, cache: list) -> dict:
    """Backward of :func:`indrnn_forward`: dh ``(N, T, H)`` -> dict with ``dx, dh0, dWx, du, db``
    and ``dgamma_x`` when given."""
    return _backward_through_time(indrnn_step_backward, dh, cache)
