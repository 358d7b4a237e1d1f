"""Bitwise-reproducible BLAS, which exact resume needs (``rnnkit.train``).

MKL, the BLAS of torch's x86 CPU builds, runs by default with its reproducibility control off:
on some CPUs (AMD EPYC here) its GEMMs then round differently from one call to the next with the
same operands, so a run resumed from a checkpoint drifts from the run that was never stopped
(by one unit in the last place after a few steps, then more). MKL's "conditional numerical
reproducibility" in strict mode (``MKL_CBWR=AUTO,STRICT``) gives the same bits for the same
inputs on the same machine, at no measured cost for a recurrent layer's GEMMs
(``docs/benchmarks.md``). MKL takes the mode only before its first computation, so
``import rnnkit`` sets it then (:func:`request_reproducible_blas`) unless ``MKL_CBWR`` says
otherwise; :func:`blas_is_reproducible` tells the trainer whether it took.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

import torch

CBWR_BRANCH = 1  # mkl_cbwr_get(MKL_CBWR_BRANCH): the current mode
CBWR_OFF = 1  # MKL_CBWR_OFF
CBWR_AUTO_STRICT = 2 | 0x10000  # MKL_CBWR_AUTO | MKL_CBWR_STRICT


@functools.cache
def _mkl() -> ctypes.CDLL | None:
    """torch's CPU library where it carries MKL's service functions, else None."""
    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        get, put = lib.mkl_serv_cbwr_get, lib.mkl_serv_cbwr_set
    except (OSError, AttributeError):
        return None
    get.argtypes, get.restype = [ctypes.c_int], ctypes.c_int
    put.argtypes, put.restype = [ctypes.c_int], ctypes.c_int
    return lib


def request_reproducible_blas() -> bool:
    """Put MKL in strict reproducible mode if it has not computed yet and ``MKL_CBWR`` is unset;
    whether MKL is in a reproducible mode afterwards (True where torch has no MKL)."""
    lib = _mkl()
    if lib is None:
        return True
    if "MKL_CBWR" not in os.environ and lib.mkl_serv_cbwr_get(CBWR_BRANCH) == CBWR_OFF:
        lib.mkl_serv_cbwr_set(CBWR_AUTO_STRICT)  # fails (and changes nothing) once MKL has run
    return blas_is_reproducible()


def blas_is_reproducible() -> bool:
    """Whether torch's MKL (if any) gives the same bits for the same GEMM every time here."""
    lib = _mkl()
    return lib is None or lib.mkl_serv_cbwr_get(CBWR_BRANCH) != CBWR_OFF
