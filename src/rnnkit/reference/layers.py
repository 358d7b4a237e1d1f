"""Recurrent layers in NumPy with hand-written backward passes, CS231n-compatible.

The names, argument orders, shapes, return tuples and cache conventions are those of Stanford
CS231n assignment 3 (``cs231n/rnn_layers.py`` and ``cs231n/layers.py``), so code written for the
course runs on these unchanged. Everything is batch-first: ``x`` is ``(N, T, D)``, hidden states are
``(N, T, H)``. Computations follow the dtype of the inputs (use float64 for gradient checks).

Gate orders (they differ from torch's; see ``rnnkit.interop.layouts`` for converters):

- LSTM, as CS231n: ``i, f, o, g`` in ``Wx (D, 4H)``, ``Wh (H, 4H)``, ``b (4H,)``; one bias (torch's
  ``b_ih + b_hh``).
- GRU (no CS231n original), as torch: ``r, z, n`` in ``Wx (D, 3H)``, ``Wh (H, 3H)`` with two biases
  ``bx, bh (3H,)`` because the ``n`` gate needs ``bh_n`` inside the reset product.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "affine_backward",
    "affine_forward",
    "gru_backward",
    "gru_forward",
    "gru_step_backward",
    "gru_step_forward",
    "lstm_backward",
    "lstm_forward",
    "lstm_step_backward",
    "lstm_step_forward",
    "rnn_backward",
    "rnn_forward",
    "rnn_step_backward",
    "rnn_step_forward",
    "sigmoid",
    "temporal_affine_backward",
    "temporal_affine_forward",
    "temporal_softmax_loss",
    "word_embedding_backward",
    "word_embedding_forward",
]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic ``1 / (1 + exp(-x))``: never exponentiates a positive number."""
    x = np.asarray(x)
    pos = x >= 0
    z = np.exp(np.where(pos, -x, x))  # always exp of a non-positive value
    return np.where(pos, 1.0 / (1.0 + z), z / (1.0 + z))


# --------------------------------------------------------------------------------------- affine
def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple]:
    """``out = x.reshape(N, -1) @ w + b``; x ``(N, d_1, ..., d_k)``, w ``(D, M)``, b ``(M,)``."""
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of :func:`affine_forward`: ``dout (N, M)`` -> ``(dx, dw, db)``."""
    x, w, _ = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


# ------------------------------------------------------------------------------------ vanilla RNN
def rnn_step_forward(x, prev_h, Wx, Wh, b) -> tuple[np.ndarray, tuple]:
    """One tanh RNN step (Elman 1990): ``next_h = tanh(x Wx + prev_h Wh + b)``.

    Shapes: x ``(N, D)``, prev_h ``(N, H)``, Wx ``(D, H)``, Wh ``(H, H)``, b ``(H,)`` -> next_h
    ``(N, H)``.
    """
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache) -> tuple[np.ndarray, ...]:
    """Backward of :func:`rnn_step_forward` -> ``(dx, dprev_h, dWx, dWh, db)``."""
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1.0 - next_h**2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b) -> tuple[np.ndarray, list]:
    """Tanh RNN over a sequence: x ``(N, T, D)``, h0 ``(N, H)`` -> h ``(N, T, H)``, cache."""
    N, T, _ = x.shape
    h = np.zeros((N, T, h0.shape[1]), dtype=np.result_type(x, h0, Wx))
    caches = []
    prev_h = h0
    for t in range(T):
        prev_h, step_cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(step_cache)
    return h, caches


def rnn_backward(dh, cache) -> tuple[np.ndarray, ...]:
    """Backward of :func:`rnn_forward`: dh ``(N, T, H)`` (upstream gradient of every h) ->
    ``(dx, dh0, dWx, dWh, db)``."""
    return _sequence_backward(rnn_step_backward, dh, cache)


def _sequence_backward(step_backward, dh, caches) -> tuple[np.ndarray, ...]:
    """Backprop through time for cells whose step backward returns ``(dx, dprev_h, *dparams)``."""
    N, T, _ = dh.shape
    dprev_h = np.zeros_like(dh[:, 0])
    dx = None
    dparams = None
    for t in reversed(range(T)):
        dx_t, dprev_h, *dp = step_backward(dh[:, t] + dprev_h, caches[t])
        if dx is None:
            dx = np.zeros((N, T, dx_t.shape[1]), dtype=dx_t.dtype)
            dparams = dp
        else:
            dparams = [acc + g for acc, g in zip(dparams, dp)]
        dx[:, t] = dx_t
    return (dx, dprev_h, *dparams)


# ------------------------------------------------------------------------------- word embedding
def word_embedding_forward(x: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Look up word vectors: x ``(N, T)`` integer indices in ``[0, V)``, W ``(V, D)`` ->
    out ``(N, T, D)``."""
    return W[x], (x, W)


def word_embedding_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Backward of :func:`word_embedding_forward`: dout ``(N, T, D)`` -> dW ``(V, D)``
    (repeated words accumulate, via ``np.add.at``)."""
    x, W = cache
    dW = np.zeros_like(W)
    np.add.at(dW, x, dout)
    return dW


# ------------------------------------------------------------------------ temporal affine / loss
def temporal_affine_forward(x, w, b) -> tuple[np.ndarray, tuple]:
    """Affine map at every step: x ``(N, T, D)``, w ``(D, M)``, b ``(M,)`` -> out ``(N, T, M)``."""
    N, T, D = x.shape
    out = (x.reshape(N * T, D) @ w).reshape(N, T, w.shape[1]) + b
    return out, (x, w, b, out)


def temporal_affine_backward(dout, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of :func:`temporal_affine_forward`: dout ``(N, T, M)`` -> ``(dx, dw, db)``."""
    x, w, _, _ = cache
    N, T, D = x.shape
    M = w.shape[1]
    dx = (dout.reshape(N * T, M) @ w.T).reshape(N, T, D)
    dw = x.reshape(N * T, D).T @ dout.reshape(N * T, M)
    db = dout.sum(axis=(0, 1))
    return dx, dw, db


def temporal_softmax_loss(x, y, mask, verbose: bool = False) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy summed over the unmasked steps and divided by N (not by the count).

    Shapes: scores x ``(N, T, V)``, targets y ``(N, T)`` in ``[0, V)``, mask ``(N, T)`` (boolean
    or 0/1: which steps count) -> ``(loss, dx (N, T, V))``.
    """
    N, T, V = x.shape
    x_flat = x.reshape(N * T, V)
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)
    shifted = x_flat - x_flat.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(N * T)
    loss = -np.sum(mask_flat * log_probs[rows, y_flat]) / N
    dx_flat = np.exp(log_probs)
    dx_flat[rows, y_flat] -= 1
    dx_flat /= N
    dx_flat *= mask_flat[:, None]
    if verbose:
        logger.info("dx_flat: %s", dx_flat.shape)
    return loss, dx_flat.reshape(N, T, V)


# ------------------------------------------------------------------------------------------- LSTM
def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b) -> tuple[np.ndarray, np.ndarray, tuple]:
    """One LSTM step (Hochreiter & Schmidhuber 1997, with forget gate, Gers et al. 2000).

    ``a = x Wx + prev_h Wh + b`` split into ``i, f, o, g`` (CS231n order), then
    ``i, f, o = sigmoid(a_i, a_f, a_o)``, ``g = tanh(a_g)``, ``next_c = f * prev_c + i * g``,
    ``next_h = o * tanh(next_c)``.

    Shapes: x ``(N, D)``, prev_h and prev_c ``(N, H)``, Wx ``(D, 4H)``, Wh ``(H, 4H)``, b ``(4H,)``
    -> ``(next_h (N, H), next_c (N, H), cache)``.
    """
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    o = sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache) -> tuple[np.ndarray, ...]:
    """Backward of :func:`lstm_step_forward` -> ``(dx, dprev_h, dprev_c, dWx, dWh, db)``."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c**2)
    da = np.concatenate(
        [
            dc * g * i * (1.0 - i),  # a_i
            dc * prev_c * f * (1.0 - f),  # a_f
            dnext_h * tanh_c * o * (1.0 - o),  # a_o
            dc * i * (1.0 - g**2),  # a_g
        ],
        axis=1,
    )
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b) -> tuple[np.ndarray, list]:
    """LSTM over a sequence with ``c0 = 0`` (as CS231n): x ``(N, T, D)``, h0 ``(N, H)`` ->
    h ``(N, T, H)``, cache. The final cell state is ``cache[-1]``'s; use
    :func:`rnnkit.reference.variants.lstm_variant_forward` for a given ``c0`` or ``c_last``."""
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H), dtype=np.result_type(x, h0, Wx))
    prev_h, prev_c = h0, np.zeros_like(h0)
    caches = []
    for t in range(T):
        prev_h, prev_c, step_cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(step_cache)
    return h, caches


