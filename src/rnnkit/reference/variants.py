"""NumPy oracle for rnnkit's layer options: layer norm, peephole, zoneout, recurrent dropout, relu.

One general step per cell with optional features, its hand-written backward, and the sequence
versions that loop over time. Conventions are those of :mod:`rnnkit.reference.layers`: batch-first
``x (N, T, D)``, hidden size ``H``, CS231n LSTM gate order ``i, f, o, g`` (``Wx (D, 4H)``,
``Wh (H, 4H)``, one bias ``b (4H,)``), GRU order ``r, z, n`` with two biases ``bx, bh (3H,)``.
With every option left at ``None`` each function equals its plain namesake in ``layers``.

Options (each ``None`` = off):

- **Layer norm** (Ba et al. 2016, "Layer Normalization", sec. 3.1 and the LSTM equations in
  their appendix): ``LN(a; gamma) = gamma * (a - mean(a)) / sqrt(var(a) + eps)`` with mean and
  biased variance over the last axis, i.e. over the *whole* pre-activation vector (4H for LSTM, 3H
  for GRU, H for RNN), no beta on the pre-activation norms (the biases play that role).
  ``gamma_x`` normalises ``x Wx``, ``gamma_h`` normalises ``h Wh``; ``gamma_c``/``beta_c`` (LSTM
  only) normalise the cell before its tanh: ``h = o * tanh(LN(c; gamma_c) + beta_c)``, while the
  carried ``c`` stays un-normalised.
- **Peephole** (Gers & Schmidhuber 2000), LSTM only, ``peephole (3, H)`` rows for i, f, o:
  ``i = s(a_i + P[0] * c_prev)``, ``f = s(a_f + P[1] * c_prev)``, ``o = s(a_o + P[2] * c_new)``.
- **Zoneout** (Krueger et al. 2017, eqs. for the LSTM in sec. 3.3): masks ``zoneout_h``,
  ``zoneout_c`` with 1 = keep the previous value: ``h = m_h * h_prev + (1 - m_h) * h_new``,
  ``c = m_c * c_prev + (1 - m_c) * c_new``, where ``h_new = o * tanh(c_new)`` uses the *new*
  (not zoned-out) cell. Masks may be real-valued: in eval the rate itself is the mask (the
  expected value). Step masks broadcast to ``(N, H)``, sequence masks to ``(N, T, H)``.
- **Recurrent dropout** (Gal & Ghahramani 2016): ``dropout_mask`` broadcastable to ``(N, H)``,
  already scaled by ``1/(1-p)``, multiplies ``h_prev`` before ``h_prev Wh``; the carried ``h`` is
  not masked, and the sequence functions reuse the same mask at every step.
- **Nonlinearity** (RNN only): ``'tanh'`` or ``'relu'``.

DropConnect on ``Wh`` (weight drop) needs no option: pass the masked ``Wh`` and chain ``dWh``.
"""

from __future__ import annotations

import numpy as np

from .layers import sigmoid

__all__ = [
    "gru_variant_backward",
    "gru_variant_forward",
    "gru_variant_step_backward",
    "gru_variant_step_forward",
    "layer_norm_backward",
    "layer_norm_forward",
    "lstm_variant_backward",
    "lstm_variant_forward",
    "lstm_variant_step_backward",
    "lstm_variant_step_forward",
    "rnn_variant_backward",
    "rnn_variant_forward",
    "rnn_variant_step_backward",
    "rnn_variant_step_forward",
]


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


# -------------------------------------------------------------------------------------- helpers
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
    return new if mask is None else mask * prev + (1.0 - mask) * new


def _add_grads(grads: dict, **optional) -> dict:
    """``grads`` plus the optional gradients that exist (those of the options given)."""
    grads.update({name: value for name, value in optional.items() if value is not None})
    return grads


def _backward_through_time(step_backward, dh, dstate_last: dict, caches: list) -> dict:
    """BPTT over step caches. ``step_backward(dnext: dict, cache) -> dict`` with ``dx`` and
    ``dprev_<k>`` for every carried state ``k`` in ``dstate_last`` (e.g. h, c); the other
    entries are parameter gradients, summed over steps. Returns those sums, ``dx (N, T, D)``
    and ``d<k>0`` for every state."""
    N, T, _ = dh.shape
    dnext = dict(dstate_last)
    dx = None
    totals: dict = {}
    for t in reversed(range(T)):
        dnext["h"] = dnext["h"] + dh[:, t]
        grads = step_backward(dnext, caches[t])
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


