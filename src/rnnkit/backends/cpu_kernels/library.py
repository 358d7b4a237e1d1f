"""rnnkit's CPU kernels (``csrc/``): a recurrent layer direction's time loop in C.

torch.nn's CPU LSTM runs each step as one GEMM plus one fused elementwise kernel; a variant written
in torch ops needs about ten elementwise calls per step, each a few microseconds of dispatch and a
pass over memory. The C kernels do one step's whole elementwise work (gates, layer norms,
peepholes, zoneout, ``lengths``, the recurrent-dropout mask of the next GEMM's input) in one
function, and the time loops (``*_seq``) call it and the per-step GEMM (on the BLAS inside torch's
own library, :func:`blas_gemm`) without returning to Python, on torch's OpenMP threads.

The library is compiled at install time (``setup.py``, into ``prebuilt/``) or else on first use,
a second or two, with the system C compiler (``$CC`` or ``cc``) for this CPU (``-march=native``),
and cached under ``$RNNKIT_CACHE_DIR`` (default ``~/.cache/rnnkit``) keyed by the sources, the
flags and the CPU (:mod:`.build`). Where no compiler works, or with
``RNNKIT_CPU_KERNELS=0``, :func:`library` returns None and the fused layers run their torch-op
implementation instead (:mod:`rnnkit.backends.torch_ops`).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import torch

from . import build

__all__ = [
    "Keep",
    "StepCtx",
    "available",
    "bernoulli",
    "kernel",
    "library",
    "make_context",
]

logger = logging.getLogger(__name__)

SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


class Keep(ctypes.Structure):
    """Lerp weights ``k`` of a blend ``lerp(new, prev, k)`` (``rnnkit_cpu.h``)."""

    _fields_ = [
        ("p", ctypes.c_void_p),
        ("st", ctypes.c_long),
        ("sn", ctypes.c_long),
        ("sj", ctypes.c_long),
        ("val", ctypes.c_double),
        ("seeded", ctypes.c_long),
        ("seed", ctypes.c_ulonglong),
    ]


_P = ctypes.c_void_p
_POINTERS_IN = ("bias_ih", "gx", "bias", "ln_ih", "ln_w", "peep", "lnc_w", "lnc_b", "mask", "h0",
                "c0")  # fmt: skip
_BUFFERS = ("hs", "cs", "cn", "acts", "xhat", "stats", "hm")
_STRIDES = ("cn_st", "acts_st", "xhat_st", "stats_st")
_BACKWARD = ("dout", "dhk", "dc", "dz", "da", "dgx", "g_peep", "g_lnc_w", "g_lnc_b", "g_ln_w",
             "g_ln_ih", "g_bias", "arec")  # fmt: skip


class StepCtx(ctypes.Structure):
    """The buffers of one direction of one layer, as ``StepCtx`` in ``rnnkit_cpu.h``."""

    _fields_ = [
        ("N", ctypes.c_long),
        ("H", ctypes.c_long),
        ("relu", ctypes.c_long),
        *((name, _P) for name in _POINTERS_IN),
        ("has_lnc", ctypes.c_long),
        ("kh", Keep),
        ("kc", Keep),
        *((name, _P) for name in _BUFFERS),
        *((name, ctypes.c_long) for name in _STRIDES),
        *((name, _P) for name in _BACKWARD),
        ("dz_st", ctypes.c_long),
        ("g_bias_ih", _P),
        ("da_st", ctypes.c_long),
        ("nthreads", ctypes.c_long),
        ("partials", _P),
        ("part_len", ctypes.c_long),
        ("part_off", ctypes.c_long * 7),
        ("recompute_gates", ctypes.c_long),
    ]


# the gradient sums of a backward step, in the order of RNNKIT_SUMS (rnnkit_cpu.h)
SUMS = ("g_peep", "g_lnc_w", "g_lnc_b", "g_ln_w", "g_ln_ih", "g_bias", "g_bias_ih")


_OFF = ("0", "false", "no", "off")
_ON = ("", "1", "true", "yes", "on")


def enabled() -> bool:
    """``RNNKIT_CPU_KERNELS`` read now: ``0``/``false``/``no``/``off`` switch the kernels off,
    ``1``/``true``/``yes``/``on`` (or unset) leave them on; anything else is an error."""
    value = os.environ.get("RNNKIT_CPU_KERNELS", "").strip().lower()
    if value in _OFF:
        return False
    if value in _ON:
        return True
    raise ValueError(
        f"RNNKIT_CPU_KERNELS must be one of {_ON[1:] + _OFF}, got {os.environ['RNNKIT_CPU_KERNELS']!r}"
    )


_STEP_FUNCTIONS = ("lstm_fwd", "lstm_bwd", "gru_fwd", "gru_bwd", "rnn_fwd", "rnn_bwd")


@functools.cache
def library(dtype: torch.dtype = torch.float32) -> ctypes.CDLL | None:
    """The compiled kernels for ``dtype`` (float32 or float64; one library each, so a float32 user
    compiles half), built on the first call and cached on disk; None when unavailable.

    A cached library is loaded only when it matches its build record (size and SHA-256); a damaged
    or replaced one is rebuilt, with one warning."""
    if sys.platform == "win32" or dtype not in SUFFIX:
        return None
    suffix = SUFFIX[dtype]
    try:
        compiler = build.compiler()
    except build.CompilerError as err:
        logger.warning("rnnkit CPU kernels: %s", err)
        return None
    if compiler is None:
        logger.info("rnnkit CPU kernels: no C compiler found; fused layers use torch ops")
        return None
    name = build.library_name(compiler, suffix)
    prebuilt = build.PREBUILT_DIR / name
    if build.prebuilt_enabled() and prebuilt.exists() and build.intact(prebuilt):
        target = prebuilt  # built at install time
    else:
        target = build.cache_dir() / name
    try:
        if target.exists() and not build.intact(target):
            logger.warning(
                "rnnkit CPU kernels: %s does not match its build record (damaged or replaced); "
                "rebuilding it", target,
            )  # fmt: skip
            target.unlink()
        if not target.exists():
            logger.info("rnnkit CPU kernels: compiling %s", target)
            build.compile_library(compiler, target, suffix)
        lib = ctypes.CDLL(str(target))
        lib.rnnkit_abi_version.restype = ctypes.c_long
        abi = lib.rnnkit_abi_version()
    except (OSError, AttributeError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", "") or err
        logger.warning("rnnkit CPU kernels unavailable (%s); fused layers use torch ops", detail)
        return None
    if abi != build.ABI_VERSION:  # pragma: no cover - a stale file under the name
        logger.warning("rnnkit CPU kernels: ABI mismatch in %s; fused layers use torch ops", target)
        return None
    try:
        _declare(lib, suffix)
    except AttributeError as err:
        logger.warning("rnnkit CPU kernels: %s lacks %s; fused layers use torch ops", target, err)
        return None
    return lib


# the time loops: (ctx, order, prevs, count, ...) with the BLAS GEMM as the last argument
_LOOP_FUNCTIONS = {
    "lstm_fwd_seq": (_P, _P, _P),  # wt, a, h_first
    "lstm_bwd_seq": (_P, _P),  # w, rec
    "gru_fwd_seq": (_P, _P, _P, ctypes.c_long),  # wt, a, h_first, rnn
    "gru_bwd_seq": (_P, _P, _P, _P, _P, ctypes.c_long),  # w, wt, h_in, dw, rec, rnn
}


def _declare(lib: ctypes.CDLL, suffix: str) -> None:
    """Argument and return types of the library's functions (AttributeError when one is missing)."""
    for name in _STEP_FUNCTIONS:
        fn = getattr(lib, f"{name}_{suffix}")
        fn.argtypes = [ctypes.POINTER(StepCtx), ctypes.c_long, ctypes.c_long, _P]
        fn.restype = None
    for name, extra in _LOOP_FUNCTIONS.items():
        fn = getattr(lib, f"{name}_{suffix}")
        fn.argtypes = [ctypes.POINTER(StepCtx), _P, _P, ctypes.c_long, *extra, ctypes.c_long, _P]
        fn.restype = None  # ... packed, gemm
    fwd = getattr(lib, f"minrnn_fwd_{suffix}")
    fwd.argtypes = [_P, _P, _P, *([ctypes.c_long] * 5)]
    fwd.restype = None
    bwd = getattr(lib, f"minrnn_bwd_{suffix}")
    bwd.argtypes = [*([_P] * 7), *([ctypes.c_long] * 5)]
    # the sLSTM loops: pointers, then T, N, H, K, sigmoid gate, panel stride, threads; gemm
    sfwd = getattr(lib, f"slstm_fwd_{suffix}")
    sfwd.argtypes, sfwd.restype = [*([_P] * 14), *([ctypes.c_long] * 7), _P], None
    sbwd = getattr(lib, f"slstm_bwd_{suffix}")
    sbwd.argtypes, sbwd.restype = [*([_P] * 20), *([ctypes.c_long] * 7), _P], None
    bwd.restype = None
    fin = getattr(lib, f"bwd_finish_{suffix}")
    fin.argtypes = [ctypes.POINTER(StepCtx), _P, _P]
    fin.restype = None
    width = getattr(lib, f"panel_width_{suffix}")
    width.argtypes, width.restype = [], ctypes.c_long
    pack = getattr(lib, f"pack_panels_{suffix}")
    pack.argtypes, pack.restype = [_P, *([ctypes.c_long] * 4), _P, ctypes.c_long], None
    mm = getattr(lib, f"panel_matmul_{suffix}")
    mm.argtypes = [*([ctypes.c_long] * 3), _P, ctypes.c_long, ctypes.c_long, _P, _P, _P,
                   *([ctypes.c_long] * 3)]  # fmt: skip
    mm.restype = None
    tr = getattr(lib, f"transpose_{suffix}")
    tr.argtypes = [_P, _P, ctypes.c_long, ctypes.c_long]
    tr.restype = None
    bern = getattr(lib, f"bernoulli_{suffix}")
    bern.argtypes = [_P, ctypes.c_long, ctypes.c_double, ctypes.c_ulonglong]
    bern.restype = None
    mp = getattr(lib, f"mask_panels_{suffix}")
    mp.argtypes = [_P, *([ctypes.c_long] * 4), ctypes.c_double, ctypes.c_double, ctypes.c_ulonglong]
    mp.restype = None
    masked = getattr(lib, f"masked_scale_{suffix}")
    masked.argtypes = [_P, _P, ctypes.c_long, ctypes.c_double, ctypes.c_double,
                       ctypes.c_ulonglong]  # fmt: skip
    masked.restype = None


