"""Seeding and capturing every random number generator a training step may touch.

The captured state is a plain tree (lists, ints, uint8 tensors) that ``checkpoint.py`` stores without
pickle: Python's and NumPy's Mersenne Twister states as JSON integers, torch's CPU and CUDA generator
states as ``uint8`` tensors.
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
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds all CUDA devices


def capture_rng_state() -> dict[str, Any]:
    """The state of every generator ``seed_everything`` seeds, as a JSON-plus-tensors tree."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``capture_rng_state`` returned (after a round trip through a checkpoint)."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].to("cpu", torch.uint8))
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available():
        count = torch.cuda.device_count()
        if len(cuda) != count:
            logger.warning(
                "checkpoint holds RNG states for %d CUDA devices, this process sees %d: "
                "restoring the first %d",
                len(cuda),
                count,
                min(len(cuda), count),
            )
        for index, t in enumerate(cuda[:count]):
            torch.cuda.set_rng_state(t.to("cpu", torch.uint8), device=index)
