"""GRU and Elman RNN sequences on rnnkit's C step kernels (:mod:`rnnkit.cpu_kernels`), CPU.

The design of :mod:`rnnkit.kernel_lstm`: per step one GEMM ``a = hm W_hh^T`` and one C call
(``gru_fwd``/``rnn_fwd`` in ``csrc/gru_template.h``) for the rest of
:func:`rnnkit.functional.gru_step` / ``rnn_step``, the input layer norm and ``b_ih``, zoneout and
``lengths``; backward one C call and one GEMM ``da W_hh`` per step, weight gradients as single
GEMMs. Saved for backward: ``(r, z, n, gh_n)`` per step for the GRU (``h'`` for the RNN), the
states, and with layer norm the normalised recurrent pre-activations and the row statistics.
Shapes: ``gx (T, N, G*H)`` (``x W_ih^T``, no bias), ``h0 (N, H)``, ``w (G*H, H)``, ``b_ih``,
``b_hh``, ``ln_ih``, ``ln_hh (G*H,)``; ``G`` = 3 (GRU) or 1 (RNN).
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .cpu_kernels import kernel, make_context, visiting_steps
from .fused_support import Aux, Gemm, outer_sum, recurrent_input, sum_leading

GATES = {"GRU": 3, "RNN": 1}
ACTS = {"GRU": 4, "RNN": 1}  # saved activations per hidden unit: (r, z, n, gh_n) or h'
_SAVED = ("hs", "acts", "xhat", "stats")


def _with_mask(aux: Aux, like: Tensor) -> Aux:
    if aux.mask is None:
        return aux
    return Aux(aux.seq, aux.mask.contiguous().to(like.dtype), aux.keep_h, aux.keep_c,
               aux.nonlinearity)  # fmt: skip


def gru_kernel_forward(mode, aux, gx, h0, w, b_ih, b_hh, ln_ih, ln_hh, save):
    """Run the sequence (``mode`` "GRU" or "RNN"); returns ``(hs (T, N, H), saved dict)``."""
    steps, n, g = gx.shape
    hid = h0.shape[-1]
    gx, h0 = gx.contiguous(), h0.contiguous()
    params = (b_ih, b_hh, ln_ih, ln_hh)
    b_ih, b_hh, ln_ih, ln_hh = (None if t is None else t.contiguous() for t in params)
    aux = _with_mask(aux, gx)
    rows = steps if save else 1
    width = ACTS[mode] * hid
    any_ln = ln_ih is not None or ln_hh is not None
    hs = gx.new_empty(steps, n, hid)
    acts = gx.new_empty(rows, n, width)
    xhat = gx.new_empty(rows, n, g) if ln_hh is not None else None
    stats = gx.new_empty(rows, n, 6) if any_ln else None
    hm = gx.new_empty(n, hid) if aux.mask is not None else None
    ctx, alive = make_context(
        aux, h0, gx=gx, bias_ih=b_ih, bias=b_hh, ln_ih=ln_ih, ln_w=ln_hh, hs=hs, acts=acts,
        xhat=xhat, stats=stats, hm=hm, acts_st=n * width if save else 0,
        xhat_st=n * g if save else 0, stats_st=n * 6 if save else 0,
    )  # fmt: skip
    fwd = kernel(f"{mode.lower()}_fwd", gx.dtype)
    ref = ctypes.byref(ctx)
    gemm = Gemm(w, n)
    order, prevs = visiting_steps(aux.seq)
    hss = hs.unbind(0)
    x = h0 if aux.mask is None else h0 * aux.mask
    a = gx.new_empty(n, g)  # the recurrent GEMM's output, reused at every step
    for t, prev in zip(order, prevs):
        a = gemm(x, out=a)
        fwd(ref, t, prev, a.data_ptr())
        x = hss[t] if hm is None else hm
    del alive
    saved = dict(hs=hs, acts=acts, xhat=xhat, stats=stats) if save else {}
    return hs, saved


class KernelGRUSequence(torch.autograd.Function):
    """``(mode, aux, gx, h0, w, b_ih, b_hh, ln_ih, ln_hh) -> (outputs, h_n)``; mode "GRU"/"RNN"."""

    @staticmethod
    def forward(ctx, mode: str, aux: Aux, gx, h0, w, b_ih, b_hh, ln_ih, ln_hh):  # noqa: D102
        gx = gx.contiguous()
        hs, saved = gru_kernel_forward(mode, aux, gx, h0, w, b_ih, b_hh, ln_ih, ln_hh, save=True)
        ctx.mode, ctx.aux = mode, aux
        ctx.save_for_backward(gx if ln_ih is not None else None, h0.contiguous(), w, b_ih, b_hh,
                              ln_ih, ln_hh, *(saved[k] for k in _SAVED))  # fmt: skip
        return aux.seq.outputs(hs), aux.seq.last(hs)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_hn):  # noqa: D102
        gx, h0, w, b_ih, b_hh, ln_ih, ln_hh, *rest = ctx.saved_tensors
        sv = dict(zip(_SAVED, rest))
        mode, hs = ctx.mode, sv["hs"]
        aux = _with_mask(ctx.aux, hs)
        seq = aux.seq
        need = ctx.needs_input_grad  # (mode, aux, gx, h0, w, b_ih, b_hh, ln_ih, ln_hh)
        steps, n, hid = hs.shape
        g = GATES[mode] * hid
        dz = hs.new_empty(steps, n, g)
        da = hs.new_empty(steps, n, g)
        dgx = hs.new_empty(steps, n, g) if ln_ih is not None else None
        dhk = d_hn.contiguous().clone()
        dout = seq.outputs(d_out).contiguous()
        grads = {
            "g_bias": torch.zeros_like(b_hh) if need[6] else None,
            "g_ln_ih": torch.zeros_like(ln_ih) if need[7] else None,
            "g_ln_w": torch.zeros_like(ln_hh) if need[8] else None,
        }
        width = ACTS[mode] * hid
        cctx, alive = make_context(
            aux, h0, gx=gx, bias_ih=b_ih, bias=b_hh, ln_ih=ln_ih, ln_w=ln_hh, hs=hs,
            acts=sv["acts"], xhat=sv["xhat"], stats=sv["stats"], acts_st=n * width,
            xhat_st=n * g, stats_st=n * 6, dout=dout, dhk=dhk, dz=dz, da=da, dgx=dgx, **grads,
        )  # fmt: skip
        ref = ctypes.byref(cctx)
        bwd = kernel(f"{mode.lower()}_bwd", hs.dtype)
        gemm_t = Gemm(w.t(), n)
        order, prevs = visiting_steps(seq)
        rec, buf = None, hs.new_empty(n, hid)
        for t, prev in zip(reversed(order), reversed(prevs)):
            bwd(ref, t, prev, None if rec is None else rec.data_ptr())
            rec = gemm_t(da[t], out=buf)
        dh0 = torch.empty_like(h0)
        kernel("bwd_finish", hs.dtype)(ref, None if rec is None else rec.data_ptr(),
                                       dh0.data_ptr())  # fmt: skip
        del alive
        dw = outer_sum(da, recurrent_input(seq.before(hs, h0), aux.mask)) if need[4] else None
        db_ih = sum_leading(dz) if need[5] else None
        d_gx = (dz if dgx is None else dgx) if need[2] else None
        return (None, None, d_gx, dh0 if need[3] else None, dw, db_ih, grads["g_bias"],
                grads["g_ln_ih"], grads["g_ln_w"])  # fmt: skip
