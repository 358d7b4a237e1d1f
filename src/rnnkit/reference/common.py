"""Pieces shared by the NumPy oracle's cells: sigmoid, layer norm, option checks, the gate inputs
and the loops over time.

Conventions are those of :mod:`rnnkit.reference.variants`: batch-first ``x (N, T, D)``, hidden
size ``H``, optional features ``None`` = off. Step caches are dicts; a sequence cache is the list
of its step caches.
"""

from __future__ import annotations

import numpy as np

__all__ = ["layer_norm_backward", "layer_norm_forward", "sigmoid"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic ``1 / (1 + exp(-x))``: never exponentiates a positive number."""
    x = np.asarray(x)
    pos = x >= 0
    z = np.exp(np.where(pos, -x, x))  # always exp of a non-positive value
    return np.where(pos, 1.0 / (1.0 + z), z / (1.0 + z))


# ------------------------------------------------------------------------------------ layer norm
def layer_norm_forward(a, gamma, beta=None, eps: float = 1e-5) -> tuple[np.ndarray, tuple]:
    """``gamma * (a - mean) / sqrt(var + eps) (+ beta)`` over the last axis (Ba et al. 2016).

    Shapes: a ``(N, K)``, gamma and beta ``(K,)`` -> ``(y (N, K), cache)``. var is biased.
    """
    mu = a.mean(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt(((a - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (a - mu) * inv_std
    y = gamma * xhat if beta is None else gamma * xhat + beta
    return y, (xhat, inv_std, gamma, beta is not None)


def layer_norm_backward(dy, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Backward of :func:`layer_norm_forward` -> ``(da, dgamma, dbeta)`` (dbeta None if no beta)."""
    xhat, inv_std, gamma, has_beta = cache
    dxhat = dy * gamma
    da = inv_std * (
        dxhat
        - dxhat.mean(axis=-1, keepdims=True)
        - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)
    )
    dbeta = dy.sum(axis=0) if has_beta else None
    return da, (dy * xhat).sum(axis=0), dbeta


def _maybe_ln(a, gamma, eps, beta=None, name="gamma"):
    """An optional layer norm of ``a`` -> ``(output, ln cache or None)``; checks the shapes."""
    if gamma is None:
        if beta is not None:
            raise ValueError(f"beta for {name} needs {name} as well, got beta without it")
        return a, None
    _check_shape(name, gamma, a.shape[-1:])
    if beta is not None:
        _check_shape(f"beta for {name}", beta, a.shape[-1:])
    return layer_norm_forward(a, gamma, beta, eps)


def _ln_back(da, ln_cache):
    """Gradient through an optional layer norm -> (d_input, dgamma or None, dbeta or None)."""
    if ln_cache is None:
        return da, None, None
    return layer_norm_backward(da, ln_cache)


# ----------------------------------------------------------------------------- checks and masks
def _check_shape(name: str, arr, shape: tuple) -> None:
    if np.shape(arr) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {np.shape(arr)}")


def _mask(name: str, mask, shape: tuple):
    """Broadcast an optional mask (array or scalar rate) to ``shape``; None stays None."""
    if mask is None:
        return None
    arr = np.asarray(mask)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)  # boolean or 0/1 integer masks
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(
            f"{name}: expected a mask broadcastable to {shape}, got shape {np.shape(mask)}"
        ) from None


def _zoneout(mask, prev, new):
    """``mask * prev + (1 - mask) * new`` (Krueger et al. 2017); ``new`` without a mask."""
    return new if mask is None else mask * prev + (1.0 - mask) * new


def _zoneout_backward(mask, dnext):
    """Backward of :func:`_zoneout` -> ``(dnew, dprev)``; without a mask ``(dnext, 0.0)``."""
    if mask is None:
        return dnext, 0.0
    return (1.0 - mask) * dnext, mask * dnext


def _add_grads(grads: dict, **optional) -> dict:
    """``grads`` plus the optional gradients that exist (those of the options given)."""
    grads.update({name: value for name, value in optional.items() if value is not None})
    return grads


