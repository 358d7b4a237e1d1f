"""The sLSTM time loop on the C kernels (``csrc/slstm_template.h``), CPU float32/float64: a whole
direction in one call, forward and backward, as the registered ops ``torch.ops.rnnkit.
slstm_sequence`` and ``slstm_sequence_backward`` (fake implementations and autograd, so
torch.compile and torch.export see them). Each step is one BLAS GEMM per head and one pass of the
gate math over the batch; the step loop of :mod:`rnnkit.backends.reference` computes the same
(``rnnkit.registry.slstm``) and serves what this does not: ``lengths``, recurrent dropout,
DropConnect, the recurrent layer norm, and the backward of a backward (``create_graph=True``).

Shapes: ``gx (T, N, 4H)`` the input projections with both biases, gates ``[i, f, z, o]``;
``w (K, 4H/K, H/K)`` the block-diagonal recurrent weight; the state ``(h, c, n, m)``, each
``(N, H)``; outputs ``hs, cs, ns, ms (T, N, H)``, the state after every step.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import Tensor

from ...functional import CellParams
from ...registry.slstm import slstm_step
from . import panels
from .library import blas_gemm, define_ops, kernel
from .lstm import loop_gemm


def refusal(like: Tensor, p: CellParams) -> str | None:
    """Why the C time loop cannot run an sLSTM direction with parameters ``p`` (beyond what every
    C kernel needs), or None."""
    if p.ln_hh is not None:
        return "they do not cover the sLSTM's recurrent layer norm (layer_norm=True)"
    if p.w_hh.dim() != 3:
        return f"they take a (K, 4H/K, H/K) recurrent weight, got shape {tuple(p.w_hh.shape)}"
    if blas_gemm(like.dtype) is None:
        return "torch exports no BLAS GEMM here"
    return None


def head_panels(w: Tensor, forward: bool) -> tuple[Tensor | None, int]:
    """The panels of every head's ``R_k^T`` (``forward``) or ``R_k`` for the step GEMMs, one
    block per head, and a block's length; ``(None, 0)`` where torch's BLAS runs them faster
    (:func:`.lstm.loop_gemm`: MKL on Intel CPUs)."""
    gemm = loop_gemm(w)
    if gemm is not None and not gemm.panels:
        return None, 0
    blocks = [panels.pack(r.t() if forward else r).data for r in w.unbind(0)]
    return torch.cat(blocks), blocks[0].numel()


def slstm_sequence(
    gx: Tensor,
    bias: Tensor | None,
    w: Tensor,
    h0: Tensor,
    c0: Tensor,
    n0: Tensor,
    m0: Tensor,
    sigmoid_forget: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(hs, c_n, n_n, m_n, cs, ns, ms, pre)`` over ``gx + bias`` (``b_hh (4H,)`` or None) from
    the state ``(h0, c0, n0, m0)``:
    the outputs, the final ``c, n, m``, and for the backward the ``c, n, m`` of every step and
    the gate pre-activations ``pre (T, N, 4H)``."""
    gx, w = gx.contiguous(), w.contiguous()
    h0, c0, n0, m0 = (s.contiguous() for s in (h0, c0, n0, m0))
    steps, n, _ = gx.shape
    heads, hid = w.shape[0], h0.shape[-1]
    pre = torch.empty_like(gx)
    hs, cs, ns, ms = (gx.new_empty(steps, n, hid) for _ in range(4))
    scratch = gx.new_empty(heads, n, 4 * hid // heads)
    packed, stride = head_panels(w, forward=True)
    bias = gx.new_zeros(gx.shape[-1]) if bias is None else bias.contiguous()
    kernel("slstm_fwd", gx.dtype)(
        gx.data_ptr(), bias.data_ptr(), w.data_ptr(), None if packed is None else packed.data_ptr(),
        *(t.data_ptr() for t in (h0, c0, n0, m0, pre, hs, cs, ns, ms, scratch)),
        steps, n, hid, heads, int(sigmoid_forget), stride, torch.get_num_threads(),
        blas_gemm(gx.dtype),
    )  # fmt: skip
    return hs, cs[-1].clone(), ns[-1].clone(), ms[-1].clone(), cs, ns, ms, pre


def _fake_slstm_sequence(gx, bias, w, h0, c0, n0, m0, sigmoid_forget):
    seq = gx.new_empty(gx.shape[0], gx.shape[1], h0.shape[-1])
    final = [torch.empty_like(h0) for _ in range(3)]
    return (seq, *final, *(torch.empty_like(seq) for _ in range(3)), torch.empty_like(gx))


def slstm_sequence_backward(
    dhs: Tensor, dcn: Tensor | None, dnn: Tensor | None, dmn: Tensor | None, w: Tensor,
    h0: Tensor, c0: Tensor, n0: Tensor, m0: Tensor, pre: Tensor, hs: Tensor, cs: Tensor,
    ns: Tensor, ms: Tensor, sigmoid_forget: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """``(dgx, dw, dh0, dc0, dn0, dm0)`` from the gradients reaching every step's ``h`` (``dhs
    (T, N, H)``) and the final ``c, n, m`` (``(N, H)`` each, or None)."""
    grads = [None if t is None else t.contiguous() for t in (dcn, dnn, dmn)]
    dhs = dhs.contiguous()
    w, h0, c0, n0, m0, pre, hs, cs, ns, ms = (
        t.contiguous() for t in (w, h0, c0, n0, m0, pre, hs, cs, ns, ms))  # fmt: skip
    steps, n, hid = hs.shape
    heads = w.shape[0]
    size = hid // heads
    dgx = torch.empty_like(pre)
    dh0, dc0, dn0, dm0 = (torch.empty_like(h0) for _ in range(4))
    scratch, dhr = pre.new_empty(heads, n, 4 * size), torch.empty_like(h0)
    packed, stride = head_panels(w, forward=False)
    kernel("slstm_bwd", pre.dtype)(
        w.data_ptr(), None if packed is None else packed.data_ptr(),
        *(t.data_ptr() for t in (c0, n0, m0, pre, cs, ns, ms, dhs)),
        *(None if t is None else t.data_ptr() for t in grads),
        *(t.data_ptr() for t in (dgx, dh0, dc0, dn0, dm0, scratch, dhr)),
        steps, n, hid, heads, int(sigmoid_forget), stride, torch.get_num_threads(),
        blas_gemm(pre.dtype),
    )  # fmt: skip
    return dgx, recurrent_weight_grad(dgx, h0, hs, heads, packed is not None), dh0, dc0, dn0, dm0


def recurrent_weight_grad(dgx: Tensor, h0: Tensor, hs: Tensor, heads: int, own_kernel: bool):
    """``dR (K, 4H/K, H/K)``: per head and gate, ``sum_t dpre_{t,g,k}^T h_{t-1,k}``, one GEMM
    over all steps (on rnnkit's panels with ``own_kernel``, else torch's ``mm``)."""
    steps, n, hid = hs.shape
    size = hid // heads
    h_prev = torch.cat([h0[None], hs[:-1]]).view(steps * n, hid)
    d_pre = dgx.view(steps * n, 4 * hid)
    dw = dgx.new_empty(heads, 4 * size, size)
    for k in range(heads):
        h_k = h_prev[:, k * size : (k + 1) * size]
        b = panels.pack(h_k) if own_kernel else h_k
        for g in range(4):
            col = g * hid + k * size
            a, out = d_pre[:, col : col + size].t(), dw[k, g * size : (g + 1) * size]
            if own_kernel:
                panels.matmul(a, b, out=out)
            else:
                torch.mm(a, b, out=out)
    return dw


def _fake_slstm_sequence_backward(dhs, dcn, dnn, dmn, w, h0, c0, n0, m0, pre, hs, cs, ns, ms,
                                  sigmoid_forget):  # fmt: skip
    return (torch.empty_like(pre), torch.empty_like(w),
            *(torch.empty_like(h0) for _ in range(4)))  # fmt: skip


define_ops(
    (slstm_sequence, _fake_slstm_sequence), (slstm_sequence_backward, _fake_slstm_sequence_backward)
)


def _setup(ctx, inputs, output) -> None:
    gx, bias, w, h0, c0, n0, m0, sigmoid_forget = inputs
    hs, _, _, _, cs, ns, ms, pre = output
    ctx.sigmoid_forget, ctx.has_bias = sigmoid_forget, bias is not None
    ctx.set_materialize_grads(False)  # None for the outputs nothing used (most final states)
    ctx.save_for_backward(gx, bias, w, h0, c0, n0, m0, pre, hs, cs, ns, ms)


def _backward(ctx, dhs, dcn, dnn, dmn, *_saved):
    gx, bias, w, h0, c0, n0, m0, pre, hs, cs, ns, ms = ctx.saved_tensors
    if dhs is None:
        dhs = torch.zeros_like(hs)
    grads = (dhs, dcn, dnn, dmn)
    if torch.is_grad_enabled():  # differentiated again (create_graph=True): the step loop
        g_gx, g_w, *g_state = _step_loop_grads(gx, bias, w, (h0, c0, n0, m0), grads,
                                               ctx.sigmoid_forget)  # fmt: skip
        g_bias = g_gx.sum((0, 1)) if ctx.has_bias else None
        return (g_gx, g_bias, g_w, *g_state, None)
    d_gx, d_w, *d_state = torch.ops.rnnkit.slstm_sequence_backward(
        *grads, w, h0, c0, n0, m0, pre, hs, cs, ns, ms, ctx.sigmoid_forget)  # fmt: skip
    d_bias = d_gx.sum((0, 1)) if ctx.has_bias and ctx.needs_input_grad[1] else None
    return (d_gx, d_bias, d_w, *d_state, None)


def _step_loop_grads(gx, bias, w, state, grads, sigmoid_forget):
    """The gradients of :func:`slstm_sequence`'s inputs through the step function of
    ``rnnkit.registry.slstm`` in torch ops, with a graph (the backward of a backward)."""
    gate = SimpleNamespace(forget_gate="sigmoid" if sigmoid_forget else "exp")
    p = SimpleNamespace(w_hh=w, ln_hh=None, b_hh=bias, variants=gate)
    inputs = (gx, w, *state)
    with torch.enable_grad():
        current, hs = tuple(state), []
        for step in gx.unbind(0):
            current = slstm_step(step, current, p)
            hs.append(current[0])
        outs = (torch.stack(hs), *current[1:])
        used = [(o, g) for o, g in zip(outs, grads, strict=True) if g is not None]
        return torch.autograd.grad([o for o, _ in used], inputs, [g for _, g in used],
                                   create_graph=True, allow_unused=True)  # fmt: skip


torch.library.register_autograd("rnnkit::slstm_sequence", _backward, setup_context=_setup)


def sequence(
    gx: Tensor, state: tuple[Tensor, ...], p: CellParams, *, reverse: bool = False
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One sLSTM direction from the input projections ``gx (T, N, 4H)`` (with ``b_ih``, without
    ``b_hh``) on the C time loop: ``(outputs (T, N, H), final (h, c, n, m))``, the contract of
    :func:`rnnkit.backends.reference.scan` without ``lengths`` and the stochastic options."""
    if reverse:
        gx = gx.flip(0)
    h0, c0, n0, m0 = (s.to(gx.dtype) for s in state)
    sigmoid_forget = getattr(p.variants, "forget_gate", "exp") == "sigmoid"
    hs, c_n, n_n, m_n, *_ = torch.ops.rnnkit.slstm_sequence(gx, p.b_hh, p.w_hh, h0, c0, n0, m0,
                                                            sigmoid_forget)  # fmt: skip
    final = (hs[-1], c_n, n_n, m_n)
    return (hs.flip(0) if reverse else hs), final
