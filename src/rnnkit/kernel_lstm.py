"""LSTM sequence on rnnkit's C step kernels (:mod:`rnnkit.cpu_kernels`), CPU float32/float64.

Per step forward: one GEMM ``a = hm W_hh^T`` and one C call that does the rest of
:func:`rnnkit.functional.input_projection`'s layer norm, :func:`rnnkit.functional.lstm_step`,
zoneout and ``lengths`` (``lstm_fwd`` in ``csrc/lstm_template.h``). The input enters as the bare
GEMM ``gx = x W_ih^T`` (one GEMM for all steps, outside); its layer norm and both biases
(``bias = b_ih + b_hh``) are applied row by row inside the step kernel, which saves two passes
over the ``(T, N, 4H)`` projections. Backward, per step: one C call (``lstm_bwd``: the gate gradients ``dz``,
the layer-norm backward, the carried ``dh``/``dc``, the peephole and gain gradients) and one GEMM
``da W_hh``; the weight gradients are single GEMMs over all steps. Saved for backward: the gate
activations ``(T, N, 4H)``, the states ``(T, N, H)`` and, with layer norm, the normalised recurrent
pre-activations and the row statistics.
Shapes: ``gx (T, N, 4H)``, ``h0``, ``c0 (N, H)``, ``w (4H, H)``, ``bias``, ``ln_ih``,
``ln_hh (4H,)``. No projection (``proj_size``): :mod:`rnnkit.fused_lstm` serves that.
"""

from __future__ import annotations

import ctypes

import torch
from torch.autograd.function import once_differentiable

from .cpu_kernels import kernel, make_context, visiting_steps
from .fused_support import Aux, Gemm, outer_sum, recurrent_input, sum_leading


def lstm_kernel_forward(aux, gx, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep, save):
    """Run the sequence; returns ``(hs (T, N, H), c_n (N, H), saved dict)``."""
    steps, n, g4 = gx.shape
    hid = g4 // 4
    gx = gx.contiguous()
    h0, c0 = h0.contiguous(), c0.contiguous()
    params = (bias, ln_ih, ln_hh, ln_cw, ln_cb, peep)
    bias, ln_ih, ln_hh, ln_cw, ln_cb, peep = (None if t is None else t.contiguous() for t in params)
    mask = None if aux.mask is None else aux.mask.contiguous().to(gx.dtype)
    if mask is not None:
        aux = Aux(aux.seq, mask, aux.keep_h, aux.keep_c, aux.nonlinearity)
    blend_c = aux.keep_c is not None
    ln_c = ln_cw is not None or ln_cb is not None
    rows = steps if save else 1
    hs = gx.new_empty(steps, n, hid)
    cs = gx.new_empty(steps, n, hid)
    cn = gx.new_empty(rows, n, hid) if blend_c else cs
    acts = gx.new_empty(rows, n, g4)
    xhat = gx.new_empty(rows, n, g4) if ln_hh is not None else None
    any_ln = ln_ih is not None or ln_hh is not None or ln_c
    stats = gx.new_empty(rows, n, 6) if any_ln else None
    hm = gx.new_empty(n, hid) if mask is not None else None
    per = n * hid if (save or not blend_c) else 0
    bufs = dict(hs=hs, cs=cs, cn=cn, acts=acts, xhat=xhat, stats=stats, hm=hm, cn_st=per,
                acts_st=n * g4 if save else 0, xhat_st=n * g4 if save else 0,
                stats_st=n * 6 if save else 0)  # fmt: skip
    ctx, alive = make_context(aux, h0, gx=gx, c0=c0, bias=bias, ln_ih=ln_ih, ln_w=ln_hh,
                              lnc_w=ln_cw, lnc_b=ln_cb, peep=peep, **bufs)  # fmt: skip
    fwd = kernel("lstm_fwd", gx.dtype)
    ref = ctypes.byref(ctx)
    gemm = Gemm(w, n)
    order, prevs = visiting_steps(aux.seq)
    hss = hs.unbind(0)
    x = h0 if mask is None else h0 * mask
    a = gx.new_empty(n, g4)  # the recurrent GEMM's output, reused at every step
    for t, prev in zip(order, prevs):
        a = gemm(x, out=a)
        fwd(ref, t, prev, a.data_ptr())
        x = hss[t] if mask is None else hm
    del alive
    c_n = cs[order[-1]].clone() if steps else c0.clone()
    saved = {}
    if save:
        saved = dict(hs=hs, cs=cs, cn=cn if blend_c else None, acts=acts, xhat=xhat, stats=stats)
    return hs, c_n, saved


