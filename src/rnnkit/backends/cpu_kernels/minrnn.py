"""minGRU and minLSTM sequences on the C kernels (``csrc/minrnn_template.h``), CPU float32/float64:
the gates and the linear recurrence ``h_t = a_t h_{t-1} + b_t`` of a whole direction in one pass
per batch row, forward and backward, as the registered ops ``torch.ops.rnnkit.minrnn_scan`` and
``minrnn_scan_backward`` (fake implementations and autograd, so torch.compile and torch.export
see them). The torch-op scan of :mod:`rnnkit.parallel_scan` computes the same and serves where
these do not (CUDA, no compiler, a torch.func transform, an explicit ``scan_chunk``), and for
the backward of a backward (``create_graph=True``).

Shapes: ``gx (T, N, G*H)`` the input projections (``G`` = 2 for minGRU ``[k_z, k_h]``, 3 for
minLSTM ``[k_f, k_i, k_h]``), ``h0 (N, H)`` -> ``h (T, N, H)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ...parallel_scan import chunked_scan
from ...registry import mingru, minlstm
from . import huge_pages
from .library import SUFFIX, available, define_ops, kernel, tracing

CELLS = ("mingru", "minlstm")


def minrnn_scan(gx: Tensor, h0: Tensor, lstm: bool) -> Tensor:
    """``h (T, N, H)`` of minGRU (``lstm`` False) or minLSTM over ``gx`` from ``h0``."""
    gx, h0 = gx.contiguous(), h0.contiguous()
    h = huge_pages.empty(gx, gx.shape[0], gx.shape[1], h0.shape[-1])
    steps, n, hid = h.shape
    kernel("minrnn_fwd", gx.dtype)(gx.data_ptr(), h0.data_ptr(), h.data_ptr(), steps, n, hid,
                                   int(lstm), torch.get_num_threads())  # fmt: skip
    return h


def _fake_minrnn_scan(gx, h0, lstm):
    return gx.new_empty(gx.shape[0], gx.shape[1], h0.shape[-1])


def minrnn_scan_backward(
    dh: Tensor, gx: Tensor, h0: Tensor, h: Tensor, lstm: bool
) -> tuple[Tensor, Tensor]:
    """``(dgx (T, N, G*H), dh0 (N, H))`` from ``dh (T, N, H)``, the gradient of every ``h_t``."""
    dh, gx, h0, h = dh.contiguous(), gx.contiguous(), h0.contiguous(), h.contiguous()
    dgx, dh0, carry = huge_pages.empty(gx, *gx.shape), torch.empty_like(h0), torch.empty_like(h0)
    steps, n, hid = h.shape
    kernel("minrnn_bwd", gx.dtype)(
        gx.data_ptr(), h0.data_ptr(), h.data_ptr(), dh.data_ptr(), dgx.data_ptr(), dh0.data_ptr(),
        carry.data_ptr(), steps, n, hid, int(lstm), torch.get_num_threads(),
    )  # fmt: skip
    return dgx, dh0


def _fake_minrnn_scan_backward(dh, gx, h0, h, lstm):
    return torch.empty_like(gx), torch.empty_like(h0)


define_ops((minrnn_scan, _fake_minrnn_scan), (minrnn_scan_backward, _fake_minrnn_scan_backward))


def _setup(ctx, inputs, output) -> None:
    gx, h0, lstm = inputs
    ctx.lstm = lstm
    ctx.save_for_backward(gx, h0, output)


def _backward(ctx, dh):
    gx, h0, h = ctx.saved_tensors
    if torch.is_grad_enabled():  # differentiated again (create_graph=True): the torch-op scan
        coefficients = (minlstm if ctx.lstm else mingru).coefficients
        with torch.enable_grad():
            again = chunked_scan(*coefficients(gx), h0)
            d_gx, d_h0 = torch.autograd.grad(again, (gx, h0), dh, create_graph=True,
                                             allow_unused=True)  # fmt: skip
        return d_gx, d_h0, None
    dgx, dh0 = torch.ops.rnnkit.minrnn_scan_backward(dh, gx, h0, h, ctx.lstm)
    return dgx, dh0, None


torch.library.register_autograd("rnnkit::minrnn_scan", _backward, setup_context=_setup)


def fused_scan(cell: str) -> Callable[[Tensor, Tensor], Tensor | None]:
    """The C scan of registered cell ``cell`` (one of :data:`CELLS`) as
    :func:`rnnkit.parallel_scan.scan_sequence` takes it: ``f(gx, h0) -> h``, or None where the
    kernels do not serve the call."""
    lstm = cell == "minlstm"

    def scan(gx: Tensor, h0: Tensor) -> Tensor | None:
        if gx.dtype not in SUFFIX or tracing() or not available(gx) or gx.shape[0] == 0:
            return None
        return torch.ops.rnnkit.minrnn_scan(gx, h0.to(gx.dtype), lstm)

    return scan
