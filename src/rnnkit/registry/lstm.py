"""LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000), torch's form.

Gates ``(i, f, g, o)`` in torch's order; state ``(h, c)``: ``h (N, R)`` with ``R = proj_size or H``,
``c (N, H)``. Options beyond the common ones: peepholes (Gers & Schmidhuber 2000), the forget-gate
bias at initialisation, zoneout of ``c`` with its own rate, and the layer norm of ``c`` before the
output ``tanh`` (Ba, Kiros & Hinton 2016, eq. 20-22). Parameters the options add:
``layer_norm_ih``/``layer_norm_hh`` ``(4H,)``, ``layer_norm_c_weight``/``layer_norm_c_bias``
``(H,)``, ``peephole (3, H)`` (rows i, f, o).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..functional import CellParams, layer_norm, recurrent_projection
from .spec import CellSpec, StateSpec, layer_norm_gains, register_cell


def lstm_step(
    gx: Tensor,
    h: Tensor,
    c: Tensor,
    p: CellParams,
    w_hh: Tensor | None = None,
    dropout_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step. ``gx (N, 4H)`` is ``input_projection(x_t)``; ``h (N, R)``, ``c (N, H)``.
    Returns ``(h', c')``::

        i, f, g, o = split(gx + LN(h W_hh^T) + b_hh)
        i = sigmoid(i + P_i * c), f = sigmoid(f + P_f * c)      # peepholes (Gers & Schmidhuber 2000)
        c' = f * c + i * tanh(g)
        o = sigmoid(o + P_o * c')
        h' = o * tanh(LN(c'; ln_c)) [W_hr^T]                    # projection (Sak et al. 2014)
    """
    gates = gx + recurrent_projection(h, p, w_hh, dropout_mask)
    i, f, g, o = gates.chunk(4, dim=-1)
    if p.peephole is not None:
        i = i + p.peephole[0] * c
        f = f + p.peephole[1] * c
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    if p.peephole is not None:
        o = o + p.peephole[2] * c_new
    c_out = c_new if p.ln_c_weight is None else layer_norm(c_new, p.ln_c_weight, p.ln_c_bias)
    h_new = torch.sigmoid(o) * torch.tanh(c_out)
    if p.w_hr is not None:
        h_new = F.linear(h_new, p.w_hr)
    return h_new, c_new


def _step(gx, state, p, w_hh=None, dropout_mask=None):
    return lstm_step(gx, state[0], state[1], p, w_hh, dropout_mask)


def _parameters(hidden: int, variants) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    if variants.layer_norm:
        shapes.update(layer_norm_gains(4, hidden))
        shapes["layer_norm_c_weight"] = shapes["layer_norm_c_bias"] = (hidden,)
    if variants.peephole:
        shapes["peephole"] = (3, hidden)
    return shapes


LSTM = register_cell(
    CellSpec(
        name="lstm",
        title="LSTM",
        torch_mode="LSTM",
        gates=("i", "f", "g", "o"),
        states=(StateSpec("h", "output", zoneout="h"), StateSpec("c", "hidden", zoneout="c")),
        step=_step,
        parameters=_parameters,
        layer="LSTM",
        cell="LSTMCell",
        kernel="lstm",
        options=frozenset({"peephole", "forget_bias"}),
        backends=("native", "cpu_kernels", "torch_ops", "reference"),
        onnx_op="LSTM",
        paper="Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000",
    )
)
