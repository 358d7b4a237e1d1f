"""The math of rnnkit's recurrent cells, as pure functions on tensors.

Gate order is torch's everywhere in rnnkit: LSTM ``(i, f, g, o)``, GRU ``(r, z, n)``, so that weights
interoperate with ``torch.nn``. Every layer, cell, fused path and decoder computes with these functions
or is tested against them.

A step is split in two so that the input half can be computed for all time steps with one GEMM:

* ``input_projection(x, params)``: ``LN(x W_ih^T; gamma_ih) + b_ih`` for ``x`` of shape ``(..., D)``;
* ``lstm_step`` / ``gru_step`` / ``rnn_step``: the recurrence given that projection for one step.

Layer normalisation follows Ba, Kiros & Hinton 2016, "Layer Normalization", eq. (20)-(22): the input and
the recurrent pre-activations are normalised separately over the whole gate vector (``G*H`` features)
with their own gains (the biases ``b_ih``, ``b_hh`` play the role of the shifts), and for the LSTM the
cell state is normalised (gain and shift) before the output ``tanh``; the carried ``c`` is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

LN_EPS = 1e-5


@dataclass(frozen=True)
class CellParams:
    """The parameters of one direction of one layer.

    Shapes, for ``G`` gates (LSTM 4, GRU 3, RNN 1), hidden size ``H``, input size ``D`` and recurrent
    size ``R`` (``H``, or ``proj_size`` for a projected LSTM):
    ``w_ih (G*H, D)``, ``w_hh (G*H, R)``, ``b_ih``/``b_hh (G*H,)`` or None, ``w_hr (R, H)`` or None,
    ``ln_ih``/``ln_hh (G*H,)`` layer-norm gains or None, ``ln_c_weight``/``ln_c_bias (H,)`` or None,
    ``peephole (3, H)`` (rows i, f, o) or None.
    """

    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None = None
    b_hh: Tensor | None = None
    w_hr: Tensor | None = None
    ln_ih: Tensor | None = None
    ln_hh: Tensor | None = None
    ln_c_weight: Tensor | None = None
    ln_c_bias: Tensor | None = None
    peephole: Tensor | None = None


def layer_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None = None) -> Tensor:
    """``weight * (x - mean) / sqrt(var + eps) + bias`` over the last dimension (biased variance)."""
    return F.layer_norm(x, (x.shape[-1],), weight, bias, LN_EPS)


def input_projection(x: Tensor, p: CellParams) -> Tensor:
    """``LN(x W_ih^T; ln_ih) + b_ih``: ``(..., D) -> (..., G*H)``; one GEMM for every step at once."""
    if p.ln_ih is None:
        return F.linear(x, p.w_ih, p.b_ih)
    out = layer_norm(F.linear(x, p.w_ih), p.ln_ih)
    return out if p.b_ih is None else out + p.b_ih


def recurrent_projection(
    h: Tensor, p: CellParams, w_hh: Tensor | None = None, dropout_mask: Tensor | None = None
) -> Tensor:
    """``LN((h * mask) W_hh^T; ln_hh) + b_hh``: ``(N, R) -> (N, G*H)``.

    ``w_hh`` overrides ``p.w_hh`` (DropConnect passes the dropped matrix); ``dropout_mask (N, R)`` is the
    recurrent dropout mask, applied to the GEMM's input only (the carried state is not masked).
    """
    w = p.w_hh if w_hh is None else w_hh
    if dropout_mask is not None:
        h = h * dropout_mask
    if p.ln_hh is None:
        return F.linear(h, w, p.b_hh)
    out = layer_norm(F.linear(h, w), p.ln_hh)
    return out if p.b_hh is None else out + p.b_hh


def lstm_step(
    gx: Tensor,
    h: Tensor,
    c: Tensor,
    p: CellParams,
    w_hh: Tensor | None = None,
    dropout_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

    ``gx (N, 4H)`` is ``input_projection(x_t)``; ``h (N, R)``, ``c (N, H)``. Returns ``(h', c')``::

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


def gru_step(
    gx: Tensor,
    h: Tensor,
    p: CellParams,
    w_hh: Tensor | None = None,
    dropout_mask: Tensor | None = None,
) -> Tensor:
    """One GRU step (Cho et al. 2014) in torch's form (reset applied after the recurrent GEMM)::

        r = sigmoid(gx_r + gh_r), z = sigmoid(gx_z + gh_z)
        n = tanh(gx_n + r * gh_n),  h' = (1 - z) * n + z * h

    with ``gh = LN(h W_hh^T; ln_hh) + b_hh``; ``gx (N, 3H)``, ``h (N, H)``.
    """
    gh = recurrent_projection(h, p, w_hh, dropout_mask)
    xr, xz, xn = gx.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return n + z * (h - n)


def rnn_step(
    gx: Tensor,
    h: Tensor,
    p: CellParams,
    nonlinearity: str = "tanh",
    w_hh: Tensor | None = None,
    dropout_mask: Tensor | None = None,
) -> Tensor:
    """One Elman RNN step: ``h' = act(gx + LN(h W_hh^T; ln_hh) + b_hh)``, act ``tanh`` or ``relu``."""
    pre = gx + recurrent_projection(h, p, w_hh, dropout_mask)
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def zoneout(prev: Tensor, new: Tensor, keep: Tensor | float) -> Tensor:
    """Zoneout (Krueger et al. 2017): ``keep * prev + (1 - keep) * new``.

    In training ``keep`` is a Bernoulli(rate) mask (1 keeps the previous value); in evaluation it is the
    rate itself, the mask's expectation.
    """
    return new + keep * (prev - new)


