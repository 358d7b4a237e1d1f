"""MKL's reproducible mode, which exact resume needs (rnnkit.reproducibility); the trainer's warning
without it is in tests/train/test_signals.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rnnkit import reproducibility

pytestmark = pytest.mark.skipif(reproducibility._mkl() is None, reason="torch has no MKL here")
REPORT = "from rnnkit.reproducibility import blas_is_reproducible as r; print(r())"


def _python(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"} | env
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, timeout=120, check=True)  # fmt: skip
    return done.stdout.strip()


def test_importing_rnnkit_turns_on_the_reproducible_mode():
    assert reproducibility.blas_is_reproducible()  # this process imported rnnkit first
    assert _python(f"import torch, rnnkit; {REPORT}") == "True"


def test_once_mkl_has_computed_the_mode_stays_off():
    code = f"import torch; a = torch.randn(64, 64); a @ a; import rnnkit; {REPORT}"
    assert _python(code) == "False"


def test_mkl_cbwr_set_by_the_user_is_left_alone():
    assert _python(f"import rnnkit; {REPORT}", MKL_CBWR="AVX2") == "True"  # the user's own branch
