"""Time bookkeeping shared by the fused backends (:mod:`.torch_ops`, :mod:`.cpu_kernels`).

The fused kernels write the carried state of step ``t`` into ``S[t]`` of a ``(T, N, .)`` buffer
(frozen at padded steps), so the state *before* step ``t`` is ``S[t - 1]`` (``S[t + 1]`` when
reversed) or the initial state. Zoneout and ``lengths`` are both folded into one blend per step::

    s_t = lerp(s_new, s_prev, k_t)        # = s_new + k_t * (s_prev - s_new)

with ``k_t`` the zoneout keep mask (training), the zoneout rate (evaluation) or ``1`` at a padded
step (``lerp`` with weight 1 returns ``s_prev`` exactly), which is :func:`rnnkit.functional.zoneout`
followed by the ``torch.where`` of the reference loop (:func:`rnnkit.backends.reference.scan`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .cpu_kernels.library import BernoulliDraws

# per-step lerp weights: a (T, N, C) or (T, N, 1) tensor, draws the C kernels make (zoneout masks
# described by their seed), a float, or none
Keep = Tensor | BernoulliDraws | float | None


@dataclass(frozen=True)
class Seq:
    """Time bookkeeping of one direction: ``steps``, ``reverse``, ``valid (T, N, 1)`` or None."""

    steps: int
    reverse: bool
    valid: Tensor | None = None

    def order(self) -> range:
        """Time indices in the order the recurrence visits them."""
        return range(self.steps - 1, -1, -1) if self.reverse else range(self.steps)

    def backward_order(self) -> range:
        return range(self.steps) if self.reverse else range(self.steps - 1, -1, -1)

    def prev(self, buf: Tensor, t: int, initial: Tensor) -> Tensor:
        """The state before step ``t``: ``buf[t -/+ 1]``, or ``initial`` at the first step."""
        if self.reverse:
            return initial if t == self.steps - 1 else buf[t + 1]
        return initial if t == 0 else buf[t - 1]

    def before(self, buf: Tensor, initial: Tensor) -> Tensor:
        """``(T, N, C)`` stack of the states before each step, aligned with ``buf``."""
        if self.reverse:
            return torch.cat([buf[1:], initial.unsqueeze(0)])
        return torch.cat([initial.unsqueeze(0), buf[:-1]])

    def last(self, buf: Tensor) -> Tensor:
        """The final state (after the last visited step), as a new tensor."""
        return (buf[0] if self.reverse else buf[-1]).clone()

    def outputs(self, buf: Tensor) -> Tensor:
        """The layer output: the states, zero at padded steps."""
        return buf if self.valid is None else torch.where(self.valid, buf, 0.0)


def keep_weights(zone: Tensor | BernoulliDraws | float, valid: Tensor | None, like: Tensor) -> Keep:
    """Per-step lerp weights from a zoneout mask ``(T, N, C)`` (a tensor, or draws the C kernels
    make: drawn here when ``lengths`` blends into them) or rate, and ``valid (T, N, 1)``."""
    if isinstance(zone, BernoulliDraws):
        if valid is None:
            return zone
        zone = zone.tensor(like)
    if isinstance(zone, Tensor):
        k: Tensor | float | None = zone
    else:
        k = float(zone) if zone else None
    if valid is None:
        return k
    if k is None:
        k = 0.0
    return torch.where(valid, k if isinstance(k, Tensor) else like.new_tensor(k), 1.0).to(
        like.dtype
    )


@dataclass(frozen=True)
class Aux:
    """The non-differentiable inputs of a fused sequence: time bookkeeping, the recurrent dropout
    mask ``(N, R)``, the lerp weights of ``h`` and ``c`` (module docstring), the RNN activation."""

    seq: Seq
    mask: Tensor | None = None
    keep_h: Keep = None
    keep_c: Keep = None
    nonlinearity: str = "tanh"


def direction_aux(
    like: Tensor,
    *,
    lengths: Tensor | None = None,
    reverse: bool = False,
    mask: Tensor | None = None,
    zoneout_h: Tensor | BernoulliDraws | float = 0.0,
    zoneout_c: Tensor | BernoulliDraws | float | None = None,
    nonlinearity: str = "tanh",
) -> Aux:
    """The :class:`Aux` of one direction over ``like (T, N, .)``: ``lengths (N,)``, the recurrent
    dropout mask ``(N, R)``, the zoneout masks ``(T, N, .)`` or rates of ``h`` and of ``c``
    (``zoneout_c`` None: the cell has no ``c``)."""
    valid = None
    if lengths is not None:
        steps = torch.arange(like.shape[0], device=like.device)
        valid = (steps[:, None] < lengths.to(like.device)).unsqueeze(-1)  # (T, N, 1)
    keep_c = None if zoneout_c is None else keep_weights(zoneout_c, valid, like)
    return Aux(Seq(like.shape[0], reverse, valid), mask, keep_weights(zoneout_h, valid, like),
               keep_c, nonlinearity)  # fmt: skip


def stack_visited(items: list[Tensor], seq: Seq, backward: bool = False) -> Tensor:
    """Stack per-step tensors collected in visiting order into time order ``(T, ...)``."""
    forward_in_time = seq.reverse == backward
    return torch.stack(items if forward_in_time else items[::-1])


def recurrent_input(h: Tensor, mask: Tensor | None) -> Tensor:
    """The input of the recurrent GEMM: ``h * mask`` (recurrent dropout) or ``h``."""
    return h if mask is None else h * mask


def sum_leading(x: Tensor) -> Tensor:
    return x.sum(dim=tuple(range(x.dim() - 1)))


def visiting_steps(seq: Seq) -> tuple[list[int], list[int]]:
    """The steps in the order a direction visits them and, for each, the step before it (-1: the
    initial state)."""
    order = list(seq.order())
    return order, [-1, *order[:-1]]