# --------------------------------------------------------------------------------------------------
# Sequence loop over one direction of one layer.


@dataclass(frozen=True)
class StepOptions:
    """Per-direction stochastic inputs of the time loop (all optional).

    ``dropout_mask (N, R)``: recurrent dropout mask, already scaled by ``1/(1-p)`` (Gal & Ghahramani 2016);
    ``w_hh``: the DropConnected recurrent matrix (Merity et al. 2017);
    ``zoneout_h``/``zoneout_c``: ``(T, N, .)`` masks in training or floats (rates) in evaluation.
    """

    dropout_mask: Tensor | None = None
    w_hh: Tensor | None = None
    zoneout_h: Tensor | float = 0.0
    zoneout_c: Tensor | float = 0.0


def _zoneout_at(z: Tensor | float, t: int) -> Tensor | float:
    return z[t] if isinstance(z, Tensor) else z


def scan(
    mode: str,
    gx: Tensor,
    state: tuple[Tensor, ...],
    p: CellParams,
    *,
    lengths: Tensor | None = None,
    reverse: bool = False,
    options: StepOptions | None = None,
    nonlinearity: str = "tanh",
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run one direction of one layer over time.

    ``mode`` is ``"LSTM"``, ``"GRU"`` or ``"RNN"``; ``gx (T, N, G*H)`` the input projections;
    ``state`` ``(h0,)`` or ``(h0, c0)`` with ``h0 (N, R)``, ``c0 (N, H)``. With ``lengths (N,)`` a sequence's
    steps ``t >= lengths[n]`` leave its state unchanged and output zeros, and ``reverse=True`` starts each
    sequence at its own last valid step. Returns ``(outputs (T, N, R), final state)``.
    """
    opts = options or StepOptions()
    steps = range(gx.shape[0] - 1, -1, -1) if reverse else range(gx.shape[0])
    valid = (
        None if lengths is None else torch.arange(gx.shape[0], device=gx.device)[:, None] < lengths
    )
    outputs: list[Tensor] = [gx.new_empty(0)] * gx.shape[0]
    h = state[0]
    c = state[1] if mode == "LSTM" else None
    for t in steps:
        mask = opts.dropout_mask
        if mode == "LSTM":
            h_new, c_new = lstm_step(gx[t], h, c, p, opts.w_hh, mask)
        elif mode == "GRU":
            h_new = gru_step(gx[t], h, p, opts.w_hh, mask)
        else:
            h_new = rnn_step(gx[t], h, p, nonlinearity, opts.w_hh, mask)
        h_new = zoneout(h, h_new, _zoneout_at(opts.zoneout_h, t))
        if c is not None:
            c_new = zoneout(c, c_new, _zoneout_at(opts.zoneout_c, t))
        if valid is None:
            h, outputs[t] = h_new, h_new
            if c is not None:
                c = c_new
        else:
            m = valid[t].unsqueeze(1)
            h = torch.where(m, h_new, h)
            outputs[t] = torch.where(m, h_new, torch.zeros_like(h_new))
            if c is not None:
                c = torch.where(m, c_new, c)
    final = (h,) if c is None else (h, c)
    return torch.stack(outputs), final
