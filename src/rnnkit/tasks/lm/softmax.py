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
as Baevski & Auli 2019 tie adaptive input and output; tied with ``div`` 1,
:class:`TiedAdaptiveSoftmax` scores every cluster against its words' embedding rows at full
width, so the output layer has no weights of its own but one head row per cluster.

Training and evaluation ask the full softmax only for ``log p(target)``, which
:func:`target_log_softmax` computes as one autograd node: the ``(M, V)`` scores are made once
(oneDNN's GEMM where :mod:`rnnkit.backends.gemm` prefers it, as on AMD CPUs; rnnkit's panel
kernel, tuned for the recurrences' skinny GEMMs, measured slower on these wide ones), turned
into log-probabilities and, in backward, into probabilities; the per-token
weights of the incoming gradient go on the small ``(M, O)`` factors, never on the ``(M, V)`` one.
"""

from __future__ import annotations

import logging
from collections import namedtuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...backends.cpu_kernels.library import tracing
from ...backends.gemm import Gemm, outer_sum

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

    @property
    def weight(self) -> Tensor:
        """``(shortlist + clusters, O)``: the embedding's first rows, then the clusters' own."""
        return torch.cat([self.embedding[: self.shortlist], self.cluster_weight])

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


AdaptiveOutput = namedtuple("AdaptiveOutput", ["output", "loss"])  # as torch's adaptive softmax


ROW_BUCKET = 16  # a tail cluster's rows per GEMM, rounded up to a multiple of this (docs/lm.md)


class TiedAdaptiveSoftmax(nn.Module):
    """An adaptive softmax (Grave et al. 2017) whose every cluster is scored against the
    embedding's own rows: ``p(w) = p_head(w)`` for the ``shortlist`` most frequent words,
    ``p_head(c) p_c(w)`` for a word of tail cluster ``c``, with the scores ``h . E[w]`` at the
    embedding's full width (no projection, no weights of its own but one head row per cluster
    and the head's bias).

    The same interface as ``torch.nn.AdaptiveLogSoftmaxWithLoss``: ``forward(x (M, O), t (M,))``
    gives ``(output = log p(t) (M,), loss)``, :meth:`log_prob` ``(M, V)``. The rows are cut from
    the embedding by one ``split``, so backward writes their gradients into one ``(V, O)`` tensor
    (``cat``) instead of a zero-filled one per cluster.
    """

    def __init__(self, embedding: nn.Parameter, cutoffs: list[int]) -> None:
        super().__init__()
        vocab_size, width = embedding.shape
        self.embedding = embedding  # (V, O), shared with the model's embedding
        self.cutoffs = [*cutoffs, vocab_size]
        self.shortlist_size, self.n_clusters = cutoffs[0], len(cutoffs)
        self.n_classes, self.in_features = vocab_size, width
        self.cluster_weight = nn.Parameter(torch.empty(self.n_clusters, width))  # (C, O)
        self.bias = nn.Parameter(torch.zeros(self.shortlist_size + self.n_clusters))
        nn.init.uniform_(self.cluster_weight, -0.1, 0.1)

    def weights(self) -> tuple[Tensor, list[Tensor]]:
        """The head's weight ``(shortlist + C, O)`` (its bias is ``bias``) and each cluster's
        rows ``(|c|, O)``."""
        sizes = [b - a for a, b in zip([0, *self.cutoffs[:-1]], self.cutoffs)]
        rows = self.embedding.split(sizes)
        return torch.cat([rows[0], self.cluster_weight]), list(rows[1:])

    def forward(self, x: Tensor, targets: Tensor) -> AdaptiveOutput:
        """``x (M, O), targets (M,)`` -> ``(log p(targets) (M,), mean negative log-likelihood)``."""
        if x.dim() != 2 or targets.shape != x.shape[:1]:
            raise ValueError(f"expected x (M, {self.in_features}) and targets (M,), got "
                             f"{tuple(x.shape)} and {tuple(targets.shape)}")  # fmt: skip
        if targets.numel() and (targets.min() < 0 or targets.max() >= self.n_classes):
            raise ValueError(f"targets must be word ids in [0, {self.n_classes}), got "
                             f"[{int(targets.min())}, {int(targets.max())}]")  # fmt: skip
        head_w, clusters = self.weights()
        head = torch.log_softmax(F.linear(x, head_w, self.bias), -1)  # (M, shortlist + C)
        bounds = torch.tensor(self.cutoffs[:-1], device=targets.device)
        cluster = torch.bucketize(targets, bounds, right=True)  # 0: the shortlist, c + 1: tail c
        in_head = torch.where(cluster == 0, targets, self.shortlist_size + cluster - 1)
        out = head.gather(1, in_head.unsqueeze(1)).squeeze(1)  # (M,)
        for c, rows in enumerate(clusters):
            sel = (cluster == c + 1).nonzero().squeeze(1)
            m = sel.numel()
            if m == 0:
                continue
            # the cluster's GEMMs run on m rows rounded up to a multiple of ROW_BUCKET with rows
            # of zeros, dropped after: a new m at every step has oneDNN build a kernel per shape
            picked = x.index_select(0, sel)  # (m, O)
            picked = torch.cat([picked, picked.new_zeros(-m % ROW_BUCKET, picked.shape[1])])
            within = torch.log_softmax(F.linear(picked, rows), -1)[:m]  # (m, |c|)
            local = (targets.index_select(0, sel) - self.cutoffs[c]).unsqueeze(1)
            out = out.index_add(0, sel, within.gather(1, local).squeeze(1).to(out.dtype))
        return AdaptiveOutput(out, -out.mean())

    def log_prob(self, x: Tensor) -> Tensor:
        """``x (M, O)`` -> log-probabilities over the whole vocabulary ``(M, V)``."""
        head_w, clusters = self.weights()
        head = torch.log_softmax(F.linear(x, head_w, self.bias), -1)
        parts = [head[:, : self.shortlist_size]]
        for c, rows in enumerate(clusters):
            within = torch.log_softmax(F.linear(x, rows), -1)
            parts.append(within + head[:, self.shortlist_size + c, None])
        return torch.cat(parts, -1)


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
) -> nn.Module:
    """``AdaptiveLogSoftmaxWithLoss(in_features, vocab_size, cutoffs, div)`` with a head bias;
    with ``tie_to`` (the embedding ``(V, in_features)``) its head is a :class:`TiedShortlistHead`,
    and with ``div`` 1 as well it is a :class:`TiedAdaptiveSoftmax` (every cluster tied). A
    ValueError when no cutoff is below ``vocab_size - 1``."""
    cuts = adaptive_cutoffs(cutoffs, vocab_size)
    if not cuts:
        raise ValueError(
            f"adaptive_cutoffs {list(cutoffs)} leave no cluster in a vocabulary of {vocab_size} "
            f"words: give cutoffs below {vocab_size - 1}, or a full softmax"
        )
    if tie_to is not None and div == 1:  # full-width clusters: every one tied to the embedding
        if tie_to.shape != (vocab_size, in_features):
            raise ValueError(
                f"a tied adaptive softmax needs an embedding of shape ({vocab_size}, "
                f"{in_features}), got {tuple(tie_to.shape)}"
            )
        return TiedAdaptiveSoftmax(tie_to, cuts)
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


def target_log_softmax(
    features: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor
) -> Tensor:
    """``log_softmax(features W^T + b)[target]``: ``(..., O), (V, O), (V,), (...) -> (...)``.

    Equal to ``-F.cross_entropy(F.linear(features, weight, bias), targets, reduction="none")``
    (NaN and Inf propagate the same way), in about half the time and memory on a CPU with a large
    vocabulary (:class:`TargetLogSoftmax`). While torch.compile or a torch.func transform traces,
    it is that expression itself.
    """
    if features.shape[:-1] != targets.shape:
        raise ValueError(
            f"target_log_softmax: features {tuple(features.shape)} need targets of shape "
            f"{tuple(features.shape[:-1])}, got {tuple(targets.shape)}"
        )
    flat_x, flat_t = features.reshape(-1, features.shape[-1]), targets.reshape(-1)
    if tracing() or flat_x.shape[0] == 0:
        logits = F.linear(flat_x, weight, bias)
        out = -F.cross_entropy(logits, flat_t, reduction="none")
    else:
        out = TargetLogSoftmax.apply(flat_x, weight, bias, flat_t)
    return out.view(targets.shape)


class TargetLogSoftmax(torch.autograd.Function):
    """``x (M, O), W (V, O), b (V,) | None, t (M,) -> log p(t) (M,)`` of the softmax of ``x W^T + b``.

    Forward keeps one ``(M, V)`` buffer, the log-probabilities; backward makes the probabilities
    ``q`` from it and, with ``g (M,)`` the incoming gradient and ``e_t`` the one-hot rows of the
    targets (``d log p(t) / d logits = e_t - q``):

        dx = g * (W[t] - q W)        dW = e_t^T (g x) - q^T (g x)        db = e_t^T g - q^T g

    so the three GEMMs read ``q`` as it is and no elementwise pass over ``(M, V)`` remains but the
    log-softmax and the exponential. Under autocast the GEMMs run in its dtype (``q`` too), the
    log-probabilities and the gradients in the weight's. Under ``create_graph=True`` backward
    computes the same gradients from differentiable torch ops, so second-order gradients are exact.
    """

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor | None, t: Tensor) -> Tensor:  # noqa: D102
        lowp = _autocast_dtype(x)  # the GEMMs' dtype under autocast; None: the inputs' own
        if lowp is None:
            logits = Gemm(w, x.shape[0], own_kernel=False)(x, bias=b)  # (M, V)
        else:
            bl = None if b is None else b.to(lowp)
            logits = F.linear(x.to(lowp), w.to(lowp), bl)  # (M, V) in lowp
        log_p = torch.log_softmax(logits, dim=1, dtype=None if lowp is None else w.dtype)
        del logits
        out = log_p.gather(1, t.unsqueeze(1)).squeeze(1)  # (M,)
        ctx.has_bias, ctx.lowp = b is not None, lowp
        ctx.saved_bias = b  # read only by a differentiable (create_graph) backward
        ctx.save_for_backward(x, w, t, log_p)
        return out

    @staticmethod
    def backward(ctx, g: Tensor):  # noqa: D102
        x, w, t, log_p = ctx.saved_tensors
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph=True: the same gradients, differentiable
            b = ctx.saved_bias if ctx.has_bias else None
            dlogits = F.one_hot(t, w.shape[0]).to(g.dtype) - torch.softmax(F.linear(x, w, b), 1)
            dlogits = dlogits * g.unsqueeze(1)  # (M, V)
            dx, dw = dlogits @ w, dlogits.t() @ x
            db = dlogits.sum(0) if ctx.has_bias else None
            return dx if need_x else None, dw if need_w else None, db if need_b else None, None
        q = torch.exp(log_p, out=torch.empty_like(log_p, dtype=ctx.lowp))  # (M, V): the softmax
        if ctx.lowp is None:

            def q_w() -> Tensor:  # q W: (M, O)
                return Gemm(w.t(), q.shape[0], own_kernel=False)(q)

            def qt_x(gx: Tensor) -> Tensor:  # q^T gx: (V, O)
                return outer_sum(q, gx, own_kernel=False)
        else:  # the GEMMs in the autocast dtype, their results in the weight's (float32)

            def q_w() -> Tensor:
                return (q @ w.to(q.dtype)).to(w.dtype)

            def qt_x(gx: Tensor) -> Tensor:
                return (q.t() @ gx.to(q.dtype)).to(w.dtype)

        g = g.to(w.dtype)
        dx = dw = db = None
        if need_x:
            dx = (w.index_select(0, t) - q_w()).mul_(g.unsqueeze(1)).to(x.dtype)
        if need_w:
            gx = x.to(w.dtype) * g.unsqueeze(1)  # (M, O)
            dw = qt_x(gx).neg_().index_add_(0, t, gx)
        if need_b and ctx.has_bias:
            db = torch.mv(q.t(), g.to(q.dtype)).to(w.dtype).neg_().index_add_(0, t, g)
        return dx, dw, db, None


def _autocast_dtype(x: Tensor) -> torch.dtype | None:
    """The dtype autocast gives GEMMs on ``x``'s device, or None where it is off."""
    kind = x.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
