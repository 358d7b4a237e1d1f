"""GEMMs of the fused backends: the choice between MKL (``torch.mm``), oneDNN and rnnkit's own
panel kernel per CPU, a weight reused over many calls (:class:`Gemm`), and a linear layer whose
GEMMs all go that way.

The choice is made at call time, never at import: rnnkit's kernel where the C time loops measured
it fastest on this machine (:func:`panels_serve`), else oneDNN or MKL by the CPU's vendor (read
once); ``RNNKIT_CPU_GEMM`` (``mkl``, ``onednn`` or ``panels``) overrides.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import Tensor

from ..functional import CellParams, layer_norm
from .cpu_kernels import huge_pages, panels, weight_cache
from .cpu_kernels.library import available, tracing, transposed


def outer_sum(grad: Tensor, x: Tensor, own_kernel: bool = True) -> Tensor:
    """``sum_t grad_t^T x_t`` as one GEMM: ``(T, N, M), (T, N, K) -> (M, K)``; ``own_kernel`` False
    keeps it off rnnkit's panels (which are measured on the time loops' GEMMs, not on wide ones)."""
    g2, x2 = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
    if own_kernel and panels_serve(x2) and not _differentiable(g2, x2):
        return panels.matmul(g2.t(), panels.pack(x2))
    if not onednn_gemms():
        return torch.mm(g2.t(), x2)
    return Gemm(x2.t(), g2.shape[1])(g2.t())


@functools.cache
def _cpu_vendor() -> str:
    try:
        for line in open("/proc/cpuinfo"):  # noqa: SIM115 - a pseudo-file read once
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def prefer_onednn() -> bool:
    """Whether CPU float32 GEMMs go to oneDNN's prepacked GEMM instead of ``torch.mm`` (MKL).

    Measured (docs/benchmarks.md): on AMD CPUs MKL is 1.5-2.5x slower than oneDNN for the skinny
    GEMMs of a recurrence (MKL takes generic code paths off Intel CPUs); on Intel CPUs MKL is as
    fast or faster, and needs no weight packing or transposed copies. ``RNNKIT_CPU_GEMM=onednn``
    or ``=mkl`` overrides the choice.
    """
    choice = os.environ.get("RNNKIT_CPU_GEMM", "").lower()
    if choice in ("onednn", "mkl"):
        return choice == "onednn"
    return _cpu_vendor() != "GenuineIntel"


_linear = getattr(torch.ops.mkldnn, "_linear_pointwise", None)


_reorder = getattr(torch.ops.mkldnn, "_reorder_linear_weight", None)


def onednn_gemms() -> bool:
    """Whether CPU float32 GEMMs run on oneDNN here: the build has its ops and
    :func:`prefer_onednn` picks it (read at call time, so ``RNNKIT_CPU_GEMM`` can change it)."""
    return (
        _linear is not None
        and _reorder is not None
        and torch.backends.mkldnn.is_available()
        and prefer_onednn()
    )


def dnn_serves(x: Tensor) -> bool:
    """Whether :class:`Gemm` runs ``x``'s GEMMs on oneDNN (CPU float32, see :func:`prefer_onednn`;
    never while torch.compile traces, whose inductor cannot lower the prepacked op)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.compiler.is_compiling()
        and onednn_gemms()
    )


def panels_serve(x: Tensor) -> bool:
    """Whether :class:`Gemm` and :func:`outer_sum` run ``x``'s GEMMs on rnnkit's panel kernel
    (:mod:`.cpu_kernels.panels`): CPU float32/float64 with the C kernels built, where the time
    loops measured it the fastest GEMM here or ``RNNKIT_CPU_GEMM=panels`` asks for it (never while
    torch.compile or torch.func traces: the kernel works on raw pointers)."""
    if x.device.type != "cpu" or tracing() or not available(x):
        return False
    from .cpu_kernels.lstm import loop_gemm  # the choice is measured there, on the time loop

    gemm = loop_gemm(x)
    return gemm is not None and gemm.panels


