"""Large CPU buffers of the kernels on transparent huge pages.

glibc serves an allocation of 32 MiB or more (its largest ``mmap`` threshold) with a fresh
``mmap`` every time, so a call that makes such a buffer takes a page fault for each 4 KiB page
when it first writes it: a T=1024 minLSTM's gradient buffer ``(T, N, 3H)`` of 48 MiB took ~17 ms
to fill on the AMD EPYC VM of ``docs/cells.md``, ~3 ms on 2 MiB pages. Where Linux lets a process
ask for them (``/sys/kernel/mm/transparent_hugepage/enabled`` set to ``madvise`` or ``always``),
:func:`empty` asks with ``madvise(MADV_HUGEPAGE)`` before anything touches the buffer. Smaller
tensors come from glibc's heap, mapped once and reused, and are left alone.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from pathlib import Path

from torch import Tensor

MIN_BYTES = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: always a fresh mmap
PAGE = 2 << 20  # a transparent huge page on x86-64 and aarch64 (4 KiB base pages)
_MADV_HUGEPAGE = 14
_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


@functools.cache
def _madvise():
    """libc's ``madvise`` where huge pages can be asked for, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if "[never]" in _THP_MODE.read_text():
            return None
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def advise(t: Tensor) -> bool:
    """Asks for huge pages under the whole 2 MiB pages of ``t``'s memory (a CPU tensor of at
    least :data:`MIN_BYTES`, not yet written: pages already touched stay as they are); whether
    the kernel took the request."""
    nbytes = t.numel() * t.element_size()
    if t.device.type != "cpu" or nbytes < MIN_BYTES or (madvise := _madvise()) is None:
        return False
    try:
        ptr = t.data_ptr()
    except RuntimeError:  # no storage (a fake or functional tensor)
        return False
    start, end = -(-ptr // PAGE) * PAGE, (ptr + nbytes) // PAGE * PAGE
    return end > start and madvise(start, end - start, _MADV_HUGEPAGE) == 0


def empty(like: Tensor, *shape: int) -> Tensor:
    """``like.new_empty(shape)``, on huge pages where :func:`advise` serves it."""
    out = like.new_empty(shape)
    advise(out)
    return out
