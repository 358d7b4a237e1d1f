"""Seeding and capturing every random number generator a training step may touch.

The captured state is a plain tree (lists, ints, uint8 tensors) that ``checkpoint/`` stores
without pickle: Python's and NumPy's Mersenne Twister states as JSON integers, torch's CPU and CUDA
generator states as ``uint8`` tensors. NumPy's legacy global generator is the one seeded: it is
what third-party code calling ``np.random.*`` draws from.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)  # also seeds all CUDA devices


def capture_rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """The state of every generator ``seed_everything`` seeds, as a JSON-plus-tensors tree.

    The CUDA generator is captured only for ``device`` when it is a CUDA device (each DDP rank owns
    one GPU; touching the others would create a context on each of them).
    """
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    cuda = device is not None and device.type == "cuda"
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(device)] if cuda else [],
    }


def restore_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore what ``capture_rng_state(device)`` returned (after a round trip through a
    checkpoint); the CUDA state, if any, goes to ``device``."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(state["torch"].to("cpu", torch.uint8))
    cuda = list(state.get("cuda") or [])
    if cuda:
        if device is None or device.type != "cuda":
            logger.warning("checkpoint holds a CUDA RNG state; this run is not on CUDA: ignored")
            return
        torch.cuda.set_rng_state(cuda[0].to("cpu", torch.uint8), device=device)
