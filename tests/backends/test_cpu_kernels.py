"""rnnkit.cpu_kernels: the C step kernels build once, are cached, can be switched off, and its
Bernoulli generator draws what it should."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

import rnnkit
from rnnkit.backends import cpu_kernels

needs_cc = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler"
)


@needs_cc
def test_library_builds_where_a_compiler_exists():
    assert cpu_kernels.library() is not None
    assert cpu_kernels.available(torch.zeros(1))
    assert cpu_kernels.available(torch.zeros(1, dtype=torch.float64))
    assert not cpu_kernels.available(torch.zeros(1, dtype=torch.float16))


def _probe(env: dict[str, str]) -> str:
    code = (
        "import torch; from rnnkit.backends import cpu_kernels;"
        "print(cpu_kernels.available(torch.zeros(1)))"
    )
    env = {"RNNKIT_PREBUILT_KERNELS": "0", **env}  # these tests are about the cache
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return run.stdout.strip()


@needs_cc
def test_compiled_once_into_the_cache_then_reused(tmp_path):
    env = {"RNNKIT_CACHE_DIR": str(tmp_path)}
    assert _probe(env) == "True"
    (built,) = (tmp_path / "kernels").glob("rnnkit_cpu_f32_*.so")
    stamp = built.stat().st_mtime_ns
    assert _probe(env) == "True"
    assert built.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    # no temp files left: the library and its build record
    assert sorted(p.name for p in (tmp_path / "kernels").iterdir()) == sorted(
        [built.name, built.with_suffix(".json").name]
    )


@needs_cc
@pytest.mark.parametrize("damage", ["truncated", "replaced", "no record"])
def test_a_damaged_cached_library_is_rebuilt_not_loaded(tmp_path, damage):
    """A library truncated in the cache used to crash every later process (SIGBUS); one replaced
    by another file gave an AttributeError. It is now checked against its build record (size,
    SHA-256) and rebuilt, with one warning."""
    env = {"RNNKIT_CACHE_DIR": str(tmp_path)}
    assert _probe(env) == "True"
    (built,) = (tmp_path / "kernels").glob("rnnkit_cpu_f32_*.so")
    good = built.read_bytes()
    if damage == "truncated":
        built.write_bytes(good[:20_000])
    elif damage == "replaced":
        shutil.copy(shutil.which("true") or "/bin/true", built)
    else:
        built.with_suffix(".json").unlink()
    code = (
        "import torch; from rnnkit.backends import cpu_kernels;"
        "print(cpu_kernels.available(torch.zeros(1)))"
    )
    env = {"RNNKIT_PREBUILT_KERNELS": "0", **env}
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "True"
    assert "rebuilding" in run.stderr
    assert built.read_bytes() == good


@pytest.mark.parametrize("value,on", [("0", False), ("false", False), ("Off", False), ("no", False),
                                      ("1", True), ("true", True), ("", True)])  # fmt: skip
def test_the_switch_reads_the_usual_spellings(monkeypatch, value, on):
    monkeypatch.setenv("RNNKIT_CPU_KERNELS", value)
    assert cpu_kernels.enabled() is on
    if not on:
        assert not cpu_kernels.available(torch.zeros(1))


def test_a_misspelt_switch_is_an_error_naming_the_choices(monkeypatch):
    monkeypatch.setenv("RNNKIT_CPU_KERNELS", "maybe")
    with pytest.raises(ValueError, match="RNNKIT_CPU_KERNELS must be one of.*'maybe'"):
        cpu_kernels.enabled()


@needs_cc
def test_cc_with_flags_is_split_like_a_shell_word_list(tmp_path):
    """``CC="gcc -O0"`` is a compiler and a flag (it used to be taken as one path, and the
    kernels silently fell back)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert _probe({"CC": f"{cc} -O0", "RNNKIT_CACHE_DIR": str(tmp_path)}) == "True"


def test_switched_off_or_without_a_compiler_the_layers_still_run(tmp_path):
    assert _probe({"RNNKIT_CPU_KERNELS": "0"}) == "False"
    assert (
        _probe({"CC": str(tmp_path / "no-such-cc"), "RNNKIT_CACHE_DIR": str(tmp_path)}) == "False"
    )
    code = (
        "import torch, rnnkit; torch.manual_seed(0);"
        "m = rnnkit.LSTM(3, 4, layer_norm=True, peephole=True);"
        "out, _ = m(torch.randn(5, 2, 3)); out.sum().backward();"
        "print(type(out.grad_fn).__name__)"
    )
    env = {**os.environ, "RNNKIT_CPU_KERNELS": "0"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True)  # fmt: skip
    assert "KernelLSTM" not in run.stdout