# ------------------------------------------------------------------------------------------- LSTM
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
    options drop their term. See the module docstring for the papers.

    Shapes: x ``(N, D)``, prev_h/prev_c ``(N, H)``, Wx ``(D, 4H)``, Wh ``(H, 4H)``, b ``(4H,)``,
    gamma_x/gamma_h ``(4H,)``, gamma_c/beta_c ``(H,)``, peephole ``(3, H)``, masks broadcastable to
    ``(N, H)`` -> ``(next_h (N, H), next_c (N, H), cache)``.
    """
    N, H = prev_h.shape
    m_h = _mask("zoneout_h", zoneout_h, (N, H))
    m_c = _mask("zoneout_c", zoneout_c, (N, H))
    m_d = _mask("dropout_mask", dropout_mask, (N, H))
    hd = prev_h if m_d is None else prev_h * m_d
    ax, ln_x = _maybe_ln(x @ Wx, gamma_x, eps, name="gamma_x")
    ah, ln_h = _maybe_ln(hd @ Wh, gamma_h, eps, name="gamma_h")
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
        x=x, prev_h=prev_h, prev_c=prev_c, hd=hd, Wx=Wx, Wh=Wh, peephole=peephole,
        i=i, f=f, o=o, g=g, c_new=c_new, tanh_c=tanh_c,
        ln_x=ln_x, ln_h=ln_h, ln_c=ln_c, m_h=m_h, m_c=m_c, m_d=m_d,
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
    # zoneout
    dh_new = dnext_h if C["m_h"] is None else (1.0 - C["m_h"]) * dnext_h
    dc_new = dnext_c if C["m_c"] is None else (1.0 - C["m_c"]) * dnext_c
    dprev_h = 0.0 if C["m_h"] is None else C["m_h"] * dnext_h
    dprev_c = 0.0 if C["m_c"] is None else C["m_c"] * dnext_c
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
    dax, dgamma_x, _ = _ln_back(da, C["ln_x"])
    dah, dgamma_h, _ = _ln_back(da, C["ln_h"])
    dhd = dah @ C["Wh"].T
    dprev_h = dprev_h + (dhd if C["m_d"] is None else dhd * C["m_d"])
    grads = dict(
        dx=dax @ C["Wx"].T,
        dprev_h=dprev_h,
        dprev_c=dprev_c,
        dWx=C["x"].T @ dax,
        dWh=C["hd"].T @ dah,
        db=da.sum(axis=0),
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
    peephole, eps -> ``(h (N, T, H), c_last (N, H), cache)``.
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
    zeros = np.zeros_like(dh[:, 0])
    last = {"h": zeros, "c": zeros if dc_last is None else dc_last}

    def step(dnext, c):
        return lstm_variant_step_backward(dnext["h"], dnext["c"], c)

    return _backward_through_time(step, dh, last, cache)


# -------------------------------------------------------------------------------------------- GRU
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
    m_d = _mask("dropout_mask", dropout_mask, (N, H))
    hd = prev_h if m_d is None else prev_h * m_d
    ax, ln_x = _maybe_ln(x @ Wx, gamma_x, eps, name="gamma_x")
    ah, ln_h = _maybe_ln(hd @ Wh, gamma_h, eps, name="gamma_h")
    ax = ax + bx
    ah = ah + bh
    r = sigmoid(ax[:, :H] + ah[:, :H])
    z = sigmoid(ax[:, H : 2 * H] + ah[:, H : 2 * H])
    ah_n = ah[:, 2 * H :]
    n = np.tanh(ax[:, 2 * H :] + r * ah_n)
    h_new = (1.0 - z) * n + z * prev_h
    next_h = _zoneout(m_h, prev_h, h_new)
    cache = dict(
        x=x, prev_h=prev_h, hd=hd, Wx=Wx, Wh=Wh, r=r, z=z, n=n, ah_n=ah_n,
        ln_x=ln_x, ln_h=ln_h, m_h=m_h, m_d=m_d,
    )  # fmt: skip
    return next_h, cache


def gru_variant_step_backward(dnext_h, cache: dict) -> dict:
    """Backward of :func:`gru_variant_step_forward` -> dict with ``dx, dprev_h, dWx, dWh, dbx,
    dbh`` and ``dgamma_x``/``dgamma_h`` when given."""
    C = cache
    r, z, n = C["r"], C["z"], C["n"]
    dh_new = dnext_h if C["m_h"] is None else (1.0 - C["m_h"]) * dnext_h
    dprev_h = dh_new * z + (0.0 if C["m_h"] is None else C["m_h"] * dnext_h)
    dn_pre = dh_new * (1.0 - z) * (1.0 - n**2)
    dz_pre = dh_new * (C["prev_h"] - n) * z * (1.0 - z)
    dr_pre = dn_pre * C["ah_n"] * r * (1.0 - r)
    dax = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
    dah = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)
    dax_raw, dgamma_x, _ = _ln_back(dax, C["ln_x"])
    dah_raw, dgamma_h, _ = _ln_back(dah, C["ln_h"])
    dhd = dah_raw @ C["Wh"].T
    dprev_h = dprev_h + (dhd if C["m_d"] is None else dhd * C["m_d"])
    grads = dict(
        dx=dax_raw @ C["Wx"].T,
        dprev_h=dprev_h,
        dWx=C["x"].T @ dax_raw,
        dWh=C["hd"].T @ dah_raw,
        dbx=dax.sum(axis=0),
        dbh=dah.sum(axis=0),
    )
    return _add_grads(grads, dgamma_x=dgamma_x, dgamma_h=dgamma_h)


def gru_variant_forward(
    x, h0, Wx, Wh, bx, bh, *, zoneout_h=None, dropout_mask=None, **options
) -> tuple[np.ndarray, list]:
    """GRU over a sequence with the options of :func:`gru_variant_step_forward`.

    Shapes: x ``(N, T, D)``, h0 ``(N, H)``, zoneout_h broadcastable to ``(N, T, H)``,
    dropout_mask to ``(N, H)``; ``options`` are gamma_x, gamma_h, eps -> ``(h (N, T, H), cache)``.
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
    return _backward_through_time(
        lambda dnext, c: gru_variant_step_backward(dnext["h"], c),
        dh,
        {"h": np.zeros_like(dh[:, 0])},
        cache,
    )