_GEMM_SYMBOLS = {torch.float32: "sgemm_", torch.float64: "dgemm_"}


@functools.cache
def _torch_blas() -> ctypes.CDLL | None:
    """torch's own CPU library, which carries the BLAS that ``torch.mm`` uses (MKL on x86)."""
    path = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        return ctypes.CDLL(str(path))
    except OSError:
        return None


def blas_gemm(dtype: torch.dtype) -> int | None:
    """The address of torch's BLAS ``sgemm_``/``dgemm_`` for ``dtype`` (LP64), which the C time
    loops call for the per-step GEMMs; None where torch's library exports none (a build without
    a BLAS, another platform): the Python loop with ``torch.mm`` serves then."""
    lib = _torch_blas()
    symbol = _GEMM_SYMBOLS.get(dtype)
    if lib is None or symbol is None:
        return None
    try:
        return ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value
    except AttributeError:
        return None


def available(like: torch.Tensor) -> bool:
    """Whether the kernels serve tensors like ``like`` (CPU, float32 or float64)."""
    return (
        like.device.type == "cpu"
        and like.dtype in SUFFIX
        and enabled()
        and library(like.dtype) is not None
    )


def transposed(w: torch.Tensor) -> torch.Tensor:
    """``w.t().contiguous()`` for a 2-D ``w``, by a tiled C transpose where the kernels serve it
    (2-2.5x faster than torch's strided copy for weight-sized matrices)."""
    if w.dim() != 2 or not w.is_contiguous() or tracing() or not available(w):
        return w.t().contiguous()
    out = w.new_empty(w.shape[1], w.shape[0])
    kernel("transpose", w.dtype)(w.data_ptr(), out.data_ptr(), w.shape[0], w.shape[1])
    return out


