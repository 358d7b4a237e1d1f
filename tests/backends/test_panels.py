"""rnnkit's own GEMM (cpu_kernels.panels, csrc/panel_gemm.h) against torch.mm, and the time loops on
each per-step GEMM choice (BLAS, panels, oneDNN) against the reference loop in float64."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.backends import cpu_kernels, gemm
from rnnkit.backends.cpu_kernels import lstm as kernel_lstm
from rnnkit.backends.cpu_kernels.panels import matmul, pack

pytestmark = pytest.mark.skipif(
    cpu_kernels.library(torch.float32) is None, reason="the C kernels do not build here"
)

TOL = {torch.float32: dict(atol=1e-4, rtol=1e-4), torch.float64: dict(atol=1e-11, rtol=1e-11)}
SHAPES = [(1, 1, 1), (5, 33, 3), (6, 256, 32), (7, 257, 33), (13, 600, 31), (20, 128, 512),
          (700, 20, 100), (3, 1, 70)]  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_matmul_equals_torch_mm(dtype, m, k, n):
    """Every row-tile remainder, panel tail and k block: a b, a^T-as-view b, and out += a b."""
    gen = torch.Generator().manual_seed(m * 1000 + k + n)
    a = torch.randn(m, k, generator=gen, dtype=dtype)
    b = torch.randn(k, n, generator=gen, dtype=dtype)
    torch.testing.assert_close(matmul(a, pack(b)), a @ b, **TOL[dtype])
    at = torch.randn(k, m, generator=gen, dtype=dtype).t()  # strides (1, m)
    bt = torch.randn(n, k, generator=gen, dtype=dtype).t()  # packed through its strides
    torch.testing.assert_close(matmul(at, pack(bt)), at @ bt, **TOL[dtype])
    out = torch.randn(m, n, generator=gen, dtype=dtype)
    expected = out + a @ b
    assert matmul(a, pack(b), out=out, accumulate=True) is out
    torch.testing.assert_close(out, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("m,k,n", [*SHAPES, (4, 0, 37)])
def test_matmul_with_a_bias_equals_torch_addmm(dtype, m, k, n):
    """The bias starts the kernel's sums: every tile remainder, panel tail (a partial last panel
    loads only its ``w`` bias values) and k block (the bias enters once, not once per block)."""
    gen = torch.Generator().manual_seed(m * 1000 + k + n + 1)
    a = torch.randn(m, k, generator=gen, dtype=dtype)
    b = torch.randn(k, n, generator=gen, dtype=dtype)
    bias = torch.randn(n, generator=gen, dtype=dtype)
    torch.testing.assert_close(matmul(a, pack(b), bias=bias), torch.addmm(bias, a, b), **TOL[dtype])
    at = torch.randn(k, m, generator=gen, dtype=dtype).t()
    out = torch.full((m, n), float("nan"), dtype=dtype)  # every value written, none read
    assert matmul(at, pack(b), out=out, bias=bias) is out
    torch.testing.assert_close(out, torch.addmm(bias, at, b), **TOL[dtype])


def test_matmul_bias_propagates_nan_and_inf_as_addmm_and_is_checked():
    a, b, bias = torch.randn(8, 40), torch.randn(40, 70), torch.randn(70)
    bias[3], bias[66] = float("nan"), float("-inf")
    got, want = matmul(a, pack(b), bias=bias), torch.addmm(bias, a, b)
    assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.isinf(), want.isinf())
    bp = pack(b)
    with pytest.raises(ValueError, match=r"bias must be \(70,\) of torch.float32, got \(69,\)"):
        matmul(a, bp, bias=torch.randn(69))
    with pytest.raises(ValueError, match="bias= goes without accumulate=True"):
        matmul(a, bp, out=torch.zeros(8, 70), accumulate=True, bias=torch.randn(70))


def test_packing_a_transposed_view_equals_packing_its_copy():
    w = torch.randn(160, 40, dtype=torch.float64)
    assert torch.equal(pack(w.t()).data, pack(w.t().contiguous()).data)


def test_matmul_gives_the_same_bits_on_one_thread_and_on_all():
    """Threads split rows or panels, never a sum: the result does not depend on the count."""
    a, b = torch.randn(700, 200), torch.randn(200, 800)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = matmul(a, pack(b))
        torch.set_num_threads(max(2, threads))
        assert torch.equal(matmul(a, pack(b)), one)
        assert torch.equal(matmul(a[:5], pack(b)), one[:5])  # too few rows: panels split
    finally:
        torch.set_num_threads(threads)


def test_matmul_propagates_nan_and_inf_as_torch_mm():
    a, b = torch.randn(8, 40), torch.randn(40, 70)
    a[2, 3], b[5, 64] = float("nan"), float("inf")
    got, want = matmul(a, pack(b)), a @ b
    assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.isinf(), want.isinf())
    finite = want.isfinite()
    torch.testing.assert_close(got[finite], want[finite], atol=1e-4, rtol=1e-4)


def test_matmul_rejects_mismatched_shapes_naming_them():
    bp = pack(torch.randn(4, 6))
    with pytest.raises(ValueError, match="a has 5 columns, the panels 4 rows"):
        matmul(torch.randn(3, 5), bp)
    with pytest.raises(ValueError, match=r"row-major \(3, 6\), got \(6, 3\)"):
        matmul(torch.randn(3, 4), bp, out=torch.empty(6, 3))
    with pytest.raises(ValueError, match="accumulate=True needs out="):
        matmul(torch.randn(3, 4), bp, accumulate=True)


@pytest.fixture(params=["mkl", "panels", "onednn"])
def loop_choice(request, monkeypatch):
    """The time loops' per-step GEMM, chosen as a user would, by RNNKIT_CPU_GEMM."""
    monkeypatch.setenv("RNNKIT_CPU_GEMM", request.param)
    return request.param


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_environment_chooses_the_loop_gemm(loop_choice, dtype):
    like = torch.empty(0, dtype=dtype)
    got = kernel_lstm.loop_gemm(like)
    if loop_choice == "onednn" and gemm.dnn_serves(like):
        assert got is None  # the Python loop over oneDNN's GEMMs
    else:
        assert got is not None and got.panels == (loop_choice == "panels")
    assert gemm.panels_serve(like) == (loop_choice == "panels")


