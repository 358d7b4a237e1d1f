"""GRU and Elman RNN sequences on rnnkit's C step kernels (:mod:`rnnkit.backends.cpu_kernels`), CPU.

The design of :mod:`rnnkit.backends.cpu_kernels.lstm`: per step one GEMM ``a = hm W_hh^T`` and one C call
(``gru_fwd``/``rnn_fwd`` in ``csrc/gru_template.h``) for the rest of
:func:`rnnkit.registry.gru.gru_step` / ``rnn_step``, the input layer norm and ``b_ih``, zoneout and
``lengths``; backward one C call and one GEMM ``da W_hh`` per step, weight gradients as single
GEMMs. Saved for backward: ``(r, z, n, gh_n)`` per step for the GRU (none with both layer norms:
:func:`gates_recomputed`), ``h'`` for the RNN, the states and the row statistics of the layer
norms. torch.nn's GRU keeps little for its backward, so
to stay close to its memory the normalised pre-activations are not saved but rebuilt: the input
projection ``x W_ih^T`` with one GEMM at the start of the backward, the recurrent ``h W_hh^T``
with one more GEMM per backward step (the GRU's backward has time to spare against torch.nn's),
and the gradient of ``h W_hh^T`` lives in one scratch row (see the backward).
Shapes: ``x (T, N, D)`` with ``w_ih (G*H, D)``, or ``gx (T, N, G*H)`` (``x W_ih^T``, no bias)
with ``w_ih=None``; ``h0 (N, H)``, ``w (G*H, H)``, ``b_ih``, ``b_hh``, ``ln_ih``,
``ln_hh (G*H,)``; ``G`` = 3 (GRU) or 1 (RNN).
"""

from __future__ import annotations

import ctypes
from typing import NamedTuple

import torch
from torch import Tensor

from ..gemm import Gemm, outer_sum
from ..sequence import Aux, recurrent_input, sum_leading, visiting_steps
from .library import Dropped, kernel, make_context, thread_sums
from .lstm import (
    StepOrder,
    input_grads,
    loop_gemm,
    loop_weight,
    point_gx,
    project,
    projected_chunks,
    run_weight,
    with_mask_like,
)

GATES = {"GRU": 3, "RNN": 1}
ACTS = {"GRU": 4, "RNN": 1}  # saved activations per hidden unit: (r, z, n, gh_n) or h'


def gates_recomputed(mode: str, ln_ih: Tensor | None, ln_hh: Tensor | None) -> bool:
    """Whether the backward rebuilds a GRU's gate values ``(r, z, n, gh_n)`` from the projections
    and every step's recurrent GEMM output rather than reading them saved for every step: with
    both layer norms, whose backward holds both anyway (the projections rebuilt for the input
    LN, the GEMM outputs recomputed for the recurrent one), so only the elementwise math is
    redone and ``(T, N, 4H)`` less is kept per direction. Without them the rebuilt projections
    and every step's ``da`` would outweigh the saved gates at the peak (measured,
    docs/benchmarks.md)."""
    return mode == "GRU" and ln_ih is not None and ln_hh is not None


class GRUInputs(NamedTuple):
    """The differentiable inputs of :class:`KernelGRUSequence`, in ``apply`` order after ``mode``
    and ``aux``; also the names of ``ctx.needs_input_grad`` in backward."""

    x: Tensor
    w_ih: Tensor | None
    h0: Tensor
    w: Tensor
    b_ih: Tensor | None
    b_hh: Tensor | None
    ln_ih: Tensor | None
    ln_hh: Tensor | None


