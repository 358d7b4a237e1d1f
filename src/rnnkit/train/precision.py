"""The training step's precision: float32, or bfloat16 autocast (mixed precision: the GEMMs and the
recurrent kernels in bfloat16 with float32 weights, optimizer and loss; Kalamkar et al. 2019, "A
Study of BFLOAT16 for Deep Learning Training").

``precision`` is ``"float32"``, ``"bfloat16"`` or ``"auto"``: bfloat16 where the device computes it
natively (a CPU with AVX512-BF16 or AMX-BF16, a CUDA GPU that supports it), else float32; a CPU
without those instructions emulates bfloat16, slower than float32. Only training steps use it:
evaluation, checkpoints and the weights stay float32.
"""

from __future__ import annotations

import torch

PRECISIONS = ("float32", "bfloat16", "auto")


def _cpu_has_bfloat16() -> bool:
    """AVX512-BF16 or AMX on this CPU, as torch's own CPU detection reports them."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 GEMMs natively."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _cpu_has_bfloat16()
    return False


def training_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training step for ``precision`` on ``device``; None: float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bfloat16" or (precision == "auto" and native_bfloat16(device)):
        return torch.bfloat16
    return None