def test_unset_the_fastest_measured_loop_serves(monkeypatch, caplog):
    monkeypatch.delenv("RNNKIT_CPU_GEMM", raising=False)
    kernel_lstm.fastest_loop.cache_clear()
    with caplog.at_level("INFO", logger="rnnkit.backends.cpu_kernels.lstm"):
        choice = kernel_lstm.loop_gemm(torch.empty(0, dtype=torch.float64))
    assert choice is not None  # float64: no oneDNN candidate
    assert "C loop + panels" in caplog.text and "C loop + BLAS" in caplog.text
    kernel_lstm.fastest_loop.cache_clear()


KW = {
    "LSTM": {"layer_norm": True, "peephole": True, "recurrent_dropout": 0.3, "weight_drop": 0.2,
             "zoneout": (0.2, 0.1)},
    "GRU": {"layer_norm": True, "recurrent_dropout": 0.3, "weight_drop": 0.2, "zoneout": 0.2},
    "RNN": {"layer_norm": True, "zoneout": 0.2},
    "GRU_plain_variant": {"zoneout": 0.2},  # the GRU's one-GEMM weight gradient
}  # fmt: skip


@pytest.mark.parametrize("mode", list(KW))
def test_time_loops_equal_the_reference_on_every_loop_gemm(mode, loop_choice,
                                                           outputs_and_gradients):  # fmt: skip
    """H=40 (two panels of W_hh, five of the gates), N=8 (a 6-row tile and a 2-row one), both
    directions, lengths: forward and every gradient within 1e-9 of the reference loop."""
    cls = getattr(rnnkit, mode.split("_")[0])
    lengths = torch.tensor([6, 2, 5, 6, 1, 3, 4, 6])
    layers = []
    for backend in ("fused", "reference"):
        torch.manual_seed(0)
        layers.append(cls(24, 40, num_layers=2, bidirectional=True, dtype=torch.float64,
                          backend=backend, **KW[mode]))  # fmt: skip
    x = torch.randn(6, 8, 24, dtype=torch.float64)
    (o1, s1, g1), (o2, s2, g2) = (outputs_and_gradients(layer, x, lengths) for layer in layers)
    for a, b in zip((o1, *s1, *g1), (o2, *s2, *g2)):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)


def test_gemm_on_panels_adds_bias_and_addend_as_addmm(monkeypatch):
    monkeypatch.setenv("RNNKIT_CPU_GEMM", "panels")
    w, x = torch.randn(50, 30), torch.randn(9, 30)
    bias, add = torch.randn(50), torch.randn(9, 50)
    g = gemm.Gemm(w, 9)
    assert g.panels is not None
    torch.testing.assert_close(g(x), x @ w.t())
    torch.testing.assert_close(g(x, bias=bias), torch.addmm(bias, x, w.t()))
    before = add.clone()
    torch.testing.assert_close(g(x, add=add, bias=bias), add + bias + x @ w.t())
    assert torch.equal(add, before)  # the addend is not written
    out = torch.empty(9, 50)
    assert g(x, out=out) is out
    torch.testing.assert_close(out, x @ w.t())


def test_gemm_leaves_differentiable_products_to_torch(monkeypatch):
    monkeypatch.setenv("RNNKIT_CPU_GEMM", "panels")
    w = torch.randn(50, 30, requires_grad=True)
    assert gemm.Gemm(w, 9).panels is None
    g = gemm.Gemm(w.detach(), 9)
    x = torch.randn(9, 30, requires_grad=True)
    assert g(x).requires_grad
    # a differentiable bias or addend too: their gradients are torch's, not lost in the kernel
    bias, add = torch.randn(50, requires_grad=True), torch.randn(9, 50, requires_grad=True)
    x = x.detach()
    (g(x, bias=bias).sum() + g(x, add=add, bias=bias).square().sum()).backward()
    want_bias, want_add = (torch.randn(50).requires_grad_(), torch.randn(9, 50).requires_grad_())
    with torch.no_grad():
        want_bias.copy_(bias), want_add.copy_(add)
    wt = w.detach().t()
    (
        torch.addmm(want_bias, x, wt).sum() + (want_add + want_bias + x @ wt).square().sum()
    ).backward()
    torch.testing.assert_close(bias.grad, want_bias.grad)
    torch.testing.assert_close(add.grad, want_add.grad)
