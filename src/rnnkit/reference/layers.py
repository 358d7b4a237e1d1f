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

The recurrent functions are thin wrappers over the variant oracle
(:mod:`rnnkit.reference.variants`) with every option off, so there is one implementation of the
recurrent math. Their caches are the oracle's (a dict per step, a list of them per sequence): pass
them, unopened, to the matching backward.
"""

from __future__ import annotations

import logging

import numpy as np

from .common import sigmoid
from .gru import (
    gru_variant_backward,
    gru_variant_forward,
    gru_variant_step_backward,
    gru_variant_step_forward,
)
from .lstm import (
    lstm_variant_backward,
    lstm_variant_forward,
    lstm_variant_step_backward,
    lstm_variant_step_forward,
)
from .rnn import (
    rnn_variant_backward,
    rnn_variant_forward,
    rnn_variant_step_backward,
    rnn_variant_step_forward,
)

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


def _pick(grads: dict, *names: str) -> tuple[np.ndarray, ...]:
    """The oracle's gradient dict as CS231n's tuple, in the order of ``names``."""
    return tuple(grads[name] for name in names)


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
def rnn_step_forward(x, prev_h, Wx, Wh, b) -> tuple[np.ndarray, dict]:
    """One tanh RNN step (Elman 1990): ``next_h = tanh(x Wx + prev_h Wh + b)``.

    Shapes: x ``(N, D)``, prev_h ``(N, H)``, Wx ``(D, H)``, Wh ``(H, H)``, b ``(H,)`` -> next_h
    ``(N, H)``.
    """
    return rnn_variant_step_forward(x, prev_h, Wx, Wh, b)


def rnn_step_backward(dnext_h, cache) -> tuple[np.ndarray, ...]:
    """Backward of :func:`rnn_step_forward` -> ``(dx, dprev_h, dWx, dWh, db)``."""
    grads = rnn_variant_step_backward(dnext_h, cache)
    return _pick(grads, "dx", "dprev_h", "dWx", "dWh", "db")


def rnn_forward(x, h0, Wx, Wh, b) -> tuple[np.ndarray, list]:
    """Tanh RNN over a sequence: x ``(N, T, D)``, h0 ``(N, H)`` -> h ``(N, T, H)``, cache."""
    return rnn_variant_forward(x, h0, Wx, Wh, b)


def rnn_backward(dh, cache) -> tuple[np.ndarray, ...]:
    """Backward of :func:`rnn_forward`: dh ``(N, T, H)`` (upstream gradient of every h) ->
    ``(dx, dh0, dWx, dWh, db)``."""
    return _pick(rnn_variant_backward(dh, cache), "dx", "dh0", "dWx", "dWh", "db")


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
def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b) -> tuple[np.ndarray, np.ndarray, dict]:
    """One LSTM step (Hochreiter & Schmidhuber 1997, with forget gate, Gers et al. 2000).

    ``a = x Wx + prev_h Wh + b`` split into ``i, f, o, g`` (CS231n order), then
    ``i, f, o = sigmoid(a_i, a_f, a_o)``, ``g = tanh(a_g)``, ``next_c = f * prev_c + i * g``,
    ``next_h = o * tanh(next_c)``.

    Shapes: x ``(N, D)``, prev_h and prev_c ``(N, H)``, Wx ``(D, 4H)``, Wh ``(H, 4H)``, b ``(4H,)``
    -> ``(next_h (N, H), next_c (N, H), cache)``.
    """
    return lstm_variant_step_forward(x, prev_h, prev_c, Wx, Wh, b)


def lstm_step_backward(dnext_h, dnext_c, cache) -> tuple[np.ndarray, ...]:
    """Backward of :func:`lstm_step_forward` -> ``(dx, dprev_h, dprev_c, dWx, dWh, db)``."""
    grads = lstm_variant_step_backward(dnext_h, dnext_c, cache)
    return _pick(grads, "dx", "dprev_h", "dprev_c", "dWx", "dWh", "db")


def lstm_forward(x, h0, Wx, Wh, b) -> tuple[np.ndarray, list]:
    """LSTM over a sequence with ``c0 = 0`` (as CS231n): x ``(N, T, D)``, h0 ``(N, H)`` ->
    h ``(N, T, H)``, cache. The final cell state is ``cache[-1]["c_new"]``; use
    :func:`rnnkit.reference.variants.lstm_variant_forward` for a given ``c0`` or ``c_last``."""
    h, _, caches = lstm_variant_forward(x, h0, None, Wx, Wh, b)
    return h, caches


def lstm_backward(dh, cache) -> tuple[np.ndarray, ...]:
    """Backward of :func:`lstm_forward`: dh ``(N, T, H)`` -> ``(dx, dh0, dWx, dWh, db)``."""
    return _pick(lstm_variant_backward(dh, None, cache), "dx", "dh0", "dWx", "dWh", "db")


# -------------------------------------------------------------------------------------------- GRU
def gru_step_forward(x, prev_h, Wx, Wh, bx, bh) -> tuple[np.ndarray, dict]:
    """One GRU step (Cho et al. 2014), in torch.nn.GRU's form and gate order ``r, z, n``.

    ``ax = x Wx + bx``, ``ah = prev_h Wh + bh`` (each split into r, z, n), then
    ``r = sigmoid(ax_r + ah_r)``, ``z = sigmoid(ax_z + ah_z)``, ``n = tanh(ax_n + r * ah_n)``,
    ``next_h = (1 - z) * n + z * prev_h``.

    Shapes: x ``(N, D)``, prev_h ``(N, H)``, Wx ``(D, 3H)``, Wh ``(H, 3H)``, bx and bh ``(3H,)`` ->
    ``(next_h (N, H), cache)``.
    """
    return gru_variant_step_forward(x, prev_h, Wx, Wh, bx, bh)


def gru_step_backward(dnext_h, cache) -> tuple[np.ndarray, ...]:
    """Backward of :func:`gru_step_forward` -> ``(dx, dprev_h, dWx, dWh, dbx, dbh)``."""
    grads = gru_variant_step_backward(dnext_h, cache)
    return _pick(grads, "dx", "dprev_h", "dWx", "dWh", "dbx", "dbh")


def gru_forward(x, h0, Wx, Wh, bx, bh) -> tuple[np.ndarray, list]:
    """GRU over a sequence: x ``(N, T, D)``, h0 ``(N, H)`` -> h ``(N, T, H)``, cache."""
    return gru_variant_forward(x, h0, Wx, Wh, bx, bh)


def gru_backward(dh, cache) -> tuple[np.ndarray, ...]:
    """Backward of :func:`gru_forward`: dh ``(N, T, H)`` -> ``(dx, dh0, dWx, dWh, dbx, dbh)``."""
    return _pick(gru_variant_backward(dh, cache), "dx", "dh0", "dWx", "dWh", "dbx", "dbh")
