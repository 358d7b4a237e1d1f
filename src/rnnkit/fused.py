"""Fused fast paths of the variant layers: :func:`scan` is :func:`rnnkit.functional.scan`, faster.

One ``torch.autograd.Function`` per (layer, direction) sequence with a hand-written backward over
the whole sequence (:mod:`rnnkit.fused_lstm`, :mod:`rnnkit.fused_gru`): one GEMM per step forward
and one per step backward, in-place elementwise gate math, and the weight gradients as one GEMM
over all steps. Under ``torch.no_grad()`` (or when nothing needs a gradient) the same loop runs
without saving anything. On CPU in float32 the GEMMs run on oneDNN with prepacked weights
(:class:`rnnkit.fused_support.Gemm`), as torch.nn's own kernels do.

The math is :mod:`rnnkit.functional`'s (tests check this path against it to 1e-9 in float64,
forward and gradients); the kernels are plain torch ops, so they run on any device. A
configuration the fused kernels do not cover (a dropout or zoneout mask that itself requires grad)
quietly runs :func:`rnnkit.functional.scan`.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor

from . import cpu_kernels, functional, fused_support
from .functional import CellParams, StepOptions
from .fused_gru import GRUSequence, RNNSequence, gru_forward, rnn_forward
from .fused_lstm import LSTMSequence, lstm_forward
from .fused_support import Aux, DnnLinear, Seq, keep_weights
from .kernel_gru import KernelGRUSequence, gru_kernel_forward
from .kernel_lstm import KernelLSTMSequence, lstm_kernel_forward

__all__ = ["input_projection", "layer_direction", "linear", "scan"]

logger = logging.getLogger(__name__)

MODES = ("LSTM", "GRU", "RNN")
# whether CPU float32/float64 tensors go through the C step kernels (rnnkit.cpu_kernels) when they
# are available; tests switch it off to check the torch-op kernels (fused_lstm, fused_gru) too
USE_CPU_KERNELS = True


def _needs_grad(tensors: tuple[Tensor | None, ...]) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _fusable(opts: StepOptions) -> bool:
    stochastic = (opts.dropout_mask, opts.zoneout_h, opts.zoneout_c)
    return not any(isinstance(t, Tensor) and t.requires_grad for t in stochastic)


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
    """Run one direction of one layer over time; same contract as :func:`rnnkit.functional.scan`.

    ``gx (T, N, G*H)`` input projections, ``state`` ``(h0 (N, R),)`` or ``(h0, c0 (N, H))``,
    ``lengths (N,)``; returns ``(outputs (T, N, R), final state)``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    opts = options or StepOptions()
    if gx.shape[0] == 0 or not _fusable(opts):
        logger.debug("fused.scan: falling back to functional.scan")
        return functional.scan(
            mode, gx, state, p, lengths=lengths, reverse=reverse, options=opts,
            nonlinearity=nonlinearity,
        )  # fmt: skip
    aux = _aux(mode, gx, opts, lengths, reverse, nonlinearity)
    w = p.w_hh if opts.w_hh is None else opts.w_hh
    if _kernel_serves(mode, gx, p):
        if mode == "LSTM":
            return _lstm_kernel(aux, gx, None, state, p, w, p.b_hh, None)
        return _gru_kernel(mode, aux, gx, state, p, w, None, None)
    if mode == "LSTM":
        inputs = (gx, state[0], state[1], w, p.b_hh, p.w_hr, p.ln_hh, p.ln_c_weight,
                  p.ln_c_bias, p.peephole)  # fmt: skip
        if _needs_grad(inputs):
            out, h, c = LSTMSequence.apply(aux, *inputs)
            return out, (h, c)
        with torch.no_grad():
            hs, c_n, _ = lstm_forward(aux, *inputs, save=False)
        return aux.seq.outputs(hs), (aux.seq.last(hs), c_n)
    inputs = (gx, state[0], w, p.b_hh, p.ln_hh)
    fn, forward = (GRUSequence, gru_forward) if mode == "GRU" else (RNNSequence, rnn_forward)
    if _needs_grad(inputs):
        out, h = fn.apply(aux, *inputs)
        return out, (h,)
    with torch.no_grad():
        hs, _ = forward(aux, *inputs, save=False)
    return aux.seq.outputs(hs), (aux.seq.last(hs),)


