"""rnnkit's own GEMM (``csrc/panel_gemm.h``), for CPUs whose BLAS runs a recurrent layer's GEMMs
slowly: on AMD EPYC, MKL and OpenBLAS take 2-3x oneDNN's time for a step's ``20 x 128 x 512``
product, and oneDNN itself is reachable only through torch ops that re-pack the weight at every
call (``docs/benchmarks.md``). :func:`rnnkit.backends.cpu_kernels.lstm.loop_gemm` measures which
serves, once per process.

``b`` of a product ``a b`` is packed once into panels of a few vector widths (:func:`pack`); the
time loops multiply by the panels at every step, and :func:`matmul` runs the large GEMMs (input
projections, their gradients, the weight gradients) on torch's threads. ``a`` may be any strided
2-D tensor (a transposed view included): the kernel reads it through its strides.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from . import huge_pages
from .library import kernel


class Panels(NamedTuple):
    """``b (k, n)`` packed for :func:`matmul`: ``ceil(n / width)`` panels of ``k x width`` values,
    zero-padded past column ``n``."""

    data: Tensor
    k: int
    n: int


def pack(b: Tensor) -> Panels:
    """The panels of a 2-D ``b (k, n)``, read through its strides (``w.t()`` packs ``W^T``), on
    torch's threads."""
    b = b.detach()
    k, n = b.shape
    width = kernel("panel_width", b.dtype)()
    data = b.new_empty(-(-n // width) * width * k)
    kernel("pack_panels", b.dtype)(b.data_ptr(), k, n, b.stride(0), b.stride(1), data.data_ptr(),
                                   torch.get_num_threads())  # fmt: skip
    return Panels(data, k, n)


def pack_dropped(w: Tensor, transpose: bool, drop) -> Panels:
    """The panels of ``w.t()`` (``transpose``) or ``w`` DropConnected by ``drop``
    (:class:`.library.Dropped`), the mask applied to the packed values: ``w * mask`` never
    exists as a matrix."""
    w = w.detach().contiguous()
    b = w.t() if transpose else w
    panels = pack(b)
    kernel("mask_panels", b.dtype)(panels.data.data_ptr(), panels.k, panels.n, b.stride(0),
                                   b.stride(1), 1.0 - drop.p, drop.scale(b.dtype),
                                   drop.seed)  # fmt: skip
    return panels


def matmul(a: Tensor, b: Panels, out: Tensor | None = None, accumulate: bool = False,
           bias: Tensor | None = None) -> Tensor:  # fmt: skip
    """``a (m, k) @ b [+ bias (n,)]`` on torch's threads: a new ``(m, n)`` tensor, or written into
    (or, with ``accumulate``, added to) the row-major ``out``. The bias starts the kernel's sums
    (no pass over the output of its own); it goes without ``accumulate``."""
    m, k = a.shape
    if k != b.k:
        raise ValueError(f"panels.matmul: a has {k} columns, the panels {b.k} rows")
    if out is None:
        if accumulate:
            raise ValueError("panels.matmul: accumulate=True needs out=")
        out = huge_pages.empty(a, m, b.n)
    if out.shape != (m, b.n) or out.stride(1) != 1:
        raise ValueError(f"panels.matmul: out must be row-major ({m}, {b.n}), got "
                         f"{tuple(out.shape)} with strides {out.stride()}")  # fmt: skip
    if bias is not None:
        if accumulate:
            raise ValueError("panels.matmul: bias= goes without accumulate=True")
        if bias.shape != (b.n,) or bias.dtype != a.dtype:
            raise ValueError(f"panels.matmul: bias must be ({b.n},) of {a.dtype}, got "
                             f"{tuple(bias.shape)} of {bias.dtype}")  # fmt: skip
        bias = bias.detach().contiguous()
    if m and b.n:
        if k == 0 and not accumulate:
            return out.zero_() if bias is None else out.copy_(bias.expand_as(out))
        kernel("panel_matmul", a.dtype)(m, b.n, k, a.data_ptr(), a.stride(0), a.stride(1),
                                        b.data.data_ptr(),
                                        None if bias is None else bias.data_ptr(), out.data_ptr(),
                                        out.stride(0), int(accumulate),
                                        torch.get_num_threads())  # fmt: skip
    return out
