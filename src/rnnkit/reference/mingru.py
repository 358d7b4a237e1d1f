"""minGRU of the NumPy oracle (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We
Needed?"): one step with optional layer norm of the input projection, its hand-written backward,
and the sequence versions, run step by step (the definition the parallel scan must equal).

``Wx (D, 2H)`` with gates ``z, h`` (rnnkit's order), one bias ``b (2H,)``; no recurrent weight::

    a = LN(x Wx; gamma_x) + b = [k_z, k_h],  z = s(k_z),  h~ = g(k_h),
    next_h = (1 - z) prev_h + z h~,          g(x) = x + 0.5 (x >= 0), s(x) (x < 0)

``g'(0)`` is taken as ``s'(0) = 1/4``, as rnnkit's torch form ``relu(x) + s(min(x, 0))`` gives.
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

__all__ = [
    "mingru_backward",
    "mingru_forward",
    "mingru_step_backward",
    "mingru_step_forward",
    "positive_activation",
]


def positive_activation(x) -> tuple[np.ndarray, np.ndarray]:
    """``(g(x), g'(x))`` of minGRU/minLSTM: ``x + 0.5`` and 1 for ``x > 0``, ``s(x)`` and
    ``s(x)(1 - s(x))`` for ``x <= 0``."""
    s = sigmoid(np.minimum(x, 0.0))
    return np.where(x >= 0, x + 0.5, s), np.where(x > 0, 1.0, s * (1.0 - s))


def mingru_step_forward(
    x, prev_h, Wx, b, *, gamma_x=None, eps: float = 1e-5
) -> tuple[np.ndarray, dict]:
    """One minGRU step. Shapes: x ``(N, D)``, prev_h ``(N, H)``, Wx ``(D, 2H)``, b and gamma_x
    ``(2H,)`` -> ``(next_h (N, H), cache)``."""
    H = prev_h.shape[1]
    ax, ln_x = _maybe_ln(x @ Wx, gamma_x, eps, name="gamma_x")
    a = ax + b
    z = sigmoid(a[:, :H])
    h_tilde, dg = positive_activation(a[:, H:])
    next_h = prev_h + z * (h_tilde - prev_h)
    return next_h, dict(x=x, prev_h=prev_h, Wx=Wx, ln_x=ln_x, z=z, h_tilde=h_tilde, dg=dg)


def mingru_step_backward(dnext_h, cache: dict) -> dict:
    """Backward of :func:`mingru_step_forward` -> dict with ``dx, dprev_h, dWx, db`` and
    ``dgamma_x`` when given."""
    C = cache
    z = C["z"]
    dk_z = dnext_h * (C["h_tilde"] - C["prev_h"]) * z * (1.0 - z)
    dk_h = dnext_h * z * C["dg"]
    da = np.concatenate([dk_z, dk_h], axis=1)
    dax, dgamma_x, _ = _ln_back(da, C["ln_x"])
    grads = dict(
        dx=dax @ C["Wx"].T, dprev_h=dnext_h * (1.0 - z), dWx=C["x"].T @ dax, db=da.sum(axis=0)
    )
    return _add_grads(grads, dgamma_x=dgamma_x)


def mingru_forward(x, h0, Wx, b, **options) -> tuple[np.ndarray, list]:
    """minGRU over a sequence, step by step. Shapes: x ``(N, T, D)``, h0 ``(N, H)``; ``options``
    are gamma_x, eps -> ``(h (N, T, H), cache)``; the cache is the list of step caches."""
    h, _, caches = _forward_through_time(
        lambda x_t, h: mingru_step_forward(x_t, h, Wx, b, **options),
        x, (h0,), {}, np.result_type(x, h0, Wx),
    )  # fmt: skip
    return h, caches


def mingru_backward(dh, cache: list) -> dict:
    """Backward of :func:`mingru_forward`: dh ``(N, T, H)`` -> dict with ``dx, dh0, dWx, db``
    and ``dgamma_x`` when given."""
    return _backward_through_time(mingru_step_backward, dh, cache)
