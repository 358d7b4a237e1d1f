"""The output layer of a language model over a vocabulary of ``V`` words: a full softmax (a linear
layer, tied to the embedding or not; Press & Wolf 2017, Inan et al. 2017) or the adaptive softmax
of Grave, Joulin, Cissé, Grangier & Jégou 2017, "Efficient softmax approximation for GPUs"
(``torch.nn.AdaptiveLogSoftmaxWithLoss``), whose head can be tied too.

The adaptive softmax scores the ``cutoffs[0]`` most frequent words (ids are by decreasing
frequency) and one entry per tail cluster in its head, and the rarer words in tail clusters of
widths ``O / div``, ``O / div^2``, ...; a word's probability is its head probability, or its
cluster's head probability times its probability within the cluster. A batch pays for the head
and for the clusters its targets fall in, not for the ``O x V`` product of a full softmax. Tied,
the head's rows of the frequent words are their embedding rows (the tails keep their own weights),
as Baevski & Auli 2019 tie adaptive input and output.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)


class TiedShortlistHead(nn.Module):
    """The head of an adaptive softmax whose first ``shortlist`` rows are an embedding's:
    ``(..., O) -> (..., shortlist + clusters)`` with weight ``cat(embedding[:shortlist], own)``."""

    def __init__(self, embedding: nn.Parameter, shortlist: int, clusters: int) -> None:
        super().__init__()
        self.embedding = embedding  # (V, O), shared with the model's embedding
        self.shortlist = shortlist
        out = embedding.shape[1]
        self.cluster_weight = nn.Parameter(torch.empty(clusters, out))  # (clusters, O)
        self.bias = nn.Parameter(torch.zeros(shortlist + clusters))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.cluster_weight, -0.1, 0.1)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        weight = torch.cat([self.embedding[: self.shortlist], self.cluster_weight])
        return F.linear(x, weight, self.bias)


def adaptive_cutoffs(cutoffs: tuple[int, ...], vocab_size: int) -> list[int]:
    """The cutoffs below ``vocab_size - 1`` (those at or past it are dropped, logged); an empty
    list when none is left (the vocabulary is too small for an adaptive softmax)."""
    kept = [c for c in cutoffs if c < vocab_size - 1]
    if len(kept) < len(cutoffs):
        log.info("adaptive softmax: cutoffs %s dropped (vocabulary of %d words)",
                 [c for c in cutoffs if c not in kept], vocab_size)  # fmt: skip
    return kept


def adaptive_softmax(
    in_features: int,
    vocab_size: int,
    cutoffs: tuple[int, ...],
    div: float,
    tie_to: nn.Parameter | None = None,
) -> nn.AdaptiveLogSoftmaxWithLoss:
    """``AdaptiveLogSoftmaxWithLoss(in_features, vocab_size, cutoffs, div)`` with a head bias;
    with ``tie_to`` (the embedding ``(V, in_features)``) its head is a :class:`TiedShortlistHead`.
    A ValueError when no cutoff is below ``vocab_size - 1``."""
    cuts = adaptive_cutoffs(cutoffs, vocab_size)
    if not cuts:
        raise ValueError(
            f"adaptive_cutoffs {list(cutoffs)} leave no cluster in a vocabulary of {vocab_size} "
            f"words: give cutoffs below {vocab_size - 1}, or a full softmax"
        )
    layer = nn.AdaptiveLogSoftmaxWithLoss(
        in_features, vocab_size, cuts, div_value=float(div), head_bias=True
    )
    if tie_to is not None:
        if tie_to.shape != (vocab_size, in_features):
            raise ValueError(
                f"a tied adaptive softmax needs an embedding of shape ({vocab_size}, "
                f"{in_features}), got {tuple(tie_to.shape)}"
            )
        layer.head = TiedShortlistHead(tie_to, layer.shortlist_size, layer.n_clusters)
    return layer
