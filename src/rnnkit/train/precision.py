"""The training step's precision: float32, or bfloat16 autocast (mixed precision: the GEMMs and the
recurrent kernels in bfloat16 with float32 weights, optimizer and loss; Kalamkar et al. 2019, "A
Study of BFLOAT16 for Deep Learning Training").

``precision`` is ``"float32"``, ``"bfloat16"`` or ``"auto"``: bfloat16 where the device computes it
natively (a CPU with AVX512-BF16 or AMX-BF16, a CUDA GPU that supports it), else float32; a CPU
without those instructions emulates bfloat16, slower than float32. Only training steps use it:
evaluation, checkpoints and the weights stay float32.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch

PRECISIONS = ("float32", "bfloat16", "auto")


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 GEMMs natively."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())
    return False


def training_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training step for ``precision`` on ``device``; None: float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bfloat16" or (precision == "auto" and native_bfloat16(device)):
        return torch.bfloat16
    return None


@contextlib.contextmanager
def autocast(dtype: torch.dtype | None, device: torch.device) -> Iterator[None]:
    """``torch.autocast`` to ``dtype`` on ``device``'s type; nothing for None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield
