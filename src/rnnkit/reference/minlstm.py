"""minLSTM of the NumPy oracle (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All
We Needed?"): one step with optional layer norm of the input projection, its hand-written
backward, and the sequence versions, run step by step.

``Wx (D, 3H)`` with gates ``f, i, h`` (rnnkit's order), one bias ``b (3H,)``; no recurrent
weight::

    a = LN(x Wx; gamma_x) + b = [k_f, k_i, k_h],  f = s(k_f),  i = s(k_i),  h~ = g(k_h)
    f' = f / (f + i),  i' = i / (f + i),  next_h = f' prev_h + i' h~

computed as ``i' = s(d)``, ``f' = 1 - i'`` with ``d = log(i / f) = softplus(-k_f) -
softplus(-k_i)``; ``g`` is minGRU's (:func:`rnnkit.reference.mingru.positive_activation`).
"""

from __future__ import annotations

import numpy as np

from .common import (
    _add_grads,
    _backward_through_time,
    _forward_through_time,
    _ln_back,
    _maybe_ln,
    sigmoid,
)
from .mingru import positive_activation

__all__ = [
    "minlstm_backward",
    "minlstm_forward",
    "minlstm_step_backward",
    "minlstm_step_forward",
]


def _softplus(x):
    return np.logaddexp(0.0, x)


def minlstm_step_forward(
    x, prev_h, Wx, b, *, gamma_x=None, eps: float = 1e-5
) -> tuple[np.ndarray, dict]:
    """One minLSTM step. Shapes: x ``(N, D)``, prev_h ``(N, H)``, Wx ``(D, 3H)``, b and gamma_x
    ``(3H,)`` -> ``(next_h (N, H), cache)``."""
    H = prev_h.shape[1]
    ax, ln_x = _maybe_ln(x @ Wx, gamma_x, eps, name="gamma_x")
    a = ax + b
    k_f, k_i, k_h = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
    i_norm = sigmoid(_softplus(-k_f) - _softplus(-k_i))
    h_tilde, dg = positive_activation(k_h)
    next_h = prev_h + i_norm * (h_tilde - prev_h)
    cache = dict(x=x, prev_h=prev_h, Wx=Wx, ln_x=ln_x, k_f=k_f, k_i=k_i, i_norm=i_norm,
                 h_tilde=h_tilde, dg=dg)  # fmt: skip
    return next_h, cache


def minlstm_step_backward(dnext_h, cache: dict) -> dict:
    """Backward of :func:`minlstm_step_forward` -> dict with ``dx, dprev_h, dWx, db`` and
    ``dgamma_x`` when given."""
    C = cache
    i_norm = C["i_norm"]
    dd = dnext_h * (C["h_tilde"] - C["prev_h"]) * i_norm * (1.0 - i_norm)
    # d = softplus(-k_f) - softplus(-k_i); softplus'(y) = s(y)
    dk_f = -dd * sigmoid(-C["k_f"])
    dk_i = dd * sigmoid(-C["k_i"])
    dk_h = dnext_h * i_norm * C["dg"]
    da = np.concatenate([dk_f, dk_i, dk_h], axis=1)
    dax, dgamma_x, _ = _ln_back(da, C["ln_x"])
    grads = dict(
        dx=dax @ C["Wx"].T, dprev_h=dnext_h * (1.0 - i_norm), dWx=C["x"].T @ dax,
        db=da.sum(axis=0),
    )  # fmt: skip
    return _add_grads(grads, dgamma_x=dgamma_x)


def minlstm_forward(x, h0, Wx, b, **options) -> tuple[np.ndarray, list]:
    """minLSTM over a sequence, step by step. Shapes: x ``(N, T, D)``, h0 ``(N, H)``; ``options``
    are gamma_x, eps -> ``(h (N, T, H), cache)``."""
    h, _, caches = _forward_through_time(
        lambda x_t, h: minlstm_step_forward(x_t, h, Wx, b, **options),
        x, (h0,), {}, np.result_type(x, h0, Wx),
    )  # fmt: skip
    return h, caches


def minlstm_backward(dh, cache: list) -> dict:
    """Backward of :func:`minlstm_forward`: dh ``(N, T, H)`` -> dict with ``dx, dh0, dWx, db``
    and ``dgamma_x`` when given."""
    return _backward_through_time(minlstm_step_backward, dh, cache)