def gru_kernel_forward(mode: str, aux: Aux, inputs: GRUInputs, save: bool,
                       drop: Dropped | None = None):  # fmt: skip
    """Run the sequence of ``inputs`` (:class:`GRUInputs`; ``mode`` "GRU" or "RNN") from
    ``x (T, N, D)`` and ``w_ih``, or from the projections ``x (T, N, G*H)`` with ``w_ih=None``;
    returns ``(hs (T, N, H), saved dict)``."""
    x, w_ih, h0, w, b_ih, b_hh, ln_ih, ln_hh = inputs
    steps, n = x.shape[:2]
    hid = h0.shape[-1]
    g = GATES[mode] * hid
    h0 = h0.contiguous()
    params = (b_ih, b_hh, ln_ih, ln_hh)
    b_ih, b_hh, ln_ih, ln_hh = (None if t is None else t.contiguous() for t in params)
    aux = with_mask_like(aux, x)
    rows = steps if save else 1
    width = ACTS[mode] * hid
    any_ln = ln_ih is not None or ln_hh is not None
    keep_acts = save and not gates_recomputed(mode, ln_ih, ln_hh)
    hs = x.new_empty(steps, n, hid)
    acts = x.new_empty(steps if keep_acts else 1, n, width)
    xhat = x.new_empty(1, n, g) if ln_hh is not None else None  # a scratch row: not saved
    stats = x.new_zeros(rows, n, 6) if any_ln else None  # zeros: the slots no norm here uses
    hm = x.new_empty(n, hid) if aux.mask is not None else None
    ctx, alive = make_context(
        aux, h0, bias_ih=b_ih, bias=b_hh, ln_ih=ln_ih, ln_w=ln_hh, hs=hs, acts=acts, xhat=xhat,
        stats=stats, hm=hm, acts_st=n * width if keep_acts else 0, xhat_st=0,
        stats_st=n * 6 if save else 0,
    )  # fmt: skip
    ref = ctypes.byref(ctx)
    h = h0 if aux.mask is None else (h0 * aux.mask).contiguous()
    a = x.new_empty(n, g)  # the recurrent GEMM's output, reused at every step
    gemm = loop_gemm(x)
    if gemm is not None:  # the time loop in C
        wt = loop_weight(w, gemm, transpose=True, reuse=not save, drop=drop)
        loop, steps_in, done = kernel("gru_fwd_seq", x.dtype), StepOrder(aux.seq), 0
        chunks = projected_chunks(aux, x, w_ih, False, reuse=not save, on_panels=gemm.panels)
        for buf, first, chunk in chunks:
            point_gx(ctx, buf, first)
            loop(ref, *steps_in.pointers(done), len(chunk), wt.data_ptr(), a.data_ptr(),
                 h.data_ptr(), int(mode == "RNN"), gemm.panels, gemm.blas)  # fmt: skip
            done += len(chunk)
    else:  # the time loop in Python, one GEMM call and one step-kernel call per step
        fwd = kernel(f"{mode.lower()}_fwd", x.dtype)
        step_gemm, hss = Gemm(run_weight(w, drop), n, own_kernel=False).step_fn(), hs.unbind(0)
        for buf, first, chunk in projected_chunks(aux, x, w_ih, False):
            point_gx(ctx, buf, first)
            for t, prev in chunk:
                a = step_gemm(h, a)
                fwd(ref, t, prev, a.data_ptr())
                h = hss[t] if hm is None else hm
    del alive
    saved = dict(hs=hs, acts=acts if keep_acts else None, stats=stats) if save else {}
    return hs, saved


_SAVED = ("hs", "acts", "stats")