def draw_seed() -> int:
    """A seed for :func:`bernoulli`, drawn from torch's global generator."""
    return int(torch.randint(0, 2**62, ()).item())


def tracing() -> bool:
    """Whether torch.compile / torch.export or a torch.func transform is tracing this call: C calls
    on raw pointers are invisible to them (and fake tensors have no data)."""
    return torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active()


def bernoulli(
    shape: tuple[int, ...], p: float, like: torch.Tensor, seed: int | None = None
) -> torch.Tensor | None:
    """A ``shape`` tensor of Bernoulli(``p``) draws (1 with probability ``p``) in ``like``'s dtype,
    from the C counter-based generator: the same ``seed`` gives the same draws; by default the
    seed comes from torch's global generator (so ``torch.manual_seed`` reproduces them). None
    where the kernels do not serve ``like``, and while torch.compile or a torch.func transform
    traces (they cannot see into a C call): torch's own ``bernoulli_`` serves then."""
    draws = bernoulli_draws(shape, p, like, seed)
    return None if draws is None else draws.tensor(like)


class Dropped(NamedTuple):
    """DropConnect that the C kernels apply to a recurrent weight themselves: rate ``p``, the
    mask of ``seed`` (:func:`rnnkit.regularization.dropout_mask`'s inverted Bernoulli(1-p))."""

    p: float
    seed: int

    def scale(self, dtype: torch.dtype) -> float:
        """The mask's kept value, ``1 / (1 - p)`` as the mask tensor holds it in ``dtype``."""
        return torch.ones((), dtype=dtype).div_(1.0 - self.p).item()


