"""Fused LSTM sequence: :func:`rnnkit.registry.lstm.lstm_step` over time with a hand-written backward.

Forward, per step: one GEMM (``G_t = gx_t + h W_hh^T + b_hh``) and in-place gate math. When
gradients are needed the gate activations are then turned, for all steps at once, into the
coefficients of the backward recurrence (``K = (tg*si', cp*sf', si*tg', tc*so')`` in place,
``A = so*tanh'``, ``F = sf [+ peepholes]``), so the backward loop is, per step::

    dG_o = K_o * dh;   dc' = dc_carry + A * dh   [LN_c backward];   dG_ifg = K_ifg * dc'
    dc_prev = F * dc';   dh_prev = dout + dG W_hh   (one GEMM)

and the weight gradients are single GEMMs over all steps (``dW_hh = dG^T [h_prev]``).
Shapes: ``gx (T, N, 4H)``, ``h0 (N, R)``, ``c0 (N, H)``, ``w (4H, R)``, ``w_hr (R, H)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..gemm import Gemm, outer_sum
from ..sequence import Aux, stack_visited, sum_leading
from .common import (
    at,
    blend_,
    carry_back,
    complement,
    gate_scale,
    ln_backward,
    ln_forward,
    ln_param_grads,
    load_named,
    per_step,
    recurrent_param_grads,
    save_named,
)

_sig_bwd = torch.ops.aten.sigmoid_backward
_tanh_bwd = torch.ops.aten.tanh_backward


@dataclass
class _Kept:
    """Per-step tensors the forward keeps for backward, in visiting order: the gate activations,
    ``c`` before the step, ``tanh(c')`` (of ``LN(c')``), ``c'`` (peepholes, LN of c), ``h'`` before
    the projection, the recurrent GEMM output (LN) and the row statistics ``mean, rstd`` of the
    recurrent LN and of the LN of ``c``, interleaved."""

    gates: list[Tensor] = field(default_factory=list)
    c_prev: list[Tensor] = field(default_factory=list)
    tanh_c: list[Tensor] = field(default_factory=list)
    c_new: list[Tensor] = field(default_factory=list)
    h_unprojected: list[Tensor] = field(default_factory=list)
    rec_pre: list[Tensor] = field(default_factory=list)
    ln_stats: list[Tensor] = field(default_factory=list)
    lnc_stats: list[Tensor] = field(default_factory=list)


class LSTMInputs(NamedTuple):
    """The differentiable inputs of :class:`LSTMSequence`, in ``apply`` order after ``aux``; also the
    names of ``ctx.needs_input_grad`` in backward."""

    gx: Tensor
    h0: Tensor
    c0: Tensor
    w: Tensor
    b_hh: Tensor | None
    w_hr: Tensor | None
    ln_hh: Tensor | None
    ln_cw: Tensor | None
    ln_cb: Tensor | None
    peep: Tensor | None


def lstm_forward(
    aux: Aux,
    gx: Tensor,
    h0: Tensor,
    c0: Tensor,
    w: Tensor,
    b_hh: Tensor | None,
    w_hr: Tensor | None,
    ln_hh: Tensor | None,
    ln_cw: Tensor | None,
    ln_cb: Tensor | None,
    peep: Tensor | None,
    save: bool,
) -> tuple[Tensor, Tensor, dict[str, object]]:
    """Run the sequence; returns ``(h states (T, N, R), final c (N, H), saved)``."""
    seq, mask, kh, kc = aux.seq, aux.mask, aux.keep_h, aux.keep_c
    steps, n, g4 = gx.shape
    hid = g4 // 4
    ln_c = ln_cw is not None or ln_cb is not None
    # the g rows enter doubled (W_g, b_g, gx_g added twice): one sigmoid covers the four gates and
    # tanh(g) = 2 sigmoid(2g) - 1
    scale = gate_scale(gx, 4, hid, doubled=2)
    bias = None if b_hh is None else b_hh * scale
    if ln_hh is None:
        gemm = Gemm(w * scale[:, None], n)
    else:
        gemm, ln_w = Gemm(w, n), ln_hh * scale
    proj = None if w_hr is None else Gemm(w_hr, n)
    hs = gx.new_empty(steps, n, h0.shape[-1])
    keep = _Kept()
    # per-step views prepared once: the loop below is the hot path (a few us per torch call)
    gxs, gxg, hss = gx.unbind(0), gx[:, :, 2 * hid : 3 * hid].unbind(0), hs.unbind(0)
    khs, kcs = per_step(kh, steps), per_step(kc, steps)
    plain_out = proj is None and kh is None
    h, c = h0, c0
    for t in seq.order():
        hm = h if mask is None else h * mask
        if ln_hh is None:
            g = gemm(hm, add=gxs[t], bias=bias)
        else:
            a = gemm(hm)
            g, mu, rs = ln_forward(a, ln_w, bias)
            g.add_(gxs[t])
            if save:
                keep.rec_pre.append(a)
                keep.ln_stats += [mu, rs]
        g[:, 2 * hid : 3 * hid].add_(gxg[t])
        if peep is None:
            torch.sigmoid_(g)
            si, sf, sg, so = g.view(n, 4, hid).unbind(1)
        else:
            g.view(n, 4, hid)[:, :2].addcmul_(c.unsqueeze(1), peep[:2])
            torch.sigmoid_(g[:, : 3 * hid])
            si, sf, sg, so = g.view(n, 4, hid).unbind(1)
        # c' = f c + i tanh(g) with tanh(g) = 2 sg - 1
        cn = torch.addcmul(torch.mul(sf, c).sub_(si), si, sg, value=2.0)
        if peep is not None:
            torch.sigmoid_(so.addcmul_(cn, peep[2]))
        if ln_c:
            normed_c, mu_c, rs_c = ln_forward(cn, ln_cw, ln_cb)
            tc = torch.tanh(normed_c)
            if save:
                keep.lnc_stats += [mu_c, rs_c]
        else:
            tc = torch.tanh(cn)
        if save:
            keep.gates.append(g)
            keep.c_prev.append(c)
            keep.tanh_c.append(tc)
            if peep is not None or ln_c:
                keep.c_new.append(cn)
        c = cn if kc is None else torch.lerp(cn, c, kcs[t])
        if plain_out:
            h = torch.mul(so, tc, out=hss[t])
            continue
        h_new = so * tc
        if proj is not None:
            if save:
                keep.h_unprojected.append(h_new)
            h_new = proj(h_new)
        h = blend_(hss[t], h_new, h, khs[t])
    saved: dict[str, object] = {}
    if save:

        def stacked(items: list[Tensor]) -> Tensor | None:
            return stack_visited(items, seq) if items else None

        saved = _backward_coefficients(
            stacked(keep.gates), stacked(keep.tanh_c), stacked(keep.c_prev), peep, ln_c
        )
        saved.update(hs=hs, hh=stacked(keep.h_unprojected), c_new=stacked(keep.c_new))
        if ln_hh is not None:
            stats = (stack_visited(keep.ln_stats[i::2], seq) for i in (0, 1))
            saved["ln"] = (stacked(keep.rec_pre), *stats)
        if ln_c:
            saved["lnc"] = tuple(stack_visited(keep.lnc_stats[i::2], seq) for i in (0, 1))
    return hs, c, saved


def _backward_coefficients(
    gates: Tensor, tc: Tensor, cp: Tensor, peep: Tensor | None, ln_c: bool
) -> dict[str, object]:
    """Turn the gate activations into the backward coefficients, in place, for all steps at once."""
    steps, n, g4 = gates.shape
    k = gates.view(steps, n, 4, g4 // 4)
    si, sf, tg, so = k.unbind(2)
    tg.mul_(2.0).sub_(1.0)  # the forward kept sigmoid(2g)
    dc_from_h = _tanh_bwd(so, tc)  # d c_out / d h = so * (1 - tc^2)
    torch.ops.aten.sigmoid_backward.grad_input(tc, so, grad_input=so)  # K_o = tc * so'
    ki, kg, kf = _sig_bwd(tg, si), _tanh_bwd(si, tg), _sig_bwd(cp, sf)
    forget = sf.clone()
    if peep is not None:
        forget.addcmul_(ki, peep[0]).addcmul_(kf, peep[1])
        if not ln_c:
            dc_from_h.addcmul_(so, peep[2])  # the o-gate peephole reads c' directly
    si.copy_(ki), sf.copy_(kf), tg.copy_(kg)
    return {
        "k": k,
        "dc_from_h": dc_from_h,
        "forget": forget,
        "cp": cp if peep is not None else None,
    }


class LSTMSequence(torch.autograd.Function):
    """``(gx, h0, c0, w, b_hh, w_hr, ln_hh, ln_cw, ln_cb, peep) -> (outputs, h_n, c_n)``."""

    @staticmethod
    def forward(ctx, aux: Aux, gx, h0, c0, w, b_hh, w_hr, ln_hh, ln_cw, ln_cb, peep):  # noqa: D102
        hs, c_n, saved = lstm_forward(
            aux, gx, h0, c0, w, b_hh, w_hr, ln_hh, ln_cw, ln_cb, peep, save=True
        )
        ctx.aux, ctx.hidden = aux, c_n.shape[-1]
        save_named(ctx, (h0, w, w_hr, ln_hh, ln_cw, ln_cb, peep), saved)
        return aux.seq.outputs(hs), aux.seq.last(hs), c_n

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_hn, d_cn):  # noqa: D102
        (h0, w, w_hr, ln_hh, ln_cw, ln_cb, peep), sv = load_named(ctx)
        aux, hid = ctx.aux, ctx.hidden
        seq, mask, kh, kc = aux.seq, aux.mask, aux.keep_h, aux.keep_c
        k, dc_from_h, forget = sv["k"], sv["dc_from_h"], sv["forget"]
        steps, n = k.shape[:2]
        ln, lnc = sv.get("ln"), sv.get("lnc")
        c_new = sv["c_new"]
        d_out = seq.outputs(d_out)
        dk = torch.empty_like(k)  # (T, N, 4, H): gradients of the gate pre-activations
        dh_new_all = torch.empty_like(d_out) if w_hr is not None else None
        dcl_all = torch.empty_like(dc_from_h) if lnc is not None else None
        d_pre: list[Tensor] = []
        om_kh, om_kc = complement(kh), complement(kc)
        gemm_t = Gemm(w.t(), n)
        proj_t = None if w_hr is None else Gemm(w_hr.t(), n)
        order = seq.backward_order()
        dh = d_out[order[0]] + d_hn
        dc = d_cn
        for j, t in enumerate(order):
            dh_new = dh if kh is None else dh * at(om_kh, t)
            if w_hr is not None:
                dh_new_all[t] = dh_new
                dh_new = proj_t(dh_new)
            dg = dk[t]
            torch.mul(k[t, :, 3], dh_new, out=dg[:, 3])
            dc_in = dc if kc is None else dc * at(om_kc, t)
            if lnc is None:
                dcn = torch.addcmul(dc_in, dh_new, dc_from_h[t])
            else:
                dcl = torch.mul(dh_new, dc_from_h[t], out=dcl_all[t])
                dcn = ln_backward(dcl, c_new[t], lnc[0][t], lnc[1][t], ln_cw).add_(dc_in)
                if peep is not None:
                    dcn.addcmul_(dg[:, 3], peep[2])
            torch.mul(k[t, :, :3], dcn.unsqueeze(1), out=dg[:, :3])
            dc_prev = dcn * forget[t]
            if isinstance(kc, Tensor):
                dc_prev.addcmul_(dc, kc[t])
            elif kc is not None:
                dc_prev.add_(dc, alpha=kc)
            dc = dc_prev
            da = dg.view(n, 4 * hid)
            if ln is not None:
                da = ln_backward(da, ln[0][t], ln[1][t], ln[2][t], ln_hh)
                d_pre.append(da)
            base = d_out[order[j + 1]] if j + 1 < steps else None
            dh = carry_back(base, dh, at(kh, t), da, gemm_t, mask)
        return _lstm_grads(ctx, seq, sv, dk, d_pre, dh, dc, dh_new_all, dcl_all, h0, mask)


def _lstm_grads(ctx, seq, sv, dk, d_pre, dh0, dc0, dh_new_all, dcl_all, h0, mask):
    """Gradients of every input of :class:`LSTMSequence`, the weights' as GEMMs over all steps."""
    steps, n, _, hid = dk.shape
    need = LSTMInputs(*ctx.needs_input_grad[1:])
    dgates = dk.view(steps, n, 4 * hid)
    ln, lnc = sv.get("ln"), sv.get("lnc")
    dpre = dgates if ln is None else stack_visited(d_pre, seq, backward=True)
    h_before = seq.before(sv["hs"], h0) if need.w else None
    dw, db, dln = recurrent_param_grads(
        (need.w, need.b_hh, need.ln_hh), dpre, dgates, h_before, mask, ln
    )
    dw_hr = outer_sum(dh_new_all, sv["hh"]) if need.w_hr else None
    dln_cw = dln_cb = dpeep = None
    if lnc is not None:
        dln_cw = ln_param_grads(dcl_all, sv["c_new"], *lnc, need=need.ln_cw)
        dln_cb = sum_leading(dcl_all) if need.ln_cb else None
    if need.peep:
        cp, c_new = sv["cp"], sv["c_new"]
        dpeep = torch.stack([sum_leading(dk[:, :, 0] * cp), sum_leading(dk[:, :, 1] * cp),
                             sum_leading(dk[:, :, 3] * c_new)])  # fmt: skip
    return (None, dgates if need.gx else None, dh0, dc0, dw, db, dw_hr, dln, dln_cw, dln_cb, dpeep)