def layer_direction(
    mode: str,
    x: Tensor,
    state: tuple[Tensor, ...],
    p: CellParams,
    *,
    lengths: Tensor | None = None,
    reverse: bool = False,
    options: StepOptions | None = None,
    nonlinearity: str = "tanh",
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One direction of one layer from its input: :func:`input_projection` then :func:`scan`.

    ``x (T, N, D)``; the rest as :func:`scan`. On the C kernel path of the LSTM the projection is
    the bare GEMM ``x W_ih^T`` and its layer norm and biases run inside the step kernel
    (:mod:`rnnkit.kernel_lstm`), which saves two passes over the ``(T, N, 4H)`` projections.
    """
    opts = options or StepOptions()
    kw = dict(lengths=lengths, reverse=reverse, options=opts, nonlinearity=nonlinearity)
    if x.shape[0] == 0 or not _fusable(opts) or not _kernel_serves(mode, x, p):
        return scan(mode, input_projection(x, p), state, p, **kw)
    aux = _aux(mode, x, opts, lengths, reverse, nonlinearity)
    w = p.w_hh if opts.w_hh is None else opts.w_hh
    if mode != "LSTM":
        return _gru_kernel(mode, aux, x, state, p, w, p.w_ih, p.ln_ih)
    bias = p.b_hh if p.b_ih is None else (p.b_ih if p.b_hh is None else p.b_ih + p.b_hh)
    return _lstm_kernel(aux, x, p.w_ih, state, p, w, bias, p.ln_ih)


def _aux(
    mode: str,
    gx: Tensor,
    opts: StepOptions,
    lengths: Tensor | None,
    reverse: bool,
    nonlinearity: str,
) -> Aux:
    valid = None
    if lengths is not None:
        steps = torch.arange(gx.shape[0], device=gx.device)
        valid = (steps[:, None] < lengths.to(gx.device)).unsqueeze(-1)  # (T, N, 1)
    return Aux(
        seq=Seq(gx.shape[0], reverse, valid),
        mask=opts.dropout_mask,
        keep_h=keep_weights(opts.zoneout_h, valid, gx),
        keep_c=keep_weights(opts.zoneout_c, valid, gx) if mode == "LSTM" else None,
        nonlinearity=nonlinearity,
    )


def _kernel_serves(mode: str, like: Tensor, p: CellParams) -> bool:
    """Whether ``mode`` runs on the C step kernels (CPU float32/64; the LSTM without projection)."""
    return mode in MODES and p.w_hr is None and USE_CPU_KERNELS and cpu_kernels.available(like)


def _gru_kernel(mode, aux, x, state, p, w, w_ih, ln_ih):
    """``x`` is the layer input with ``w_ih`` (projected inside), or the projections with None."""
    b_ih = None if w_ih is None else p.b_ih
    inputs = (x, w_ih, state[0], w, b_ih, p.b_hh, ln_ih, p.ln_hh)
    if _needs_grad(inputs):
        out, h = KernelGRUSequence.apply(mode, aux, *inputs)
        return out, (h,)
    with torch.no_grad():
        hs, _ = gru_kernel_forward(mode, aux, *inputs, save=False)
    return aux.seq.outputs(hs), (aux.seq.last(hs),)


def _lstm_kernel(aux, x, w_ih, state, p, w, bias, ln_ih):
    """``x`` is the layer input with ``w_ih`` (projected inside), or the projections with None."""
    inputs = (x, w_ih, state[0], state[1], w, bias, ln_ih, p.ln_hh, p.ln_c_weight, p.ln_c_bias,
              p.peephole)  # fmt: skip
    if _needs_grad(inputs):
        out, h, c = KernelLSTMSequence.apply(aux, *inputs)
        return out, (h, c)
    with torch.no_grad():
        hs, c_n, _ = lstm_kernel_forward(aux, *inputs, save=False)
    return aux.seq.outputs(hs), (aux.seq.last(hs), c_n)


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """``F.linear(x, w, b)``, with oneDNN GEMMs forward and backward for CPU float32 tensors."""
    if fused_support.dnn_serves(x) and x.shape[-1] > 0:
        return DnnLinear.apply(x, w, b)
    return F.linear(x, w, b)


def input_projection(x: Tensor, p: CellParams) -> Tensor:
    """:func:`rnnkit.functional.input_projection` (``LN(x W_ih^T; ln_ih) + b_ih``, ``(..., D) ->
    (..., G*H)``) with the GEMM of :func:`linear`."""
    if p.ln_ih is None:
        return linear(x, p.w_ih, p.b_ih)
    out = functional.layer_norm(linear(x, p.w_ih), p.ln_ih)
    return out if p.b_ih is None else out + p.b_ih
