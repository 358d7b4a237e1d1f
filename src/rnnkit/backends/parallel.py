"""The parallel backend: a whole direction of a layer at once, through the cell's sequence
function (:attr:`rnnkit.registry.CellSpec.sequence`), for cells whose recurrence is linear in the
state (minGRU, minLSTM: the log-space scan of :mod:`rnnkit.parallel_scan`). The contract of
:func:`rnnkit.backends.reference.scan`; it takes no stochastic step options (the cells it serves
refuse them), and autograd differentiates it.
"""

from __future__ import annotations

from torch import Tensor

from ..functional import CellParams, StepOptions
from ..registry import CellSpec
from .cpu_kernels import minrnn


def refusal(spec: CellSpec, options: StepOptions | None) -> str | None:
    """Why this backend cannot run a direction of ``spec`` with ``options``, or None."""
    if spec.sequence is None:
        return f"{spec.title} has no whole-sequence form"
    opts = options or StepOptions()
    stochastic = (opts.dropout_mask, opts.w_hh)
    if any(t is not None for t in stochastic) or _zoned(opts.zoneout_h) or _zoned(opts.zoneout_c):
        return "it runs no recurrent dropout, DropConnect or zoneout"
    return None


def _zoned(z: Tensor | float) -> bool:
    return isinstance(z, Tensor) or z != 0.0


def scan(
    spec: CellSpec,
    gx: Tensor,
    state: tuple[Tensor, ...],
    p: CellParams,
    *,
    lengths: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One direction from the input projections ``gx (T, N, G*H)``: ``(outputs (T, N, H), final
    state)``; ``lengths (N,)`` and ``reverse`` as :func:`rnnkit.backends.reference.scan`."""
    if spec.name in minrnn.CELLS:  # the C kernels where they serve the call, else torch ops
        fused = minrnn.fused_scan(spec.name)
        return spec.sequence(gx, state, p, lengths=lengths, reverse=reverse, fused=fused)
    return spec.sequence(gx, state, p, lengths=lengths, reverse=reverse)
