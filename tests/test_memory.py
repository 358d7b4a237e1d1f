"""rnnkit.memory: freed large buffers stay in the process (fewer page faults per step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rnnkit import memory

PROBE = """
import json, resource, torch
from rnnkit.memory import keep_freed_memory
kept = keep_freed_memory()
def touch():  # a fresh 64 MB tensor, written once, as a softmax's logits are each step
    torch.empty(16 << 20).fill_(1.0)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in memory.GLIBC_ENV}
    clean.pop("RNNKIT_KEEP_FREED_MEMORY", None)
    done = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.skipif(memory._glibc() is None, reason="glibc's mallopt only")
def test_a_freed_buffer_is_reused_without_page_faults():
    pages = (64 << 20) // 4096
    default = probe(RNNKIT_KEEP_FREED_MEMORY="0")
    assert default == {"kept": False, "faults": default["faults"]}
    assert default["faults"] > pages // 2  # glibc returned the block: every page faults again
    kept = probe()
    assert kept["kept"] and kept["faults"] < pages // 20


def test_glibc_settings_in_the_environment_are_left_alone():
    assert probe(MALLOC_TOP_PAD_="0")["kept"] is False