def drop_connected(w: torch.Tensor, drop: Dropped, out: torch.Tensor | None = None):
    """``w * dropout_mask(w.shape, drop.p, w, drop.seed)`` without the mask in memory, into
    ``out`` (which may be ``w`` itself) or a new tensor; ``w`` contiguous, a CPU kernels' dtype."""
    w = w.detach()
    if not w.is_contiguous():
        raise ValueError("drop_connected: w must be contiguous")
    out = torch.empty_like(w) if out is None else out
    kernel("masked_scale", w.dtype)(w.data_ptr(), out.data_ptr(), w.numel(), 1.0 - drop.p,
                                    drop.scale(w.dtype), drop.seed)  # fmt: skip
    return out


class BernoulliDraws(NamedTuple):
    """Bernoulli(``p``) draws of ``shape`` (1 with probability ``p``) from the C generator at
    ``seed``, described rather than drawn: the C time loops draw each row where they read it, so
    a zoneout mask costs no ``(T, N, C)`` buffer, forward or backward. :meth:`tensor` draws them
    all, the values :func:`bernoulli` gives for the same seed."""

    shape: tuple[int, ...]
    p: float
    seed: int

    def tensor(self, like: torch.Tensor) -> torch.Tensor:
        """The draws as a tensor in ``like``'s dtype and device."""
        out = torch.empty(self.shape, dtype=like.dtype)
        kernel("bernoulli", like.dtype)(out.data_ptr(), out.numel(), self.p, self.seed)
        return out.to(like.device)


def seeded_draws(p: float, like: torch.Tensor) -> bool:
    """Whether the C generator draws Bernoulli(``p``) values for ``like`` from a seed: ``0 < p <
    1``, the kernels serve ``like``, and nothing traces the call (:func:`tracing`)."""
    return 0.0 < p < 1.0 and not tracing() and available(like)


def bernoulli_draws(
    shape: tuple[int, ...], p: float, like: torch.Tensor, seed: int | None = None
) -> BernoulliDraws | None:
    """:class:`BernoulliDraws` of ``shape`` at ``seed`` (by default drawn from torch's
    generator), or None where :func:`bernoulli` returns None."""
    if not seeded_draws(p, like):
        return None
    return BernoulliDraws(tuple(shape), float(p), draw_seed() if seed is None else seed)