def _differentiable(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


class Gemm:
    """``x W^T [+ bias] [+ add]`` for a weight ``W (M, K)`` reused over many calls.

    Where :func:`dnn_serves` (CPU float32 on a CPU where oneDNN is the faster GEMM) the weight is
    packed once for oneDNN (``torch.ops.mkldnn._linear_pointwise``, the op torch's own compiled CPU
    code uses); where :func:`panels_serve` (and ``own_kernel``), into rnnkit's panels; elsewhere
    (float64, CUDA, Intel CPUs, a build without oneDNN) it is ``torch.mm``. A product that autograd
    must differentiate goes to ``torch.mm``. ``rows`` is the expected number of rows of ``x`` (a
    packing hint); ``reuse`` keeps the panels for the next ``Gemm`` of the same, unchanged
    weight (:mod:`.cpu_kernels.weight_cache`: forwards without gradients).
    """

    def __init__(self, w: Tensor, rows: int, own_kernel: bool = True, reuse: bool = False,
                 on_panels: bool | None = None) -> None:  # fmt: skip
        self.packed: Tensor | None = None
        self.panels: panels.Panels | None = None
        if on_panels is None:  # else the caller has made the choice (a C loop's measured one)
            on_panels = own_kernel and panels_serve(w)
        if on_panels and not _differentiable(w):
            if reuse:  # b = W^T, packed once
                self.panels = weight_cache.reused(w, "panels_t", lambda v: panels.pack(v.t()))
            else:
                self.panels = panels.pack(w.t())
            self.wt = w.t()  # for an x that autograd differentiates
            return
        # MKL runs skinny GEMMs (a few dozen rows: one time step) ~30% faster on a row-major W^T
        # than on W transposed; for big ones the layout does not matter (docs/benchmarks.md)
        skinny = w.device.type == "cpu" and rows < 256 and not w.t().is_contiguous()
        self.wt = transposed(w.detach()) if skinny else w.t()
        if dnn_serves(w):
            try:
                self.packed = _reorder(w.contiguous(), rows)
            except RuntimeError:  # pragma: no cover - an ISA or build oneDNN cannot serve
                self.packed = None

    def step_fn(self):
        """``f(x, out)``: ``out = x W^T`` with the least Python per call (the recurrences' hot
        loops call it once per step)."""
        if self.packed is None and self.panels is None:
            mm, wt = torch.mm, self.wt
            return lambda x, out: mm(x, wt, out=out)
        return lambda x, out: self(x, out=out)

    def __call__(
        self,
        x: Tensor,
        add: Tensor | None = None,
        bias: Tensor | None = None,
        out: Tensor | None = None,
    ) -> Tensor:
        """``x W^T [+ bias] [+ add]``; with ``out`` (``(rows, M)``, no ``add`` or ``bias``) the
        result is written there (the MKL path then spares the per-step allocation)."""
        if out is not None and (add is not None or bias is not None):
            raise ValueError("Gemm: out= goes without add= and bias=")
        if self.panels is not None and not _differentiable(x, add, bias):
            return self._on_panels(x, add, bias, out)
        if out is not None:
            if self.packed is None:
                return torch.mm(x, self.wt, out=out)
            return out.copy_(_linear(x, self.packed, None, "none", [], ""))
        if self.packed is not None:
            if add is None:
                return _linear(x, self.packed, bias, "none", [], "")
            return _linear.binary(x, add, self.packed, bias, "add")
        if add is None:
            return torch.mm(x, self.wt) if bias is None else torch.addmm(bias, x, self.wt)
        out = torch.addmm(add, x, self.wt)
        return out if bias is None else out.add_(bias)

    def _on_panels(self, x: Tensor, add: Tensor | None, bias: Tensor | None,
                   out: Tensor | None) -> Tensor:  # fmt: skip
        if out is not None or add is None:  # the bias, if any, starts the kernel's sums
            return panels.matmul(x, self.panels, out=out, bias=bias)
        c = huge_pages.empty(x, x.shape[0], self.panels.n)  # the addend, then the product added
        if bias is None:
            c.copy_(add)
        else:
            torch.add(add, bias, out=c)
        return panels.matmul(x, self.panels, out=c, accumulate=True)


class DnnLinear(torch.autograd.Function):
    """``x W^T + b`` for ``x (..., K)``, ``W (M, K)`` with every GEMM, forward and backward, through
    :class:`Gemm` (oneDNN on CPU float32)."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:  # noqa: D102
        x2 = x.reshape(-1, x.shape[-1])
        ctx.save_for_backward(x2, w)
        ctx.has_bias = b is not None
        return Gemm(w, x2.shape[0])(x2, bias=b).view(*x.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, dy: Tensor):  # noqa: D102
        x2, w = ctx.saved_tensors
        dy2 = dy.reshape(-1, dy.shape[-1])
        need_x, need_w, need_b = ctx.needs_input_grad
        dx = Gemm(w.t(), dy2.shape[0])(dy2).view(*dy.shape[:-1], w.shape[1]) if need_x else None
        dw = outer_sum(dy2, x2) if need_w else None
        db = dy2.sum(0) if need_b and ctx.has_bias else None
        return dx, dw, db


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """``F.linear(x, w, b)``, with oneDNN GEMMs forward and backward for CPU float32 tensors."""
    if dnn_serves(x) and x.shape[-1] > 0:
        return DnnLinear.apply(x, w, b)
    return F.linear(x, w, b)


def input_projection(x: Tensor, p: CellParams) -> Tensor:
    """:func:`rnnkit.functional.input_projection` (``LN(x W_ih^T; ln_ih) + b_ih``, ``(..., D) ->
    (..., G*H)``) with the GEMM of :func:`linear`."""
    if p.ln_ih is None:
        return linear(x, p.w_ih, p.b_ih)
    out = layer_norm(linear(x, p.w_ih), p.ln_ih)
    return out if p.b_ih is None else out + p.b_ih
