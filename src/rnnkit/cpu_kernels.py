"""rnnkit's CPU kernels (``csrc/``): the gate math of one time step, fused into one C call.

torch.nn's CPU LSTM runs each step as one GEMM plus one fused elementwise kernel; a variant written
in torch ops needs about ten elementwise calls per step, each a few microseconds of dispatch and a
pass over memory. The C kernels here do one step's whole elementwise work (gates, layer norms,
peepholes, zoneout, ``lengths``, the recurrent-dropout mask of the next GEMM's input) in one call
through :mod:`ctypes` (~0.5 us), between the per-step GEMMs that torch runs.

The library is compiled on first use with the system C compiler (``$CC`` or ``cc``) for this CPU
(``-march=native``, vector math from glibc's libmvec), about half a second, and cached under
``$RNNKIT_CACHE_DIR`` (default ``~/.cache/rnnkit``) keyed by the sources, the flags and the CPU.
Where no compiler works, or with ``RNNKIT_CPU_KERNELS=0``, :func:`library` returns None and the
fused layers run their torch-op implementation instead (:mod:`rnnkit.fused_lstm`).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

__all__ = ["Keep", "LstmCtx", "available", "bernoulli", "library", "lstm_kernel"]

logger = logging.getLogger(__name__)

ABI_VERSION = 2
SOURCE_DIR = Path(__file__).parent / "csrc"
SOURCES = ("rnnkit_cpu.c", "rnnkit_cpu.h", "lstm_template.h")
FLAGS = ("-O2", "-ftree-vectorize", "-march=native", "-ffast-math", "-fopenmp-simd", "-fPIC",
         "-shared")  # fmt: skip
SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


class Keep(ctypes.Structure):
    """Lerp weights ``k`` of a blend ``lerp(new, prev, k)`` (``rnnkit_cpu.h``)."""

    _fields_ = [
        ("p", ctypes.c_void_p),
        ("st", ctypes.c_long),
        ("sn", ctypes.c_long),
        ("sj", ctypes.c_long),
        ("val", ctypes.c_double),
    ]


_P = ctypes.c_void_p


class LstmCtx(ctypes.Structure):
    """The buffers of one LSTM direction, as ``LstmCtx`` in ``rnnkit_cpu.h``."""

    _fields_ = [
        ("N", ctypes.c_long),
        ("H", ctypes.c_long),
        *(
            (name, _P)
            for name in (
                "gx",
                "bias",
                "ln_ih",
                "ln_w",
                "peep",
                "lnc_w",
                "lnc_b",
                "mask",
                "h0",
                "c0",
            )
        ),
        ("has_lnc", ctypes.c_long),
        ("kh", Keep),
        ("kc", Keep),
        *((name, _P) for name in ("hs", "cs", "cn", "acts", "xhat", "stats", "hm")),
        *((name, ctypes.c_long) for name in ("cn_st", "acts_st", "xhat_st", "stats_st")),
        *(
            (name, _P)
            for name in (
                "dout",
                "dhk",
                "dc",
                "dz",
                "da",
                "dgx",
                "g_peep",
                "g_lnc_w",
                "g_lnc_b",
                "g_ln_w",
                "g_ln_ih",
            )
        ),  # fmt: skip
    ]


def _cpu_signature() -> str:
    """What ``-march=native`` depends on: the machine and the CPU's feature flags."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features", "model name")):
                flags += line
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        pass
    return f"{platform.machine()}|{platform.processor()}|{flags}"


def cache_dir() -> Path:
    root = os.environ.get("RNNKIT_CACHE_DIR") or Path.home() / ".cache" / "rnnkit"
    return Path(root) / "kernels"


def _library_path(compiler: str) -> Path:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update((SOURCE_DIR / name).read_bytes())
    digest.update(" ".join((compiler, *FLAGS, _cpu_signature(), str(ABI_VERSION))).encode())
    return cache_dir() / f"rnnkit_cpu_{digest.hexdigest()[:16]}.so"


def _compile(compiler: str, target: Path) -> None:
    """Compile into a temporary file next to ``target``, then rename: concurrent processes (DDP
    ranks) may race, and each sees either no file or a whole one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    cmd = [compiler, *FLAGS, f"-I{SOURCE_DIR}", str(SOURCE_DIR / "rnnkit_cpu.c"), "-o", tmp, "-lm"]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on the first call and cached on disk; None when unavailable."""
    if os.environ.get("RNNKIT_CPU_KERNELS", "1") == "0":
        return None
    if sys.platform == "win32":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        logger.info("rnnkit CPU kernels: no C compiler found; fused layers use torch ops")
        return None
    target = _library_path(compiler)
    try:
        if not target.exists():
            logger.info("rnnkit CPU kernels: compiling %s", target)
            _compile(compiler, target)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", "") or err
        logger.warning("rnnkit CPU kernels unavailable (%s); fused layers use torch ops", detail)
        return None
    lib.rnnkit_abi_version.restype = ctypes.c_long
    if lib.rnnkit_abi_version() != ABI_VERSION:  # pragma: no cover - a stale file under the name
        logger.warning("rnnkit CPU kernels: ABI mismatch in %s; fused layers use torch ops", target)
        return None
    for suffix in SUFFIX.values():
        for name in ("lstm_fwd", "lstm_bwd"):
            fn = getattr(lib, f"{name}_{suffix}")
            fn.argtypes = [ctypes.POINTER(LstmCtx), ctypes.c_long, ctypes.c_long, _P]
            fn.restype = None
        fin = getattr(lib, f"lstm_bwd_finish_{suffix}")
        fin.argtypes = [ctypes.POINTER(LstmCtx), _P, _P]
        fin.restype = None
        bern = getattr(lib, f"bernoulli_{suffix}")
        bern.argtypes = [_P, ctypes.c_long, ctypes.c_double, ctypes.c_ulonglong]
        bern.restype = None
    return lib


def available(like: torch.Tensor) -> bool:
    """Whether the kernels serve tensors like ``like`` (CPU, float32 or float64)."""
    return like.device.type == "cpu" and like.dtype in SUFFIX and library() is not None


def bernoulli(shape: tuple[int, ...], p: float, like: torch.Tensor) -> torch.Tensor | None:
    """A ``shape`` tensor of Bernoulli(``p``) draws (1 with probability ``p``) in ``like``'s dtype,
    from the C counter-based generator seeded from torch's global generator (so
    ``torch.manual_seed`` reproduces it); None where the kernels do not serve ``like``."""
    if not (0.0 < p < 1.0) or not available(like):
        return None
    out = torch.empty(shape, dtype=like.dtype)
    seed = int(torch.randint(0, 2**62, ()).item())
    lstm_kernel("bernoulli", like.dtype)(out.data_ptr(), out.numel(), p, seed)
    return out


def lstm_kernel(name: str, dtype: torch.dtype):
    """The C function ``{name}_{f32|f64}`` (``lstm_fwd``, ``lstm_bwd``, ``lstm_bwd_finish``,
    ``bernoulli``)."""
    lib = library()
    assert lib is not None, "call available() first"
    return getattr(lib, f"{name}_{SUFFIX[dtype]}")