# ----------------------------------------------------------------------------------- gate inputs
def _gate_inputs(x, prev_h, Wx, Wh, gamma_x, gamma_h, dropout_mask, eps) -> tuple:
    """The two projections every cell starts from: ``LN(x Wx; gamma_x)`` and
    ``LN((prev_h * dropout_mask) Wh; gamma_h)`` (absent options drop out).

    Shapes: x ``(N, D)``, prev_h ``(N, H)``, Wx ``(D, kH)``, Wh ``(H, kH)``, gamma_x/gamma_h
    ``(kH,)``, dropout_mask broadcastable to ``(N, H)`` -> ``(ax (N, kH), ah (N, kH), cache)``,
    the cache a dict to merge into the cell's step cache.
    """
    m_d = _mask("dropout_mask", dropout_mask, prev_h.shape)
    hd = prev_h if m_d is None else prev_h * m_d
    ax, ln_x = _maybe_ln(x @ Wx, gamma_x, eps, name="gamma_x")
    ah, ln_h = _maybe_ln(hd @ Wh, gamma_h, eps, name="gamma_h")
    return ax, ah, dict(x=x, hd=hd, Wx=Wx, Wh=Wh, ln_x=ln_x, ln_h=ln_h, m_d=m_d)


def _gate_inputs_backward(dax, dah, cache: dict) -> tuple:
    """Backward of :func:`_gate_inputs`: gradients of ``ax`` and ``ah`` -> ``(dx, dprev_h (the
    part through h Wh), dWx, dWh, dgamma_x, dgamma_h)``, the dgammas None when not given."""
    dax, dgamma_x, _ = _ln_back(dax, cache["ln_x"])
    dah, dgamma_h, _ = _ln_back(dah, cache["ln_h"])
    dhd = dah @ cache["Wh"].T
    dprev_h = dhd if cache["m_d"] is None else dhd * cache["m_d"]
    dx = dax @ cache["Wx"].T
    return dx, dprev_h, cache["x"].T @ dax, cache["hd"].T @ dah, dgamma_x, dgamma_h


# ------------------------------------------------------------------------------- loops over time
def _forward_through_time(step, x, state: tuple, masks: dict, dtype) -> tuple:
    """Run ``step(x_t, *state, **masks_t) -> (*new_state, cache)`` over ``x (N, T, D)``.

    Zoneout masks broadcast to ``(N, T, H)`` and are sliced per step; the dropout mask
    broadcasts to ``(N, H)`` and is the same at every step. Returns ``(h (N, T, H), final state,
    caches)``.
    """
    N, T, _ = x.shape
    H = state[0].shape[1]
    masks = {k: _mask(k, m, (N, H) if k == "dropout_mask" else (N, T, H)) for k, m in masks.items()}
    h = np.zeros((N, T, H), dtype=dtype)
    caches = []
    for t in range(T):
        step_masks = {
            k: m if k == "dropout_mask" or m is None else m[:, t] for k, m in masks.items()
        }
        *state, cache = step(x[:, t], *state, **step_masks)
        h[:, t] = state[0]
        caches.append(cache)
    return h, state, caches


def _backward_through_time(step_backward, dh, caches: list, **dstate_last) -> dict:
    """BPTT over step caches.

    ``step_backward(dnext_h, *dnext_others, cache) -> dict`` with ``dx`` and ``dprev_<k>`` for
    ``h`` and every other carried state ``k`` in ``dstate_last`` (e.g. ``c=dc_last``; their
    gradients after the last step); the other entries are parameter gradients, summed over
    steps. ``dh (N, T, H)`` is the upstream gradient of every h. Returns those sums,
    ``dx (N, T, D)`` and ``d<k>0`` for every state.
    """
    N, T, _ = dh.shape
    dnext = {"h": np.zeros_like(dh[:, 0]), **dstate_last}
    dx = None
    totals: dict = {}
    for t in reversed(range(T)):
        dnext["h"] = dnext["h"] + dh[:, t]
        grads = step_backward(*dnext.values(), caches[t])
        dnext = {k: grads.pop(f"dprev_{k}") for k in dnext}
        dx_t = grads.pop("dx")
        if dx is None:
            dx = np.zeros((N, T, dx_t.shape[1]), dtype=dx_t.dtype)
        dx[:, t] = dx_t
        for k, v in grads.items():
            totals[k] = totals[k] + v if k in totals else v
    totals["dx"] = dx
    totals.update({f"d{k}0": v for k, v in dnext.items()})
    return totals
