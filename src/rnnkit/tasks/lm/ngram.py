"""An interpolated modified Kneser-Ney n-gram model (Chen & Goodman 1998, "An Empirical Study of
Smoothing Techniques for Language Modeling", section 3), counted from a token stream in NumPy.

The language model task mixes it with the recurrent model, ``p = (1 - w) p_rnn + w p_kn``
(Mikolov et al. 2011, "Empirical Evaluation and Combination of Advanced Language Modeling
Techniques"): on a small corpus the counts know the rare words' contexts better than a network
that has seen each of them a few times.

For order ``n`` and context ``h`` (the ``n - 1`` words before ``w``; ``h'`` drops its first)::

    p_n(w | h) = max(c_n(h w) - D_n(c_n(h w)), 0) / c_n(h .) + gamma_n(h) p_{n-1}(w | h')
    gamma_n(h) = (D_n1 N1(h .) + D_n2 N2(h .) + D_n3 N3+(h .)) / c_n(h .)

with ``c_n`` the raw count at the highest order and the continuation count ``N1+(. h w)`` (the
number of distinct words seen before ``h w``) below it; ``N_k(h .)`` is the number of words with
count ``k`` after ``h``; ``D_nk`` are Chen & Goodman's discounts from the counts of counts, and an
unseen context passes ``p_{n-1}`` through. Order 0 is the uniform distribution over the
vocabulary, so every word keeps some probability.

N-grams are numbered order by order: an n-gram's id is its rank among the training n-grams,
found from ``(id of its first n - 1 words) * V + last word``, so no key outgrows int64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

MAX_NGRAM_ORDER = 9
DEFAULT_NGRAM_ORDER = 4  # mixed in by `rnnkit evaluate --ngram` when the run's config has none


@dataclass
class _Order:
    """The counts of one order ``n`` (arrays over its distinct training n-grams or contexts)."""

    keys: np.ndarray  # (G,) int64, sorted: context id * V + word
    counts: np.ndarray  # (G,) raw count at the highest order, continuation count below
    total: np.ndarray  # (C,) c_n(h .) per context
    gamma_numer: np.ndarray  # (C,) D1 N1(h .) + D2 N2(h .) + D3 N3+(h .)
    discounts: np.ndarray  # (4,) D for counts 0, 1, 2, 3+


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Chen & Goodman's D1, D2, D3+ from the counts of counts (eq. 26), clipped to ``[0, k]``;
    ``[0, D1, D2, D3+]``."""
    n = [np.count_nonzero(counts == k) for k in (1, 2, 3, 4)]
    if n[0] == 0 or n[1] == 0:  # too few counts to estimate: a plain absolute discount
        return np.array([0.0, 0.5, 0.5, 0.5])
    y = n[0] / (n[0] + 2 * n[1])
    d = [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / max(n[2], 1)]
    return np.array([0.0] + [min(max(v, 0.0), k) for k, v in zip((1, 2, 3), d)])


def _check_ids(tokens: np.ndarray, vocab_size: int) -> None:
    """A ValueError naming the range when an id of ``tokens`` is outside ``[0, vocab_size)``."""
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(
            f"token ids must be in [0, {vocab_size}), got [{tokens.min()}, {tokens.max()}]"
        )


