"""Regularisers of recurrent networks: the masks and the small modules that apply them.

* Variational (recurrent) dropout, Gal & Ghahramani 2016, "A Theoretically Grounded Application of
  Dropout in Recurrent Neural Networks": one mask per sequence, reused at every step.
* DropConnect on the hidden-to-hidden matrix, Wan et al. 2013, as used by AWD-LSTM (Merity et al. 2017,
  "Regularizing and Optimizing LSTM Language Models"): one mask per forward pass.
* Zoneout, Krueger et al. 2017: per-unit, per-step Bernoulli masks choosing the previous state.
* Embedding (word) dropout, Gal & Ghahramani 2016 as AWD-LSTM's ``embedded_dropout``: whole words of
  the vocabulary dropped for one forward pass, every occurrence of a word alike.

All dropout masks are "inverted" (scaled by ``1/(1-p)``) so evaluation is the identity.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .backends import cpu_kernels


def dropout_mask(shape: tuple[int, ...], p: float, like: Tensor, seed: int | None = None) -> Tensor:
    """A Bernoulli(1-p) mask scaled by ``1/(1-p)``, with ``like``'s dtype and device (drawn by
    :func:`rnnkit.backends.cpu_kernels.bernoulli` on CPU, as :func:`zoneout_masks`; ``seed`` draws the
    same mask again there)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    keep = cpu_kernels.bernoulli(shape, 1.0 - p, like, seed=seed) if p > 0 else None
    if keep is None:
        keep = torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1.0 - p)
    return keep.div_(1.0 - p)


def drop_connect(weight: Tensor, p: float) -> Tensor:
    """DropConnect (Wan et al. 2013; AWD-LSTM's WeightDrop): ``weight * mask`` with an inverted
    Bernoulli(1-p) mask of the weight's shape.

    On CPU the mask is drawn by :func:`rnnkit.backends.cpu_kernels.bernoulli` from a seed and drawn again
    from it in backward, so nothing of the weight's size is kept for the backward pass."""
    if cpu_kernels.seeded_draws(p, weight):
        return _SeededDropConnect.apply(weight, p, cpu_kernels.draw_seed())
    return weight * dropout_mask(tuple(weight.shape), p, weight)


class DropConnectDraw(NamedTuple):
    """DropConnect of ``weight`` at rate ``p`` with the mask of ``seed``, not applied yet: the C
    time loops apply it themselves and draw the mask again in backward, so nothing of the weight's
    size is kept; :meth:`applied` is :func:`drop_connect`'s product for the same seed, for every
    other backend."""

    weight: Tensor
    p: float
    seed: int

    def applied(self) -> Tensor:
        """``weight * mask``, differentiable in ``weight``."""
        return _SeededDropConnect.apply(self.weight, self.p, self.seed)


def drop_connect_draw(weight: Tensor, p: float) -> DropConnectDraw | Tensor:
    """:func:`drop_connect` for a layer whose time loop may run on the C kernels: where they serve
    ``weight``, a :class:`DropConnectDraw` (the seed drawn now, as :func:`drop_connect` draws it),
    else the dropped matrix."""
    if cpu_kernels.seeded_draws(p, weight):
        return DropConnectDraw(weight, p, cpu_kernels.draw_seed())
    return drop_connect(weight, p)


class _SeededDropConnect(torch.autograd.Function):
    """``weight * mask(seed)``; backward ``grad * mask(seed)`` with the mask drawn again."""

    @staticmethod
    def forward(ctx, weight: Tensor, p: float, seed: int) -> Tensor:  # noqa: D102
        ctx.p, ctx.seed = p, seed
        return weight * dropout_mask(tuple(weight.shape), p, weight, seed)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        return grad * dropout_mask(tuple(grad.shape), ctx.p, grad, ctx.seed), None, None


def zoneout_masks(steps: int, shape: tuple[int, ...], rate: float, like: Tensor) -> Tensor:
    """``(steps, *shape)`` Bernoulli(rate) masks; 1 keeps the previous state (Krueger et al. 2017).

    On CPU (float32/64) they come from rnnkit's C generator (:func:`rnnkit.backends.cpu_kernels.bernoulli`,
    seeded from torch's generator), ~10x faster than ``bernoulli_``, which costs as much as the
    recurrence it regularises."""
    fast = cpu_kernels.bernoulli((steps, *shape), rate, like)
    if fast is not None:
        return fast
    return torch.empty((steps, *shape), dtype=like.dtype, device=like.device).bernoulli_(rate)


def zoneout_draws(steps: int, shape: tuple[int, ...], rate: float, like: Tensor):
    """:func:`zoneout_masks` for a layer whose time loop may run on the C kernels: where those
    serve ``like``, the masks described by their seed (:class:`~rnnkit.backends.cpu_kernels.library.
    BernoulliDraws`, drawn by the kernels row by row where they read them, so no ``(T, N, C)``
    buffer is kept; the same values as :func:`zoneout_masks` from the same generator state), else
    the mask tensor."""
    draws = cpu_kernels.bernoulli_draws((steps, *shape), rate, like)
    return draws if draws is not None else zoneout_masks(steps, shape, rate, like)


def embedding_dropout(weight: Tensor, tokens: Tensor, p: float, training: bool = True) -> Tensor:
    """Look ``tokens`` (any shape ``S``) up in ``weight (V, E)`` with whole words dropped: ``(*S, E)``.

    One inverted Bernoulli(1-p) draw per vocabulary row, so every occurrence of a word in the batch
    is dropped or kept together (AWD-LSTM's ``embedded_dropout``, Merity et al. 2017, section 4.3;
    Gal & Ghahramani 2016). The same as masking the rows of ``weight``, without building the masked
    ``(V, E)`` matrix. ``p == 0`` or ``training=False``: a plain lookup.
    """
    out = nn.functional.embedding(tokens, weight)
    if not training or p == 0.0:
        return out
    keep = dropout_mask((weight.shape[0],), p, weight)  # (V,)
    return out * keep[tokens].unsqueeze(-1)


class LockedDropout(nn.Module):
    """Variational dropout on a sequence ``(T, N, C)`` (or ``(N, T, C)`` with ``batch_first``): one mask
    per sequence and feature, shared over time (Gal & Ghahramani 2016; AWD-LSTM's ``LockedDropout``)."""

    def __init__(self, p: float = 0.5, batch_first: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"LockedDropout p must be in [0, 1), got {p}")
        self.p = p
        self.batch_first = batch_first

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.dim() != 3:
            raise ValueError(f"LockedDropout expects a 3-D sequence, got shape {tuple(x.shape)}")
        shape = (x.shape[0], 1, x.shape[2]) if self.batch_first else (1, *x.shape[1:])
        return x * dropout_mask(shape, self.p, x)

    def extra_repr(self) -> str:
        return f"p={self.p}"
