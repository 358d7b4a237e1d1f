"""The continuous (neural) cache of Grave, Joulin & Usunier 2017, "Improving Neural Language Models
with a Continuous Cache": the recent hidden states vote for the words that followed them.

For the hidden state ``h_t`` of the last recurrent layer and the cache of the previous ``size``
states ``h_i`` with the words ``x_{i+1}`` that followed them::

    p_cache(w | h_t) ∝ sum_i [x_{i+1} = w] exp(theta h_t · h_i)
    p(w) = (1 - lambda) p_model(w) + lambda p_cache(w)

Only the probability of the word that came is needed to score a text, so nothing of the
vocabulary's size is built. Each column of a batch (a contiguous stretch of the text) has its own
cache; a word before the first state of its column is scored by the model alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class CacheConfig:
    """Settings of the continuous cache: ``size`` hidden states kept per column, ``theta`` the
    flatness of the match (the scale of ``h_t · h_i``), ``lam`` the weight of the cache in the
    mixture (0: the model alone)."""

    size: int = 2000
    theta: float = 0.3
    lam: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(
                f"cache size must be an integer >= 1 (hidden states), got {self.size!r}"
            )
        if not (isinstance(self.theta, (int, float)) and math.isfinite(self.theta)
                and self.theta >= 0):  # fmt: skip
            raise ValueError(f"cache theta must be a finite number >= 0, got {self.theta!r}")
        if not (isinstance(self.lam, (int, float)) and 0.0 <= self.lam <= 1.0):
            raise ValueError(f"cache lambda must be a number in [0, 1], got {self.lam!r}")


class NeuralCache:
    """The cache of one pass over a batched text: ``keys (M, N, H)`` and their next words ``(M, N)``.

    Call :meth:`score` on each window in order: it mixes the model's ``log p(targets)`` with the
    cache's and then appends the window's states and words to the cache.
    """

    def __init__(self, cfg: CacheConfig) -> None:
        self.cfg = cfg
        self.keys: Tensor | None = None  # (M, N, H), M <= cfg.size
        self.words: Tensor | None = None  # (M, N)

    def score(self, features: Tensor, targets: Tensor, model_log_probs: Tensor) -> Tensor:
        """``log p(targets)`` of the mixture, ``(T, N)``.

        Args:
            features: the last layer's outputs ``(T, N, H)`` (the states ``h_t``).
            targets: the next words ``(T, N)``.
            model_log_probs: the model's ``log p(targets)``, ``(T, N)``.
        """
        if self.cfg.lam == 0.0:  # the model alone; the window still enters the cache
            self.probs(features, targets, compute=False)
            return model_log_probs
        return mix(model_log_probs, self.probs(features, targets), self.cfg.lam)

    def probs(self, features: Tensor, targets: Tensor, compute: bool = True) -> Tensor | None:
        """The cache's ``p(targets)`` ``(T, N)`` for the window ``features (T, N, H)``, ``targets
        (T, N)`` (None without ``compute``); then the window enters the cache."""
        features, targets = features.detach(), targets.detach()
        if features.dim() != 3 or targets.shape != features.shape[:2]:
            raise ValueError(
                f"expected features (T, N, H) and targets (T, N), got {tuple(features.shape)} "
                f"and {tuple(targets.shape)}"
            )
        keys = features if self.keys is None else torch.cat([self.keys, features])  # (m+T, N, H)
        words = targets if self.words is None else torch.cat([self.words, targets])  # (m+T, N)
        p_cache = None
        if compute:
            p_cache = cache_probs(features, targets, keys, words, self.cfg.size, self.cfg.theta)
        self.keys, self.words = keys[-self.cfg.size :], words[-self.cfg.size :]
        return p_cache


def cache_probs(
    queries: Tensor, targets: Tensor, keys: Tensor, words: Tensor, size: int, theta: float
) -> Tensor:
    """``p_cache(targets)``, ``(T, N)``, for the queries ``(T, N, H)`` that are the last ``T`` of
    ``keys (M, N, H)`` (whose next words are ``words (M, N)``); 0 where no key precedes a query."""
    T, m = queries.shape[0], keys.shape[0] - queries.shape[0]  # m states from earlier windows
    scores = theta * torch.einsum("tnh,jnh->tjn", queries, keys)  # (T, m+T, N)
    # query t is position m+t of the keys: it sees keys j with m+t-size <= j < m+t
    j = torch.arange(m + T, device=keys.device)
    q = m + torch.arange(T, device=keys.device)
    seen = (j[None, :] < q[:, None]) & (j[None, :] >= q[:, None] - size)  # (T, m+T)
    scores = scores.masked_fill(~seen[:, :, None], float("-inf"))
    any_key = seen.any(dim=1)[:, None]  # (T, 1): False only for a column's very first word
    weights = torch.softmax(scores.masked_fill(~any_key[:, :, None], 0.0), dim=1)
    hit = (words[None, :, :] == targets[:, None, :]).to(weights.dtype)  # (T, m+T, N)
    return (weights * hit).sum(dim=1).masked_fill(~any_key, 0.0)  # (T, N)


def mix(model_lp: Tensor, p_cache: Tensor, lam: float) -> Tensor:
    """``log((1 - lam) p_model + lam p_cache)`` from ``model_lp = log p_model``, elementwise."""
    if lam == 0.0:
        return model_lp
    model_part = math.log1p(-lam) + model_lp if lam < 1.0 else torch.full_like(model_lp, -math.inf)
    return torch.logaddexp(model_part, math.log(lam) + torch.log(p_cache))


# the grid :func:`tune` searches by default: Grave et al. tune theta and lambda on validation text
THETAS = (0.1, 0.2, 0.3, 0.4, 0.6, 0.8)
LAMS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)


def tune(
    windows: list[tuple[Tensor, Tensor, Tensor]],
    size: int = CacheConfig.size,
    thetas: tuple[float, ...] = THETAS,
    lams: tuple[float, ...] = LAMS,
) -> tuple[CacheConfig, list[dict[str, float]]]:
    """The cache settings that minimise the mean loss of a text read once, in order, as
    ``windows`` of ``(features (T, N, H), targets (T, N), model log p(targets) (T, N))`` (what
    :class:`NeuralCache` would see), over the grid ``thetas`` x ``lams``; returns ``(best,
    [{'theta', 'lam', 'loss'}, ...])``. The model's pass is made once: each theta costs one pass of
    the cache's dot products, each lambda only the mixture."""
    if not windows:
        raise ValueError("cache tuning needs at least one window of text, got none")
    configs = [CacheConfig(size=size, theta=t, lam=lam) for t in thetas for lam in lams]
    totals = torch.zeros(len(thetas), len(lams), dtype=torch.float64)
    for ti, theta in enumerate(thetas):
        cache = NeuralCache(CacheConfig(size=size, theta=theta))
        for features, targets, model_lp in windows:
            p_cache = cache.probs(features, targets)
            for li, lam in enumerate(lams):
                totals[ti, li] += -mix(model_lp, p_cache, lam).double().sum()
    losses = totals / sum(targets.numel() for _, targets, _ in windows)
    grid = [{"theta": c.theta, "lam": c.lam, "loss": float(v)}
            for c, v in zip(configs, losses.flatten())]  # fmt: skip
    return configs[int(losses.argmin())], grid
