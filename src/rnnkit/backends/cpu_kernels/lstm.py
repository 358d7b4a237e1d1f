"""LSTM sequence on rnnkit's C kernels (:mod:`rnnkit.backends.cpu_kernels`), CPU float32/float64.

Forward: the input enters as the bare GEMM ``gx = x W_ih^T``, computed a chunk of steps ahead of
the recurrence (:func:`projected_chunks`); its layer norm and both biases (``bias = b_ih + b_hh``)
are applied row by row inside the step kernel, which saves two passes over the ``(T, N, 4H)``
projections. The time loop runs in C (``lstm_fwd_seq`` in ``csrc/lstm_template.h``): per step one
GEMM ``a = hm W_hh^T`` (on torch's BLAS or on rnnkit's panels, :func:`loop_gemm`), split by
columns over torch's threads, and the step kernel
(``lstm_fwd``: the rest of :func:`rnnkit.functional.input_projection`'s layer norm,
:func:`rnnkit.registry.lstm.lstm_step`, zoneout and ``lengths``), split by batch rows. Backward, per
step (``lstm_bwd_seq``): the step kernel (``lstm_bwd``: the gate gradients ``dz``, the layer-norm
backward, the carried ``dh``/``dc``, the peephole and gain gradients) and one GEMM ``da W_hh``;
the weight gradients are single GEMMs over all steps. Where :func:`loop_gemm` finds the Python
loop faster (oneDNN's GEMMs), Python steps the same kernels.
Saved for backward: the gate activations ``(T, N, 4H)``, the states ``(T, N, H)`` and, with layer
norm, the normalised recurrent pre-activations and the row statistics; with the input layer norm
the backward rebuilds the projections with one GEMM (and overwrites them with their gradient)
rather than keep them, within 1.2x of torch.nn's training memory.
Shapes: ``x (T, N, D)`` with ``w_ih (4H, D)``, or ``gx (T, N, 4H)`` with ``w_ih=None``; ``h0``,
``c0 (N, H)``, ``w (4H, H)``, ``bias``, ``ln_ih``, ``ln_hh (4H,)``. No projection
(``proj_size``): :mod:`rnnkit.backends.torch_ops.lstm` serves that.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import time
from typing import NamedTuple

import torch
from torch import Tensor

from ..gemm import Gemm, dnn_serves, outer_sum
from ..sequence import Aux, Seq, recurrent_input, sum_leading, visiting_steps
from . import weight_cache
from .library import Dropped, blas_gemm, drop_connected, kernel, make_context, thread_sums
from .panels import pack, pack_dropped

logger = logging.getLogger(__name__)

# input projections are computed a chunk of steps ahead of the recurrence: at most about an L2
# cache (a server core's 1-2 MB), but at least MIN_CHUNK_ROWS rows per GEMM (a GEMM of one step's
# few rows runs far below peak; at T=35, N=20, H=128 three 256 KB chunks cost 1.5x one GEMM)
CHUNK_BYTES = 2 * 1024 * 1024
MIN_CHUNK_ROWS = 256


def projected_chunks(aux: Aux, x: Tensor, w_ih: Tensor | None, keep_all: bool,
                     reuse: bool = False, on_panels: bool | None = None):  # fmt: skip
    """The input projections ``x W_ih^T`` of one direction, a few steps at a time.

    Yields ``(buffer, first step, [(t, prev), ...])`` in visiting order: the steps of a chunk, and
    the ``(T', N, G*H)`` buffer holding their projections at ``buffer[t - first]``. Computing a
    chunk just before the steps that read it keeps it in cache (one ``(T, N, G*H)`` GEMM output is
    several MB, and the step kernels would stall reading it back from memory). ``keep_all``
    writes every chunk into one ``(T, N, G*H)`` buffer (its ``first`` is 0), for a backward that
    needs it; ``w_ih=None`` takes ``x`` as the projections, in one chunk. ``reuse`` keeps the
    packed ``W_ih`` for the next call with the same, unchanged weight (:mod:`.weight_cache`);
    ``on_panels`` is the GEMM choice when the caller has it (:class:`~rnnkit.backends.gemm.Gemm`).
    """
    order, prevs = visiting_steps(aux.seq)
    pairs = list(zip(order, prevs))
    if w_ih is None:
        yield x.contiguous(), 0, pairs
        return
    steps, n = x.shape[:2]
    g = w_ih.shape[0]
    per_step = n * g * x.element_size()
    k = max(1, -(-MIN_CHUNK_ROWS // n), CHUNK_BYTES // max(per_step, 1))
    k = min(k, steps)
    full = x.new_empty(steps, n, g) if keep_all else None
    buf = full if keep_all else x.new_empty(min(k, steps), n, g)
    gemm = Gemm(w_ih, k * n, reuse=reuse, on_panels=on_panels)
    for i in range(0, steps, k):
        chunk = pairs[i : i + k]
        lo = min(t for t, _ in chunk)
        hi = max(t for t, _ in chunk) + 1
        first = 0 if keep_all else lo
        out = buf[lo - first : hi - first]
        gemm(x[lo:hi].reshape(-1, x.shape[-1]), out=out.view(-1, g))
        yield buf, first, chunk


class LoopGemm(NamedTuple):
    """How the C time loops (``*_seq`` in ``csrc/``) run their per-step GEMMs: ``blas`` is the
    address of torch's BLAS GEMM (:func:`blas_gemm`); with ``panels`` the loop's weight comes
    packed into panels once per call and rnnkit's own kernel multiplies (``csrc/panel_gemm.h``),
    else BLAS does (the GRU's in-loop weight gradient is always BLAS)."""

    blas: int
    panels: bool


def loop_gemm(like: Tensor) -> LoopGemm | None:
    """How the time loops multiply for tensors like ``like``, or None: then Python steps the loop,
    one oneDNN GEMM call per step.

    ``RNNKIT_CPU_GEMM`` chooses: ``mkl`` (the C loop on torch's BLAS), ``panels`` (the C loop on
    rnnkit's kernel) or ``onednn`` (the Python loop where oneDNN serves ``like``, else BLAS).
    Unset, the candidates are measured once per process and dtype (:func:`fastest_loop`): on
    Intel CPUs MKL runs these skinny GEMMs well, elsewhere its generic code paths take 2-3x
    oneDNN's time.
    None too where torch exports no BLAS."""
    blas = blas_gemm(like.dtype)
    if blas is None:
        return None
    choice = os.environ.get("RNNKIT_CPU_GEMM", "").lower()
    if choice == "onednn":  # float64 has no oneDNN GEMM: BLAS then
        return None if dnn_serves(like) else LoopGemm(blas, False)
    if choice in ("mkl", "panels"):
        return LoopGemm(blas, choice == "panels")
    return fastest_loop(like.dtype, dnn_serves(like))


@functools.cache
def fastest_loop(dtype: torch.dtype, onednn: bool) -> LoopGemm | None:
    """The fastest of the C loop on BLAS, the C loop on panels and (``onednn``) the Python loop on
    oneDNN's GEMMs for a small LSTM (T=24, N=16, H=256) in ``dtype``, here: the best of 5 forward
    passes each, ~30 ms in all, once per process."""
    gen = torch.Generator().manual_seed(0)
    steps, n, hid = 24, 16, 256
    x = torch.randn(steps, n, 4 * hid, generator=gen, dtype=dtype)
    h0 = torch.zeros(n, hid, dtype=dtype)
    w = torch.randn(4 * hid, hid, generator=gen, dtype=dtype) / hid**0.5
    inputs = LSTMInputs(x, None, h0, h0, w, None, None, None, None, None, None)
    aux = Aux(Seq(steps, False))

    def best(gemm: LoopGemm | None) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            _forward(aux, inputs, False, gemm)
            times.append(time.perf_counter() - start)
        return min(times)

    blas = blas_gemm(dtype)
    candidates = [LoopGemm(blas, False), LoopGemm(blas, True)] + ([None] if onednn else [])
    with torch.no_grad():
        times = [best(c) for c in candidates]
    names = ("C loop + BLAS", "C loop + panels", "Python loop + oneDNN")
    logger.info("rnnkit: per-step GEMMs measured (%s): %s", dtype,
                ", ".join(f"{k} {t * 1e6:.0f} us" for k, t in zip(names, times)))  # fmt: skip
    return candidates[times.index(min(times))]


def loop_weight(w: Tensor, gemm: LoopGemm, transpose: bool, reuse: bool = False,
                drop: Dropped | None = None) -> Tensor:  # fmt: skip
    """The weight ``b`` of a C time loop's per-step GEMM ``a b``: ``b = W^T`` (``transpose``, the
    forward's ``h W_hh^T``) or ``W`` (the backward's ``da W_hh``), row-major for BLAS or packed into
    panels (``gemm.panels``) for rnnkit's kernel; ``reuse`` keeps it for the next call with the
    same, unchanged ``w`` (:mod:`.weight_cache`); ``drop`` DropConnects it (on panels the packed
    values are masked: no dropped matrix is made)."""
    if drop is not None:
        if gemm.panels:
            return pack_dropped(w, transpose, drop).data
        return loop_weight(run_weight(w, drop), gemm, transpose)
    if reuse:
        layout = f"loop{'_t' if transpose else ''}{'_panels' if gemm.panels else ''}"
        return weight_cache.reused(w, layout, lambda v: loop_weight(v, gemm, transpose))
    w = w.detach().contiguous()
    if gemm.panels:
        return pack(w.t() if transpose else w).data
    return transposed_weight(w) if transpose else w


@functools.lru_cache(maxsize=64)
def _visits(steps: int, reverse: bool) -> Tensor:
    order = list(range(steps - 1, -1, -1)) if reverse else list(range(steps))
    return torch.tensor([order, [-1, *order[:-1]]], dtype=torch.int64).reshape(2, -1)


class StepOrder:
    """The visiting order of one direction as two int64 arrays the C loops read: ``order[s]`` the
    step visited ``s``-th, ``prevs[s]`` the one before it (-1: the initial state); the arrays
    of each ``(steps, reverse)`` are made once (they are never written)."""

    def __init__(self, seq) -> None:
        self._arrays = _visits(seq.steps, seq.reverse)

    def pointers(self, first: int) -> tuple[int, int]:
        """The addresses of ``order[first:]`` and ``prevs[first:]``."""
        base, row = self._arrays.data_ptr(), self._arrays.shape[1] * 8
        return base + 8 * first, base + row + 8 * first


def transposed_weight(w: Tensor) -> Tensor:
    """``w.t().contiguous()`` by the C kernels' tiled transpose (the time loops' GEMMs read
    ``W^T`` row-major, which MKL runs ~30% faster than ``W`` transposed for a step's few rows)."""
    w = w.detach().contiguous()
    out = w.new_empty(w.shape[1], w.shape[0])
    kernel("transpose", w.dtype)(w.data_ptr(), out.data_ptr(), w.shape[0], w.shape[1])
    return out


def with_mask_like(aux: Aux, like: Tensor) -> Aux:
    """``aux`` with its recurrent-dropout mask contiguous in ``like``'s dtype (as the C kernels
    read it)."""
    if aux.mask is None:
        return aux
    return Aux(aux.seq, aux.mask.contiguous().to(like.dtype), aux.keep_h, aux.keep_c,
               aux.nonlinearity)  # fmt: skip


def point_gx(ctx, buf: Tensor, first: int) -> None:
    """Point ``ctx.gx`` so that the kernels' ``gx + t N G`` lands on ``buf[t - first]``."""
    ctx.gx = buf.data_ptr() - first * buf[0].numel() * buf.element_size()


class LSTMInputs(NamedTuple):
    """The differentiable inputs of :class:`KernelLSTMSequence`, in ``apply`` order after ``aux``
    (``x`` is the layer input with ``w_ih``, or the projections ``x W_ih^T`` with ``w_ih=None``);
    also the names of ``ctx.needs_input_grad`` in backward."""

    x: Tensor
    w_ih: Tensor | None
    h0: Tensor
    c0: Tensor
    w: Tensor
    bias: Tensor | None
    ln_ih: Tensor | None
    ln_hh: Tensor | None
    ln_cw: Tensor | None
    ln_cb: Tensor | None
    peep: Tensor | None


def run_weight(w: Tensor, drop: Dropped | None) -> Tensor:
    """The recurrent matrix a step runs with: ``w``, or ``w`` DropConnected by ``drop``."""
    return w if drop is None else drop_connected(w.contiguous(), drop)


def lstm_kernel_forward(aux: Aux, inputs: LSTMInputs, save: bool, drop: Dropped | None = None):
    """Run the sequence of ``inputs`` (:class:`LSTMInputs`) from ``x (T, N, D)`` and ``w_ih``,
    or from the projections ``x (T, N, 4H)`` with ``w_ih=None``; returns ``(hs (T, N, H), c_n (N,
    H), saved dict)`` (with the projections as ``gx`` when the input layer norm needs them in
    backward). The time loop runs in C where :func:`loop_gemm` says so; ``drop`` runs ``w``
    DropConnected (:class:`.library.Dropped`)."""
    return _forward(aux, inputs, save, loop_gemm(inputs.x), drop)


def _forward(aux: Aux, inputs: LSTMInputs, save: bool, gemm: LoopGemm | None,
             drop: Dropped | None = None):  # fmt: skip
    """:func:`lstm_kernel_forward` with the time loop in C, its GEMMs as ``gemm`` says, or in
    Python (None)."""
    x, w_ih, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep = inputs
    steps, n = x.shape[:2]
    hid = h0.shape[-1]
    g4 = 4 * hid
    h0, c0 = h0.contiguous(), c0.contiguous()
    params = (bias, ln_ih, ln_hh, ln_cw, ln_cb, peep)
    bias, ln_ih, ln_hh, ln_cw, ln_cb, peep = (None if t is None else t.contiguous() for t in params)
    aux = with_mask_like(aux, x)
    mask = aux.mask
    blend_c = aux.keep_c is not None
    ln_c = ln_cw is not None or ln_cb is not None
    rows = steps if save else 1
    hs = x.new_empty(steps, n, hid)
    cs = x.new_empty(steps, n, hid)
    cn = x.new_empty(rows, n, hid) if blend_c else cs
    acts = x.new_empty(rows, n, g4)
    xhat = x.new_empty(rows, n, g4) if ln_hh is not None else None
    any_ln = ln_ih is not None or ln_hh is not None or ln_c
    stats = x.new_zeros(rows, n, 6) if any_ln else None  # zeros: the slots no norm here uses
    hm = x.new_empty(n, hid) if mask is not None else None
    per = n * hid if (save or not blend_c) else 0
    bufs = dict(hs=hs, cs=cs, cn=cn, acts=acts, xhat=xhat, stats=stats, hm=hm, cn_st=per,
                acts_st=n * g4 if save else 0, xhat_st=n * g4 if save else 0,
                stats_st=n * 6 if save else 0)  # fmt: skip
    ctx, alive = make_context(aux, h0, c0=c0, bias=bias, ln_ih=ln_ih, ln_w=ln_hh, lnc_w=ln_cw,
                              lnc_b=ln_cb, peep=peep, **bufs)  # fmt: skip
    ref = ctypes.byref(ctx)
    h = h0 if mask is None else (h0 * mask).contiguous()
    a = x.new_empty(n, g4)  # the recurrent GEMM's output, reused at every step
    # the input layer norm's backward reads the projections: kept (one (T, N, 4H) buffer) rather
    # than rebuilt there by a second GEMM (docs/benchmarks.md)
    keep_gx = save and ln_ih is not None and w_ih is not None
    gx = None
    if gemm is not None:  # the time loop in C
        wt = loop_weight(w, gemm, transpose=True, reuse=not save, drop=drop)
        loop, steps_in = kernel("lstm_fwd_seq", x.dtype), StepOrder(aux.seq)
        done = 0
        chunks = projected_chunks(aux, x, w_ih, keep_gx, reuse=not save, on_panels=gemm.panels)
        for buf, first, chunk in chunks:
            point_gx(ctx, buf, first)
            gx = buf
            loop(ref, *steps_in.pointers(done), len(chunk), wt.data_ptr(), a.data_ptr(),
                 h.data_ptr(), gemm.panels, gemm.blas)  # fmt: skip
            done += len(chunk)
    else:  # the time loop in Python, one GEMM call and one step-kernel call per step
        fwd, hss = kernel("lstm_fwd", x.dtype), hs.unbind(0)
        step_gemm = Gemm(run_weight(w, drop), n, own_kernel=False).step_fn()
        for buf, first, chunk in projected_chunks(aux, x, w_ih, keep_gx):
            point_gx(ctx, buf, first)
            gx = buf
            for t, prev in chunk:
                a = step_gemm(h, a)
                fwd(ref, t, prev, a.data_ptr())
                h = hss[t] if mask is None else hm
    del alive
    c_n = cs[0 if aux.seq.reverse else -1].clone() if steps else c0.clone()
    saved = {}
    if save:
        saved = dict(hs=hs, cs=cs, cn=cn if blend_c else None, acts=acts, xhat=xhat, stats=stats,
                     gx=gx if keep_gx else None)  # fmt: skip
    return hs, c_n, saved


_SAVED = ("hs", "cs", "cn", "acts", "xhat", "stats", "gx")


def project(x: Tensor, w_ih: Tensor) -> Tensor:
    """``x W_ih^T`` for ``x (T, N, D)``: one GEMM over all steps, ``(T, N, G*H)``."""
    x2 = x.reshape(-1, x.shape[-1])
    return Gemm(w_ih, x2.shape[0])(x2).view(*x.shape[:-1], w_ih.shape[0])


def input_grads(need_x: bool, need_w: bool, d_gx: Tensor, x: Tensor, w_ih: Tensor | None):
    """``(dx, dW_ih)`` from the gradient of the projections ``d_gx (T, N, G*H)``; with
    ``w_ih=None`` ``x`` was the projections themselves."""
    if w_ih is None:
        return (d_gx if need_x else None), None
    dx = None
    if need_x:
        d2 = d_gx.reshape(-1, d_gx.shape[-1])
        dx = Gemm(w_ih.t(), d2.shape[0])(d2).view(*x.shape)
    return dx, (outer_sum(d_gx, x) if need_w else None)


def lstm_kernel_backward(
    aux: Aux,
    inputs: LSTMInputs,
    saved: dict,
    need: LSTMInputs,
    d_out: Tensor,
    d_hn: Tensor,
    d_cn: Tensor,
    drop: Dropped | None = None,
) -> LSTMInputs:
    """The gradients of :func:`lstm_kernel_forward`'s inputs (``need``: which, by name; the others
    are None) from those of its outputs ``d_out (T, N, H)``, ``d_hn``, ``d_cn (N, H)`` and what it
    saved; ``inputs.x`` is the layer input (with ``w_ih``) or None. With ``drop`` the gradient of
    ``w`` is that of the DropConnected matrix the forward ran (the caller masks it)."""
    x, w_ih, h0, c0, w, bias, ln_ih, ln_hh, ln_cw, ln_cb, peep = inputs
    h0, c0, sv = h0.contiguous(), c0.contiguous(), saved
    aux = with_mask_like(aux, sv["hs"])
    seq, mask = aux.seq, aux.mask
    hs, acts = sv["hs"], sv["acts"]
    steps, n, g4 = acts.shape
    dz = torch.empty_like(acts)
    da = torch.empty_like(acts) if ln_hh is not None else None
    dgx = None
    if ln_ih is not None:
        if sv["gx"] is None:  # a caller of the backward op that kept none: rebuilt, then the
            # input LN's gradient overwrites it (the forward keeps it: _forward's keep_gx)
            sv = {**sv, "gx": project(x, w_ih)}
            dgx = sv["gx"]
        else:  # saved by the forward or the op's input: a retained graph reads it again
            dgx = torch.empty_like(acts)
    dhk = d_hn.contiguous().clone()
    dc = d_cn.contiguous().clone()
    dout = seq.outputs(d_out).contiguous()
    grads = {
        "g_peep": torch.zeros_like(peep) if need.peep else None,
        "g_lnc_w": torch.zeros_like(ln_cw) if need.ln_cw else None,
        "g_lnc_b": torch.zeros_like(ln_cb) if need.ln_cb else None,
        "g_ln_w": torch.zeros_like(ln_hh) if need.ln_hh else None,
        "g_ln_ih": torch.zeros_like(ln_ih) if need.ln_ih else None,
    }
    cn = sv["cn"] if sv["cn"] is not None else sv["cs"]
    bufs = dict(hs=hs, cs=sv["cs"], cn=cn, acts=acts, xhat=sv["xhat"], stats=sv["stats"],
                cn_st=n * (g4 // 4), acts_st=n * g4, xhat_st=n * g4, stats_st=n * 6,
                dout=dout, dhk=dhk, dc=dc, dz=dz, da=da, dgx=dgx, **grads)  # fmt: skip
    cctx, alive = make_context(aux, h0, gx=sv["gx"], c0=c0, bias=bias, ln_ih=ln_ih,
                               ln_w=ln_hh, lnc_w=ln_cw, lnc_b=ln_cb, peep=peep,
                               **bufs)  # fmt: skip
    ref = ctypes.byref(cctx)
    add_up = thread_sums(cctx, grads, alive)
    d_pre = da if da is not None else dz
    rec, buf = None, hs.new_empty(n, hs.shape[-1])
    gemm = loop_gemm(hs)
    if gemm is not None:  # the time loop in C
        w_loop = loop_weight(w, gemm, transpose=False, drop=drop)
        visits = StepOrder(aux.seq)  # referenced until the call returns: the C loop reads it
        kernel("lstm_bwd_seq", hs.dtype)(ref, *visits.pointers(0), steps, w_loop.data_ptr(),
                                         buf.data_ptr(), gemm.panels, gemm.blas)  # fmt: skip
        rec = buf if steps else None
    else:
        bwd, step_gemm_t = (
            kernel("lstm_bwd", hs.dtype),
            Gemm(run_weight(w, drop).t(), n, own_kernel=False).step_fn(),
        )
        order, prevs = visiting_steps(aux.seq)
        for t, prev in zip(reversed(order), reversed(prevs)):
            bwd(ref, t, prev, None if rec is None else rec.data_ptr())
            rec = step_gemm_t(d_pre[t], buf)
    dh0 = torch.empty_like(h0)
    kernel("bwd_finish", hs.dtype)(ref, None if rec is None else rec.data_ptr(),
                                   dh0.data_ptr())  # fmt: skip
    add_up()
    del alive
    dw = outer_sum(d_pre, recurrent_input(seq.before(hs, h0), mask)) if need.w else None
    db = sum_leading(dz) if need.bias else None
    dx, dw_ih = input_grads(need.x, need.w_ih, dz if dgx is None else dgx, x, w_ih)
    return LSTMInputs(dx, dw_ih, dh0 if need.h0 else None, dc if need.c0 else None, dw, db,
                      grads["g_ln_ih"], grads["g_ln_w"], grads["g_lnc_w"], grads["g_lnc_b"],
                      grads["g_peep"])  # fmt: skip