# -------------------------------------------------------------------------------------------- RNN
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
    N, H = prev_h.shape
    m_h = _mask("zoneout_h", zoneout_h, (N, H))
    m_d = _mask("dropout_mask", dropout_mask, (N, H))
    hd = prev_h if m_d is None else prev_h * m_d
    ax, ln_x = _maybe_ln(x @ Wx, gamma_x, eps, name="gamma_x")
    ah, ln_h = _maybe_ln(hd @ Wh, gamma_h, eps, name="gamma_h")
    a = ax + ah + b
    h_new = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
    next_h = _zoneout(m_h, prev_h, h_new)
    cache = dict(
        x=x, hd=hd, Wx=Wx, Wh=Wh, h_new=h_new, relu=nonlinearity == "relu",
        ln_x=ln_x, ln_h=ln_h, m_h=m_h, m_d=m_d,
    )  # fmt: skip
    return next_h, cache


def rnn_variant_step_backward(dnext_h, cache: dict) -> dict:
    """Backward of :func:`rnn_variant_step_forward` -> dict with ``dx, dprev_h, dWx, dWh, db``
    and ``dgamma_x``/``dgamma_h`` when given."""
    C = cache
    dh_new = dnext_h if C["m_h"] is None else (1.0 - C["m_h"]) * dnext_h
    h_new = C["h_new"]
    da = dh_new * (h_new > 0) if C["relu"] else dh_new * (1.0 - h_new**2)
    dax, dgamma_x, _ = _ln_back(da, C["ln_x"])
    dah, dgamma_h, _ = _ln_back(da, C["ln_h"])
    dhd = dah @ C["Wh"].T
    dprev_h = dhd if C["m_d"] is None else dhd * C["m_d"]
    if C["m_h"] is not None:
        dprev_h = dprev_h + C["m_h"] * dnext_h
    grads = dict(
        dx=dax @ C["Wx"].T,
        dprev_h=dprev_h,
        dWx=C["x"].T @ dax,
        dWh=C["hd"].T @ dah,
        db=da.sum(axis=0),
    )
    return _add_grads(grads, dgamma_x=dgamma_x, dgamma_h=dgamma_h)


def rnn_variant_forward(
    x, h0, Wx, Wh, b, *, zoneout_h=None, dropout_mask=None, **options
) -> tuple[np.ndarray, list]:
    """RNN over a sequence with the options of :func:`rnn_variant_step_forward`.

    Shapes: x ``(N, T, D)``, h0 ``(N, H)``, zoneout_h broadcastable to ``(N, T, H)``,
    dropout_mask to ``(N, H)``; ``options`` are nonlinearity, gamma_x, gamma_h, eps ->
    ``(h (N, T, H), cache)``.
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
    return _backward_through_time(
        lambda dnext, c: rnn_variant_step_backward(dnext["h"], c),
        dh,
        {"h": np.zeros_like(dh[:, 0])},
        cache,
    )
