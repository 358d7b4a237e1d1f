"""Freed tensor memory kept in the process for the next step, instead of handed back to the OS.

A training step on the CPU allocates and frees the same large buffers every time (a word-level
softmax's ``(T*N, V)`` logits and their gradient are 40 MB each at ``V`` = 14k). glibc's
``malloc`` serves blocks above its threshold (at most 32 MB) with ``mmap`` and returns them with
``munmap``, and trims the top of its heap when it is freed, so each step meets those pages anew:
the kernel zero-fills every 4 KB page on its first touch. Measured on the AMD EPYC of
``docs/lm.md``, one forward+backward of a ``700 x 200 -> 14,143`` softmax layer with its
cross-entropy: 190 ms with the default settings, 104-118 ms with freed memory kept (the
cross-entropy alone 49 -> 13-15 ms).

:func:`keep_freed_memory` sets glibc's ``M_MMAP_MAX`` to 0 (no ``mmap`` for large blocks: they come
from the heap and are reused) and raises ``M_TRIM_THRESHOLD`` and ``M_TOP_PAD``; the process then
keeps its peak memory until it exits, as torch's CUDA caching allocator does on a GPU. rnnkit's
trainer and the ``rnnkit`` command call it; a program of one's own may call it too.
``RNNKIT_KEEP_FREED_MEMORY=0`` turns it off, and glibc's own ``MALLOC_MMAP_MAX_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_`` or ``MALLOC_MMAP_THRESHOLD_`` in the environment
leave glibc as they say. Elsewhere than glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4  # mallopt's parameters (malloc.h)
TOP_PAD = 64 << 20  # grow the heap 64 MB at a time
GLIBC_ENV = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
             "MALLOC_MMAP_THRESHOLD_")  # fmt: skip


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - glibc has it, musl and macOS do not
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc keep freed memory in the process (see the module); whether it now does. Once per
    process; a no-op where the environment says otherwise or the C library is not glibc."""
    if os.environ.get("RNNKIT_KEEP_FREED_MEMORY", "1") == "0":
        return False
    if any(name in os.environ for name in GLIBC_ENV):
        return False
    libc = _glibc()
    if libc is None:
        return False
    done = all(libc.mallopt(param, value) == 1 for param, value in
               ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1), (M_TOP_PAD, TOP_PAD)))  # fmt: skip
    log.debug("rnnkit: freed memory kept in the process: %s", done)
    return done