_SAVED = ("hs", "cs", "cn", "acts", "xhat", "stats")


class KernelLSTMSequence(torch.autograd.Function):
    """``(gx, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep) -> (outputs, h_n, c_n)``."""

    @staticmethod
    def forward(ctx, aux: Aux, gx, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep):  # noqa: D102
        gx = gx.contiguous()
        hs, c_n, saved = lstm_kernel_forward(
            aux, gx, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep, save=True
        )
        ctx.aux = aux
        ctx.save_for_backward(gx if ln_ih is not None else None, h0.contiguous(), c0.contiguous(),
                              w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep,
                              *(saved[k] for k in _SAVED))  # fmt: skip
        return aux.seq.outputs(hs), aux.seq.last(hs), c_n

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_hn, d_cn):  # noqa: D102
        gx, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep, *rest = ctx.saved_tensors
        sv = dict(zip(_SAVED, rest))
        aux = ctx.aux
        seq = aux.seq
        need = ctx.needs_input_grad  # (aux, gx, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep)
        hs, acts = sv["hs"], sv["acts"]
        steps, n, g4 = acts.shape
        mask = None if aux.mask is None else aux.mask.contiguous().to(hs.dtype)
        dz = torch.empty_like(acts)
        da = torch.empty_like(acts) if ln_hh is not None else None
        dgx = torch.empty_like(acts) if ln_ih is not None else None
        dhk = d_hn.contiguous().clone()
        dc = d_cn.contiguous().clone()
        dout = seq.outputs(d_out).contiguous()
        grads = {
            "g_peep": torch.zeros_like(peep) if need[10] else None,
            "g_lnc_w": torch.zeros_like(ln_cw) if need[8] else None,
            "g_lnc_b": torch.zeros_like(ln_cb) if need[9] else None,
            "g_ln_w": torch.zeros_like(ln_hh) if need[7] else None,
            "g_ln_ih": torch.zeros_like(ln_ih) if need[6] else None,
        }
        cn = sv["cn"] if sv["cn"] is not None else sv["cs"]
        bufs = dict(hs=hs, cs=sv["cs"], cn=cn, acts=acts, xhat=sv["xhat"], stats=sv["stats"],
                    cn_st=n * (g4 // 4), acts_st=n * g4, xhat_st=n * g4, stats_st=n * 6,
                    dout=dout, dhk=dhk, dc=dc, dz=dz, da=da, dgx=dgx, **grads)  # fmt: skip
        aux_c = Aux(seq, mask, aux.keep_h, aux.keep_c, aux.nonlinearity)
        cctx, alive = make_context(aux_c, h0, gx=gx, c0=c0, bias=bias, ln_ih=ln_ih, ln_w=ln_hh,
                                   lnc_w=ln_cw, lnc_b=ln_cb, peep=peep, **bufs)  # fmt: skip
        ref = ctypes.byref(cctx)
        bwd = kernel("lstm_bwd", hs.dtype)
        gemm_t = Gemm(w.t(), n)
        order, prevs = visiting_steps(aux.seq)
        d_pre = da if da is not None else dz
        rec, buf = None, hs.new_empty(n, hs.shape[-1])
        for t, prev in zip(reversed(order), reversed(prevs)):
            bwd(ref, t, prev, None if rec is None else rec.data_ptr())
            rec = gemm_t(d_pre[t], out=buf)
        dh0 = torch.empty_like(h0)
        kernel("bwd_finish", hs.dtype)(ref, None if rec is None else rec.data_ptr(),
                                                 dh0.data_ptr())  # fmt: skip
        del alive
        dw = outer_sum(d_pre, recurrent_input(seq.before(hs, h0), mask)) if need[4] else None
        db = sum_leading(dz) if need[5] else None
        d_gx = (dz if dgx is None else dgx) if need[1] else None
        return (None, d_gx, dh0 if need[2] else None, dc if need[3] else None, dw, db,
                grads["g_ln_ih"], grads["g_ln_w"], grads["g_lnc_w"], grads["g_lnc_b"],
                grads["g_peep"])  # fmt: skip