def lstm_backward(dh, cache) -> tuple[np.ndarray, ...]:
    """Backward of :func:`lstm_forward`: dh ``(N, T, H)`` -> ``(dx, dh0, dWx, dWh, db)``."""
    N, T, H = dh.shape
    dprev_h = np.zeros_like(dh[:, 0])
    dprev_c = np.zeros_like(dh[:, 0])
    dx = dWx = dWh = db = None
    for t in reversed(range(T)):
        dx_t, dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t] + dprev_h, dprev_c, cache[t]
        )
        if dx is None:
            dx = np.zeros((N, T, dx_t.shape[1]), dtype=dx_t.dtype)
            dWx, dWh, db = dWx_t, dWh_t, db_t
        else:
            dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
        dx[:, t] = dx_t
    return dx, dprev_h, dWx, dWh, db


# -------------------------------------------------------------------------------------------- GRU
def gru_step_forward(x, prev_h, Wx, Wh, bx, bh) -> tuple[np.ndarray, tuple]:
    """One GRU step (Cho et al. 2014), in torch.nn.GRU's form and gate order ``r, z, n``.

    ``ax = x Wx + bx``, ``ah = prev_h Wh + bh`` (each split into r, z, n), then
    ``r = sigmoid(ax_r + ah_r)``, ``z = sigmoid(ax_z + ah_z)``, ``n = tanh(ax_n + r * ah_n)``,
    ``next_h = (1 - z) * n + z * prev_h``.

    Shapes: x ``(N, D)``, prev_h ``(N, H)``, Wx ``(D, 3H)``, Wh ``(H, 3H)``, bx and bh ``(3H,)`` ->
    ``(next_h (N, H), cache)``.
    """
    H = prev_h.shape[1]
    ax = x @ Wx + bx
    ah = prev_h @ Wh + bh
    r = sigmoid(ax[:, :H] + ah[:, :H])
    z = sigmoid(ax[:, H : 2 * H] + ah[:, H : 2 * H])
    ah_n = ah[:, 2 * H :]
    n = np.tanh(ax[:, 2 * H :] + r * ah_n)
    next_h = (1.0 - z) * n + z * prev_h
    return next_h, (x, prev_h, Wx, Wh, r, z, n, ah_n)


def gru_step_backward(dnext_h, cache) -> tuple[np.ndarray, ...]:
    """Backward of :func:`gru_step_forward` -> ``(dx, dprev_h, dWx, dWh, dbx, dbh)``."""
    x, prev_h, Wx, Wh, r, z, n, ah_n = cache
    dn_pre = dnext_h * (1.0 - z) * (1.0 - n**2)  # gradient of ax_n + r * ah_n
    dz_pre = dnext_h * (prev_h - n) * z * (1.0 - z)
    dr_pre = dn_pre * ah_n * r * (1.0 - r)
    dax = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)
    dah = np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1)
    dx = dax @ Wx.T
    dprev_h = dah @ Wh.T + dnext_h * z
    return dx, dprev_h, x.T @ dax, prev_h.T @ dah, dax.sum(axis=0), dah.sum(axis=0)


def gru_forward(x, h0, Wx, Wh, bx, bh) -> tuple[np.ndarray, list]:
    """GRU over a sequence: x ``(N, T, D)``, h0 ``(N, H)`` -> h ``(N, T, H)``, cache."""
    N, T, _ = x.shape
    h = np.zeros((N, T, h0.shape[1]), dtype=np.result_type(x, h0, Wx))
    caches = []
    prev_h = h0
    for t in range(T):
        prev_h, step_cache = gru_step_forward(x[:, t], prev_h, Wx, Wh, bx, bh)
        h[:, t] = prev_h
        caches.append(step_cache)
    return h, caches


def gru_backward(dh, cache) -> tuple[np.ndarray, ...]:
    """Backward of :func:`gru_forward`: dh ``(N, T, H)`` -> ``(dx, dh0, dWx, dWh, dbx, dbh)``."""
    return _sequence_backward(gru_step_backward, dh, cache)
