"""The reference backend: one runner that scans any registered cell over time, step by step, with
autograd through plain torch ops. It is the oracle of the fused backends' tests and the path of
``backend="reference"``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..functional import CellParams, StepOptions, input_projection, zoneout
from ..registry import CellSpec, get_cell


def scan(
    cell: str | CellSpec,
    gx: Tensor,
    state: tuple[Tensor, ...],
    p: CellParams,
    *,
    lengths: Tensor | None = None,
    reverse: bool = False,
    options: StepOptions | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run one direction of one layer over time.

    ``cell`` is a registered cell (name, torch mode or spec); ``gx (T, N, G*H)`` the input
    projections; ``state`` one tensor per state of the cell, ``(N, size)`` each (LSTM: ``h0 (N, R)``,
    ``c0 (N, H)``). With ``lengths (N,)`` a sequence's steps ``t >= lengths[n]`` leave its state
    unchanged and output zeros, and ``reverse=True`` starts each sequence at its own last valid
    step. Returns ``(outputs (T, N, R), final state)``.
    """
    spec = get_cell(cell)
    opts = options or StepOptions()
    steps = gx.shape[0]
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    valid = None if lengths is None else torch.arange(steps, device=gx.device)[:, None] < lengths
    # unbind, not gx[t]: the backward of T selects would write T full-size gradients (O(T^2))
    inputs = gx.unbind(0)
    zoneouts = [_per_step(opts.zoneout_for(s.zoneout)) for s in spec.states]
    outputs: list[Tensor] = [gx.new_empty(0)] * steps
    for t in order:
        new = spec.step(inputs[t], state, p, opts.w_hh, opts.dropout_mask)
        new = tuple(
            zoneout(old, nxt, z[t] if isinstance(z, tuple) else z) if _zoned(z) else nxt
            for old, nxt, z in zip(state, new, zoneouts)
        )
        if valid is None:
            state, outputs[t] = new, new[0]
        else:
            m = valid[t].unsqueeze(1)
            state = tuple(torch.where(m, nxt, old) for old, nxt in zip(state, new))
            outputs[t] = torch.where(m, new[0], torch.zeros_like(new[0]))
    return torch.stack(outputs), tuple(state)


def _zoned(z: tuple[Tensor, ...] | float) -> bool:
    return isinstance(z, tuple) or z != 0.0


def _per_step(z: Tensor | float) -> tuple[Tensor, ...] | float:
    """A ``(T, N, .)`` zoneout mask as its ``T`` steps (a rate stays a float)."""
    return z.unbind(0) if isinstance(z, Tensor) else z


def layer_direction(
    cell: str | CellSpec,
    x: Tensor,
    state: tuple[Tensor, ...],
    p: CellParams,
    **kw,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One direction of one layer from its input ``x (T, N, D)``: :func:`scan` of
    :func:`rnnkit.functional.input_projection`."""
    return scan(cell, input_projection(x, p), state, p, **kw)
