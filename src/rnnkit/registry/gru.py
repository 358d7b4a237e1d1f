"""GRU (Cho et al. 2014) in torch's form, the reset gate applied after the recurrent GEMM.

Gates ``(r, z, n)`` in torch's order; state ``(h,)``, ``h (N, H)``. Parameters the options add:
``layer_norm_ih``/``layer_norm_hh`` ``(3H,)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..functional import CellParams, recurrent_projection
from .spec import CellSpec, StateSpec, layer_norm_parameters, register_cell


def gru_step(
    gx: Tensor,
    h: Tensor,
    p: CellParams,
    w_hh: Tensor | None = None,
    dropout_mask: Tensor | None = None,
) -> Tensor:
    """One GRU step; ``gx (N, 3H)``, ``h (N, H)``::

        r = sigmoid(gx_r + gh_r), z = sigmoid(gx_z + gh_z)
        n = tanh(gx_n + r * gh_n),  h' = (1 - z) * n + z * h

    with ``gh = LN(h W_hh^T; ln_hh) + b_hh``.
    """
    gh = recurrent_projection(h, p, w_hh, dropout_mask)
    xr, xz, xn = gx.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return n + z * (h - n)


def _step(gx, state, p, w_hh=None, dropout_mask=None):
    return (gru_step(gx, state[0], p, w_hh, dropout_mask),)


GRU = register_cell(
    CellSpec(
        name="gru",
        title="GRU",
        torch_mode="GRU",
        gates=("r", "z", "n"),
        states=(StateSpec("h", "output", zoneout="h"),),
        step=_step,
        parameters=layer_norm_parameters(3),
        layer="GRU",
        cell="GRUCell",
        kernel="gru",
        backends=("native", "cpu_kernels", "torch_ops", "reference"),
        onnx_op="GRU",
        onnx_attributes=(("linear_before_reset", 1),),
        paper="Cho et al. 2014",
    )
)
