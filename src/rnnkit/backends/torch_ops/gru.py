"""Fused GRU and Elman RNN sequences: :func:`rnnkit.registry.gru.gru_step` / ``rnn_step`` over time
with a hand-written backward (the design of :mod:`rnnkit.backends.torch_ops.lstm`).

GRU, per step forward: ``gh = h W_hh^T + b_hh`` [or LN], then in place on the ``(T, N, 3H)`` buffer
``r, z = sigmoid(gx + gh)``, ``n = tanh(gx_n + r * gh_n)``, ``h' = lerp(n, h, z)``. The backward
coefficients of ``dgh = dh' * (K_r, K_z, K_n * r)`` are computed for all steps at once, so a
backward step is one multiply and one GEMM (``dh_prev = dout + dh' z + dgh W_hh``).
Shapes: ``gx (T, N, G*H)``, ``h0 (N, H)``, ``w (G*H, H)`` with ``G`` = 3 (GRU) or 1 (RNN).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..gemm import Gemm
from ..sequence import Aux, recurrent_input, stack_visited
from .common import (
    at,
    blend_,
    carry_back,
    complement,
    gate_scale,
    ln_backward,
    ln_forward,
    load_named,
    recurrent_param_grads,
    save_named,
)


class GRUInputs(NamedTuple):
    """The differentiable inputs of :class:`GRUSequence` and :class:`RNNSequence`, in ``apply``
    order after ``aux``; also the names of ``ctx.needs_input_grad`` in backward."""

    gx: Tensor
    h0: Tensor
    w: Tensor
    b_hh: Tensor | None
    ln_hh: Tensor | None


_sig_bwd = torch.ops.aten.sigmoid_backward
_tanh_bwd = torch.ops.aten.tanh_backward


def _recurrent(
    gemm: Gemm,
    hm: Tensor,
    bias: Tensor | None,
    ln: tuple[Tensor, Tensor | None] | None,
    pres: list[Tensor] | None,
) -> Tensor:
    """``LN(hm W_hh^T; ln_hh) + b_hh`` of one step; ``ln`` is ``(gain, bias)``, ``bias`` is used
    without layer norm; with ``pres`` the pre-norm GEMM output and the statistics are collected."""
    if ln is None:
        return gemm(hm, bias=bias)
    a = gemm(hm)
    normed, mu, rs = ln_forward(a, *ln)
    if pres is not None:
        pres += [a, mu, rs]
    return normed


def gru_forward(
    aux: Aux,
    gx: Tensor,
    h0: Tensor,
    w: Tensor,
    b_hh: Tensor | None,
    ln_hh: Tensor | None,
    save: bool,
) -> tuple[Tensor, dict[str, object]]:
    """Run the GRU sequence; returns ``(states (T, N, H), saved)``."""
    seq, mask, kh = aux.seq, aux.mask, aux.keep_h
    steps, n, g3 = gx.shape
    hid = g3 // 3
    # the n rows enter doubled: tanh(x) = 2 sigmoid(2x) - 1 (2 gx_n + r * 2 gh_n)
    scale = gate_scale(gx, 3, hid, doubled=2)
    bias = None if b_hh is None else b_hh * scale
    if ln_hh is None:
        gemm, ln = Gemm(w * scale[:, None], n), None
    else:
        gemm, ln = Gemm(w, n), (ln_hh * scale, bias)
    gates = gx * scale  # becomes r, z, n
    ghs: list[Tensor] = []
    pres: list[Tensor] | None = [] if save and ln is not None else None
    hs = gx.new_empty(steps, n, hid)
    for t in seq.order():
        hp = seq.prev(hs, t, h0)
        ght = _recurrent(gemm, recurrent_input(hp, mask), bias, ln, pres)
        g = gates[t]
        rz = g[:, : 2 * hid]
        torch.sigmoid_(rz.add_(ght[:, : 2 * hid]))
        r, z, nn = g.view(n, 3, hid).unbind(1)
        torch.sigmoid_(nn.addcmul_(r, ght[:, 2 * hid :])).mul_(2.0).sub_(1.0)
        if kh is None:
            torch.lerp(nn, hp, z, out=hs[t])
        else:
            blend_(hs[t], torch.lerp(nn, hp, z), hp, at(kh, t))
        if save:
            ghs.append(ght)
    saved: dict[str, object] = {}
    if save:
        if pres is not None:
            saved["ln"] = tuple(stack_visited(pres[i::3], seq) for i in range(3))
        r, z, nn = gates.view(steps, n, 3, hid).unbind(2)
        k = stack_visited(ghs, seq).view(steps, n, 3, hid)
        kn = _tanh_bwd(1.0 - z, nn)  # d n_pre / d h'
        kz = _sig_bwd(seq.before(hs, h0) - nn, z)
        k[:, :, 0] = kn * _sig_bwd(k[:, :, 2] * 0.5, r)  # d r_pre / d h' (gh_n entered doubled)
        k[:, :, 1] = kz
        torch.mul(kn, r, out=k[:, :, 2])
        saved.update(k=k, kn=kn, z=z.clone(), hs=hs)
    return hs, saved


class GRUSequence(torch.autograd.Function):
    """``(gx, h0, w, b_hh, ln_hh) -> (outputs, h_n)`` for the GRU."""

    @staticmethod
    def forward(ctx, aux: Aux, gx, h0, w, b_hh, ln_hh):  # noqa: D102
        hs, saved = gru_forward(aux, gx, h0, w, b_hh, ln_hh, save=True)
        ctx.aux = aux
        save_named(ctx, (h0, w, ln_hh), saved)
        return aux.seq.outputs(hs), aux.seq.last(hs)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_hn):  # noqa: D102
        (h0, w, ln_hh), sv = load_named(ctx)
        seq, mask, kh = ctx.aux.seq, ctx.aux.mask, ctx.aux.keep_h
        k, kn, z, ln = sv["k"], sv["kn"], sv["z"], sv.get("ln")
        steps, n, _, hid = k.shape
        d_out = seq.outputs(d_out)
        dk = torch.empty_like(k)
        dh_new_all = torch.empty_like(kn)
        d_pre: list[Tensor] = []
        om_kh = complement(kh)
        gemm_t = Gemm(w.t(), d_out.shape[1])
        order = seq.backward_order()
        dh = d_out[order[0]] + d_hn
        for j, t in enumerate(order):
            dh_new = dh_new_all[t].copy_(dh) if kh is None else torch.mul(
                dh, at(om_kh, t), out=dh_new_all[t])  # fmt: skip
            da = torch.mul(k[t], dh_new.unsqueeze(1), out=dk[t]).view(n, 3 * hid)
            if ln is not None:
                da = ln_backward(da, ln[0][t], ln[1][t], ln[2][t], ln_hh)
                d_pre.append(da)
            base = d_out[order[j + 1]] if j + 1 < steps else None
            base = dh_new * z[t] if base is None else torch.addcmul(base, dh_new, z[t])
            dh = carry_back(base, dh, at(kh, t), da, gemm_t, mask)
        need = GRUInputs(*ctx.needs_input_grad[1:])
        dgh = dk.view(steps, n, 3 * hid)
        dpre = dgh if ln is None else stack_visited(d_pre, seq, backward=True)
        h_before = seq.before(sv["hs"], h0) if need.w else None
        dw, db, dln = recurrent_param_grads(
            (need.w, need.b_hh, need.ln_hh), dpre, dgh, h_before, mask, ln
        )
        torch.mul(dh_new_all, kn, out=dk[:, :, 2])  # d gx = (dgh_r, dgh_z, dh' * K_n)
        return None, dgh if need.gx else None, dh, dw, db, dln


def rnn_forward(
    aux: Aux,
    gx: Tensor,
    h0: Tensor,
    w: Tensor,
    b_hh: Tensor | None,
    ln_hh: Tensor | None,
    save: bool,
) -> tuple[Tensor, dict[str, object]]:
    """Run the Elman RNN sequence; returns ``(states (T, N, H), saved)``."""
    seq, mask, kh = aux.seq, aux.mask, aux.keep_h
    act = torch.tanh_ if aux.nonlinearity == "tanh" else torch.relu_
    n = gx.shape[1]
    gemm = Gemm(w, n)
    ln = None if ln_hh is None else (ln_hh, b_hh)
    inp = gx + b_hh if ln is None and b_hh is not None else gx
    pres: list[Tensor] | None = [] if save and ln is not None else None
    hs = torch.empty_like(gx)
    news: list[Tensor] = []
    for t in seq.order():
        hp = seq.prev(hs, t, h0)
        hm = recurrent_input(hp, mask)
        if ln is None:
            h_new = act(gemm(hm, add=inp[t]))
        else:
            h_new = act(_recurrent(gemm, hm, None, ln, pres).add_(inp[t]))
        blend_(hs[t], h_new, hp, at(kh, t))
        if save and kh is not None:
            news.append(h_new)
    saved: dict[str, object] = {}
    if save:
        if pres is not None:
            saved["ln"] = tuple(stack_visited(pres[i::3], seq) for i in range(3))
        h_new = hs if kh is None else stack_visited(news, seq)
        if aux.nonlinearity == "tanh":
            k = _tanh_bwd(torch.ones_like(h_new), h_new)
        else:
            k = (h_new > 0).to(h_new.dtype)
        saved.update(k=k, hs=hs)
    return hs, saved


class RNNSequence(torch.autograd.Function):
    """``(gx, h0, w, b_hh, ln_hh) -> (outputs, h_n)`` for the Elman RNN."""

    @staticmethod
    def forward(ctx, aux: Aux, gx, h0, w, b_hh, ln_hh):  # noqa: D102
        hs, saved = rnn_forward(aux, gx, h0, w, b_hh, ln_hh, save=True)
        ctx.aux = aux
        save_named(ctx, (h0, w, ln_hh), saved)
        return aux.seq.outputs(hs), aux.seq.last(hs)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_hn):  # noqa: D102
        (h0, w, ln_hh), sv = load_named(ctx)
        seq, mask, kh = ctx.aux.seq, ctx.aux.mask, ctx.aux.keep_h
        k, ln = sv["k"], sv.get("ln")
        steps = k.shape[0]
        d_out = seq.outputs(d_out)
        dg = torch.empty_like(k)
        d_pre: list[Tensor] = []
        om_kh = complement(kh)
        gemm_t = Gemm(w.t(), d_out.shape[1])
        order = seq.backward_order()
        dh = d_out[order[0]] + d_hn
        for j, t in enumerate(order):
            dh_new = dh if kh is None else dh * at(om_kh, t)
            da = torch.mul(dh_new, k[t], out=dg[t])
            if ln is not None:
                da = ln_backward(da, ln[0][t], ln[1][t], ln[2][t], ln_hh)
                d_pre.append(da)
            base = d_out[order[j + 1]] if j + 1 < steps else None
            dh = carry_back(base, dh, at(kh, t), da, gemm_t, mask)
        need = GRUInputs(*ctx.needs_input_grad[1:])
        dpre = dg if ln is None else stack_visited(d_pre, seq, backward=True)
        h_before = seq.before(sv["hs"], h0) if need.w else None
        dw, db, dln = recurrent_param_grads(
            (need.w, need.b_hh, need.ln_hh), dpre, dg, h_before, mask, ln
        )
        return None, dg if need.gx else None, dh, dw, db, dln