def gru_kernel_backward(
    mode: str,
    aux: Aux,
    inputs: GRUInputs,
    saved: dict,
    need: GRUInputs,
    d_out: Tensor,
    d_hn: Tensor,
    drop: Dropped | None = None,
) -> GRUInputs:
    """The gradients of :func:`gru_kernel_forward`'s inputs (``need``: which, by name; the others
    are None) from those of its outputs ``d_out (T, N, H)``, ``d_hn (N, H)`` and what it saved;
    ``inputs.x`` is the layer input with ``w_ih``, or the projections with ``w_ih=None``."""
    x, w_ih, h0, w, b_ih, b_hh, ln_ih, ln_hh = inputs
    h0, sv = h0.contiguous(), saved
    hs = sv["hs"]
    aux = with_mask_like(aux, hs)
    seq = aux.seq
    steps, n, hid = hs.shape
    g = GATES[mode] * hid
    ln_in = ln_ih is not None
    if ln_in:  # rebuilt, not saved (or the op's input itself)
        gx = project(x, w_ih) if w_ih is not None else x.contiguous()
    else:
        gx = None
    # with the input LN, dz is a scratch row (b_ih's gradient summed in C) and the gradient
    # of gx overwrites the rebuilt gx in place; without, dz is the gradient of gx
    dz = hs.new_empty(1 if ln_in else steps, n, g)
    # da (the gradient of h W_hh^T) lives in a scratch row, 3H less per step: without layer
    # norms and with the projection inside it is rebuilt from dz in place at the end, as
    # (dz_r, dz_z, dz_n r), for one dW_hh GEMM; otherwise dW_hh gathers a GEMM per step
    compact = w_ih is not None and not ln_in and ln_hh is None
    da = hs.new_empty(1, n, g)
    dw = None if compact or not need.w else w.new_zeros(w.shape)
    dgx = (gx if w_ih is not None else gx.clone()) if ln_in else None
    dhk = d_hn.contiguous().clone()
    dout = seq.outputs(d_out).contiguous()
    grads = {
        "g_bias_ih": torch.zeros_like(b_ih) if need.b_ih and ln_in else None,
        "g_bias": torch.zeros_like(b_hh) if need.b_hh else None,
        "g_ln_ih": torch.zeros_like(ln_ih) if need.ln_ih else None,
        "g_ln_w": torch.zeros_like(ln_hh) if need.ln_hh else None,
    }
    width = ACTS[mode] * hid
    h_in = recurrent_input(seq.before(hs, h0), aux.mask)  # (T, N, H): each step's GEMM input
    recompute = ln_hh is not None  # each step's h W_hh^T computed again
    again = gates_recomputed(mode, ln_ih, ln_hh)  # acts: a scratch the kernel rebuilds per step
    acts = hs.new_empty(1, n, width) if again else sv["acts"]
    arec = hs.new_empty(n, g) if recompute else None
    xhat = hs.new_empty(1, n, g) if recompute else None  # the context points into these:
    cctx, alive = make_context(  # they must stay referenced until the loop is done
        aux, h0, gx=gx, bias_ih=b_ih, bias=b_hh, ln_ih=ln_ih, ln_w=ln_hh, hs=hs, acts=acts,
        xhat=xhat, stats=sv["stats"], acts_st=0 if again else n * width, xhat_st=0,
        stats_st=n * 6, dout=dout, dhk=dhk, dz=dz, dz_st=0 if ln_in else n * g, da=da, da_st=0,
        dgx=dgx, arec=arec, recompute_gates=int(again), **grads,
    )  # fmt: skip
    ref = ctypes.byref(cctx)
    add_up = thread_sums(cctx, grads, alive)
    rec, buf = None, hs.new_empty(n, hid)
    gemm = loop_gemm(hs)
    if gemm is not None:  # the time loop in C
        w_loop, h_in = loop_weight(w, gemm, transpose=False, drop=drop), h_in.contiguous()
        wt = loop_weight(w, gemm, transpose=True, drop=drop) if recompute else w_loop
        visits = StepOrder(seq)  # referenced until the call returns: the C loop reads it
        kernel("gru_bwd_seq", hs.dtype)(
            ref, *visits.pointers(0), steps, w_loop.data_ptr(), wt.data_ptr(),
            h_in.data_ptr(), None if dw is None else dw.data_ptr(), buf.data_ptr(),
            int(mode == "RNN"), gemm.panels, gemm.blas,
        )  # fmt: skip
        rec = buf if steps else None
    else:  # the time loop in Python
        bwd = kernel(f"{mode.lower()}_bwd", hs.dtype)
        w_run = run_weight(w, drop)
        step_gemm_t = Gemm(w_run.t(), n, own_kernel=False).step_fn()
        step_gemm = Gemm(w_run, n, own_kernel=False).step_fn() if recompute else None
        order, prevs = visiting_steps(seq)
        for t, prev in zip(reversed(order), reversed(prevs)):
            if step_gemm is not None:
                step_gemm(h_in[t], arec)
            bwd(ref, t, prev, None if rec is None else rec.data_ptr())
            rec = step_gemm_t(da[0], buf)
            if dw is not None:
                dw.addmm_(da[0].t(), h_in[t])
    dh0 = torch.empty_like(h0)
    kernel("bwd_finish", hs.dtype)(ref, None if rec is None else rec.data_ptr(),
                                   dh0.data_ptr())  # fmt: skip
    add_up()
    del alive
    db_ih = grads["g_bias_ih"] if ln_in else (sum_leading(dz) if need.b_ih else None)
    dx, dw_ih = input_grads(need.x, need.w_ih, dz if dgx is None else dgx, x, w_ih)
    if compact and need.w:
        da = dz  # dz is spent: turn it into da in place
        if mode == "GRU":
            da[..., 2 * hid :].mul_(sv["acts"][..., :hid])  # dz_n * r
        dw = outer_sum(da, h_in)
    return GRUInputs(dx, dw_ih, dh0 if need.h0 else None, dw, db_ih, grads["g_bias"],
                     grads["g_ln_ih"], grads["g_ln_w"])  # fmt: skip