def _lookup(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of each ``query`` in sorted ``keys``, -1 where absent (or where the query is < 0)."""
    pos = np.searchsorted(keys, query)
    pos = np.minimum(pos, max(len(keys) - 1, 0))
    found = (query >= 0) & (len(keys) > 0)
    if len(keys):
        found &= keys[pos] == query
    return np.where(found, pos, -1)


class KneserNey:
    """Interpolated modified Kneser-Ney over token ids ``0 .. vocab_size - 1``.

    ``KneserNey(train_tokens (L,), vocab_size, order)``; :meth:`log_probs` scores a stream.
    """

    def __init__(self, tokens: np.ndarray, vocab_size: int, order: int = 4) -> None:
        if (
            isinstance(order, bool)
            or not isinstance(order, int)
            or not 1 <= order <= MAX_NGRAM_ORDER
        ):
            raise ValueError(f"order must be an integer in 1..{MAX_NGRAM_ORDER}, got {order!r}")
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1 or tokens.size < 2:
            raise ValueError(f"tokens must be a 1-D stream of >= 2 ids, got shape {tokens.shape}")
        _check_ids(tokens, vocab_size)
        self.vocab_size, self.order = int(vocab_size), order
        ids = [np.zeros_like(tokens)]  # ids[n][i]: id of the n-gram ending at i (n = 0: empty)
        keys, first = [None], [None]
        raw = []
        for n in range(1, order + 1):
            key = np.full_like(tokens, -1)
            key[n - 1 :] = ids[n - 1][n - 2 : len(tokens) - 1] * vocab_size if n > 1 else 0
            key[n - 1 :] += tokens[n - 1 :]
            valid = np.arange(len(tokens)) >= n - 1
            uniq, index, inverse, count = np.unique(
                key[valid], return_index=True, return_inverse=True, return_counts=True
            )
            ids.append(np.full_like(tokens, -1))
            ids[n][valid] = inverse
            keys.append(uniq)
            first.append(index + n - 1)  # a position where each n-gram ends
            raw.append(count)
        self._orders: list[_Order] = []
        for n in range(1, order + 1):
            if n == order:
                counts = raw[n - 1]
            else:  # continuation counts: distinct (n+1)-grams that end in this n-gram
                suffix = ids[n][first[n + 1]]
                counts = np.bincount(suffix, minlength=len(keys[n]))
            context = keys[n] // vocab_size
            n_contexts = len(keys[n - 1]) if n > 1 else 1
            disc = _discounts(counts)
            total = np.bincount(context, weights=counts, minlength=n_contexts)
            d = disc[np.minimum(counts, 3)]
            gamma_numer = np.bincount(context, weights=d, minlength=n_contexts)  # D(0) = 0
            self._orders.append(_Order(keys[n], counts, total, gamma_numer, disc))

    def log_probs(self, tokens: np.ndarray) -> np.ndarray:
        """``log p(tokens[i] | tokens[i - order + 1:i])`` for each position ``i`` of ``tokens (L,)``
        (the first positions with the history they have): ``(L,)`` float64."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1:
            raise ValueError(f"tokens must be 1-D (L,), got shape {tokens.shape}")
        _check_ids(tokens, self.vocab_size)
        L = len(tokens)
        p = np.full(L, 1.0 / self.vocab_size)  # order 0: uniform
        gram = np.zeros(L, dtype=np.int64)  # id of the n-gram ending at each position, -1: unseen
        for n, o in enumerate(self._orders, start=1):
            context = np.zeros(L, dtype=np.int64)  # order 1: the empty context
            if n > 1:  # the (n-1)-gram ending just before each position
                context[0] = -1
                context[1:] = gram[:-1]
            query = np.where(context >= 0, context * self.vocab_size + tokens, -1)
            gram = _lookup(o.keys, query)
            ctx = np.maximum(context, 0)
            total = np.where(context >= 0, o.total[ctx], 0.0)
            seen = total > 0  # a context the training text has: interpolate; else pass p through
            c = np.where(gram >= 0, o.counts[np.maximum(gram, 0)], 0)
            discounted = np.maximum(c - o.discounts[np.minimum(c, 3)], 0.0)
            mixed = (discounted + o.gamma_numer[ctx] * p) / np.where(seen, total, 1.0)
            p = np.where(seen, mixed, p)
        return np.log(p)


def mix_log_probs(model: Tensor, ngram: Tensor, weight: float) -> Tensor:
    """``log((1 - weight) p_model + weight p_ngram)`` of two log-probabilities of the same words,
    elementwise (``weight`` 0 gives ``model`` itself, NaN stays NaN)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the n-gram's weight must be in [0, 1], got {weight!r}")
    if weight == 0.0:
        return model
    ngram = ngram.to(model.dtype)
    if weight == 1.0:
        return ngram
    return torch.logaddexp(model + math.log1p(-weight), ngram + math.log(weight))


def fit_weight(model: Tensor, ngram: Tensor, steps: int = 500, tol: float = 1e-9) -> float:
    """The weight ``w`` that maximises the mean of :func:`mix_log_probs` over the words (EM: ``w``
    becomes the mean posterior of the n-gram, which never lowers the likelihood); ``model`` and
    ``ngram`` are the two log-probabilities of the same words, any shape."""
    a, b = model.detach().double().flatten(), ngram.detach().double().flatten()
    if a.shape != b.shape or a.numel() == 0:
        raise ValueError(f"expected two equal, non-empty sets of log-probabilities, got "
                         f"{tuple(model.shape)} and {tuple(ngram.shape)}")  # fmt: skip
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("the log-probabilities to fit the n-gram's weight on are not all finite")
    w = 0.5
    for _ in range(steps):
        posterior = torch.exp(
            b + math.log(w) - torch.logaddexp(a + math.log1p(-w), b + math.log(w))
        )
        new = float(posterior.mean().clamp(1e-6, 1 - 1e-6))
        if abs(new - w) < tol:
            return new
        w = new
    return w