def _keep(k, like: torch.Tensor) -> tuple[Keep, torch.Tensor | None]:
    """The C view of lerp weights: a ``(T, N, C)`` / ``(T, N, 1)`` tensor, :class:`BernoulliDraws`
    of ``(T, N, C)``, a float or None."""
    if k is None:
        return Keep(None, 0, 0, 0, 0.0), None
    if isinstance(k, BernoulliDraws):
        _, n, c = k.shape
        return Keep(None, n * c, c, 1, k.p, 1, k.seed), None
    if not isinstance(k, torch.Tensor):
        return Keep(None, 0, 0, 0, float(k)), None
    k = k.to(like.dtype)
    if k.shape[-1] > 1 and k.stride(-1) != 1:
        k = k.contiguous()  # the kernels read a row with stride 1, or one weight per row
    st, sn, _ = k.stride()
    return Keep(k.data_ptr(), st, sn, int(k.shape[-1] > 1), 0.0), k


def make_context(aux, h0: torch.Tensor, **fields) -> tuple[StepCtx, list]:
    """A :class:`StepCtx` for one direction: sizes from ``h0 (N, H)``, the mask and lerp weights
    from ``aux`` (:class:`rnnkit.backends.sequence.Aux`), and ``fields`` by name (a tensor is passed
    as its data pointer, None as NULL, an int as is). Returns it and a list holding every tensor it
    points into: keep that list referenced for as long as the context is used."""
    n, hid = h0.shape
    kh, kh_t = _keep(aux.keep_h, h0)
    kc, kc_t = _keep(aux.keep_c, h0)
    ctx = StepCtx(N=n, H=hid, kh=kh, kc=kc, relu=int(aux.nonlinearity == "relu"),
                  nthreads=torch.get_num_threads())  # fmt: skip
    ctx.part_off[:] = [-1] * len(SUMS)
    ctx.h0 = h0.data_ptr()
    ctx.mask = None if aux.mask is None else aux.mask.data_ptr()
    alive = [kh_t, kc_t, h0, aux.mask]
    for name, value in fields.items():
        if isinstance(value, torch.Tensor):
            alive.append(value)
            value = value.data_ptr()
        setattr(ctx, name, value)
    if fields.get("lnc_w") is not None or fields.get("lnc_b") is not None:
        ctx.has_lnc = 1
    return ctx, alive


def thread_sums(ctx: StepCtx, fields: dict, alive: list):
    """Rows of their own for the gradient sums (:data:`SUMS` in ``fields``) of threads 1.. of the
    backward step kernels, which split each step's batch rows; returns the function that adds
    those rows into the sums after the loop (a no-op on one thread)."""
    present = [(i, fields[name]) for i, name in enumerate(SUMS) if fields.get(name) is not None]
    if ctx.nthreads <= 1 or not present:
        return lambda: None
    total, parts = 0, []
    for i, grad in present:
        ctx.part_off[i] = total
        parts.append((grad, total))
        total += grad.numel()
    partials = grad.new_zeros(ctx.nthreads - 1, total)  # (threads - 1, sums)
    ctx.partials, ctx.part_len = partials.data_ptr(), total
    alive.append(partials)

    def add_up() -> None:
        sums = partials.sum(0)
        for grad, off in parts:
            grad.view(-1).add_(sums[off : off + grad.numel()])

    return add_up


def define_ops(*ops) -> None:
    """Register each ``(fn, fake)`` as the CPU op ``torch.ops.rnnkit.<fn's name>``, its schema
    inferred from ``fn``'s annotations, with ``fake`` as its fake (meta) implementation."""
    for fn, fake in ops:
        name = f"rnnkit::{fn.__name__}"
        torch.library.define(name, torch.library.infer_schema(fn, mutates_args=()))
        torch.library.impl(name, "CPU", fn)
        torch.library.register_fake(name, fake)


def kernel(name: str, dtype: torch.dtype):
    """The C function ``{name}_{f32|f64}``: ``{lstm,gru,rnn}_{fwd,bwd}``, the time loops
    ``{lstm,gru}_{fwd,bwd}_seq``, ``bwd_finish``, ``bernoulli``."""
    lib = library(dtype)
    if lib is None:
        raise RuntimeError("rnnkit CPU kernels are unavailable: call available() first")
    return getattr(lib, f"{name}_{SUFFIX[dtype]}")
