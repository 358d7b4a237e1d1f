"""rnnkit.memory: freed large buffers stay in the process (fewer page faults per step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rnnkit import memory

STEPS = 5
PROBE = f"""
import json, resource, torch
from rnnkit.memory import keep_freed_memory
kept = keep_freed_memory()
def touch():  # a fresh 64 MB tensor, written once, as a softmax's logits are each step
    torch.empty(16 << 20).fill_(1.0)
touch()
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range({STEPS}):
    touch()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({{"kept": kept, "faults": faults}}))
"""


def probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in memory.GLIBC_ENV}
    clean.pop("RNNKIT_KEEP_FREED_MEMORY", None)
    done = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.skipif(memory._glibc() is None, reason="glibc's mallopt only")
def test_a_freed_buffer_is_reused_without_page_faults():
    pages = (64 << 20) // 4096  # of one buffer
    default = probe(RNNKIT_KEEP_FREED_MEMORY="0")
    assert default == {"kept": False, "faults": default["faults"]}
    assert default["faults"] >= STEPS * pages  # glibc returned the block: every page faults again
    kept = probe()
    # reused: measured 0 or one buffer's pages over the 5 steps (a small block allocated in
    # between can split the freed one once)
    assert kept["kept"] and kept["faults"] < STEPS * pages / 2


def test_glibc_settings_in_the_environment_are_left_alone():
    assert probe(MALLOC_TOP_PAD_="0")["kept"] is False