@needs_cc
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bernoulli_draws_zeros_and_ones_at_the_rate(dtype):
    like = torch.zeros(1, dtype=dtype)
    torch.manual_seed(0)
    m = cpu_kernels.bernoulli((400, 50, 50), 0.3, like)
    assert m.dtype == dtype and m.shape == (400, 50, 50)
    assert set(m.unique().tolist()) == {0.0, 1.0}
    n = m.numel()
    assert abs(m.mean().item() - 0.3) < 5 * (0.3 * 0.7 / n) ** 0.5
    # neighbours are independent: P(both) = p^2
    both = (m.view(-1)[:-1] * m.view(-1)[1:]).mean().item()
    assert abs(both - 0.09) < 5 * (0.09 * 0.91 / n) ** 0.5


@needs_cc
def test_bernoulli_follows_torch_manual_seed():
    like = torch.zeros(1)
    torch.manual_seed(7)
    a = cpu_kernels.bernoulli((100,), 0.5, like)
    b = cpu_kernels.bernoulli((100,), 0.5, like)
    torch.manual_seed(7)
    c = cpu_kernels.bernoulli((100,), 0.5, like)
    assert torch.equal(a, c) and not torch.equal(a, b)


def test_bernoulli_declines_what_it_does_not_serve():
    assert cpu_kernels.bernoulli((3,), 0.0, torch.zeros(1)) is None
    assert cpu_kernels.bernoulli((3,), 1.0, torch.zeros(1)) is None
    assert cpu_kernels.bernoulli((3,), 0.5, torch.zeros(1, dtype=torch.int64)) is None


def test_zoneout_and_dropout_masks_keep_their_rates():
    torch.manual_seed(0)
    m = rnnkit.regularization.zoneout_masks(200, (20, 50), 0.25, torch.zeros(1))
    assert abs(m.mean().item() - 0.25) < 0.01
    keep = rnnkit.regularization.dropout_mask((200, 500), 0.4, torch.zeros(1))
    values = keep.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.6)
    assert abs(keep.mean().item() - 1.0) < 0.02


@needs_cc
def test_drop_connect_redraws_its_mask_in_backward():
    """The seeded DropConnect keeps no mask: its gradient is the same mask, drawn again."""
    w = torch.randn(40, 30, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(3)
    dropped = rnnkit.regularization.drop_connect(w, 0.4)
    kept = dropped != 0
    assert 0.5 < kept.double().mean().item() < 0.7
    torch.testing.assert_close(dropped[kept], w[kept] / 0.6)
    (g,) = torch.autograd.grad((dropped * 2).sum(), [w])
    torch.testing.assert_close(g, kept.double() * 2 / 0.6)
    torch.manual_seed(3)
    assert torch.equal(rnnkit.regularization.drop_connect(w, 0.4), dropped)

    def seeded(v):
        torch.manual_seed(5)  # the same mask at every evaluation of gradcheck
        return rnnkit.regularization.drop_connect(v, 0.4)

    assert torch.autograd.gradcheck(seeded, (w[:4, :3].detach().requires_grad_(),))


@needs_cc
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(800, 200), (33, 70), (1, 5)])
def test_transposed_is_the_row_major_transpose(dtype, shape):
    w = torch.randn(*shape, dtype=dtype)
    wt = cpu_kernels.transposed(w)
    assert wt.is_contiguous() and torch.equal(wt, w.t())
    assert torch.equal(cpu_kernels.transposed(w.t()), w)  # a non-contiguous input: torch's copy


def test_cc_with_an_unbalanced_quote_falls_back_with_a_warning(tmp_path):
    assert _probe({"CC": 'gcc "-O0', "RNNKIT_CACHE_DIR": str(tmp_path)}) == "False"


@needs_cc
def test_built_at_install_time_then_loaded_without_compiling(tmp_path, monkeypatch):
    """setup.py builds the kernels into prebuilt/ (build.prebuild); a process then loads them from
    there and compiles nothing into its cache."""
    from rnnkit.backends.cpu_kernels import build

    monkeypatch.setattr(build, "SUFFIXES", ("f32",))
    folder = tmp_path / "prebuilt"
    assert build.prebuild(folder) == []
    (built,) = folder.glob("rnnkit_cpu_f32_*.so")
    assert build.intact(built)
    assert build.prebuild(folder) == []  # already there: not rebuilt
    assert list(folder.glob("*.so")) == [built]
    code = (
        "import importlib, pathlib, torch; from rnnkit.backends.cpu_kernels import build;"
        f"build.PREBUILT_DIR = pathlib.Path({str(folder)!r});"
        "loader = importlib.import_module('rnnkit.backends.cpu_kernels.library');"
        "lib = loader.library(torch.float32); print(lib is not None, lib._name)"
    )
    cache = tmp_path / "cache"
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ,
                         "RNNKIT_CACHE_DIR": str(cache)}, capture_output=True, text=True,
                         timeout=60, check=True)  # fmt: skip
    assert run.stdout.split() == ["True", str(built)]
    assert not cache.exists()  # nothing compiled


def test_without_a_compiler_nothing_is_prebuilt(tmp_path, monkeypatch):
    from rnnkit.backends.cpu_kernels import build

    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    problems = build.prebuild(tmp_path / "prebuilt")
    assert len(problems) == len(build.SUFFIXES)
    assert not list((tmp_path / "prebuilt").glob("*.so"))
