"""Issue #10, peak training memory: zoneout masks and DropConnect that the C kernels draw from a
seed themselves (``BernoulliDraws``, ``Dropped``), so that neither a ``(T, N, H)`` mask nor the
dropped ``(G*H, H)`` matrix is kept for backward; every value is the one the mask tensor of the
same seed gives."""

from __future__ import annotations

import importlib

import pytest
import torch

import rnnkit
from rnnkit.backends import cpu_kernels
from rnnkit.backends.cpu_kernels import panels
from rnnkit.regularization import dropout_mask

library = importlib.import_module("rnnkit.backends.cpu_kernels.library")

pytestmark = pytest.mark.skipif(
    cpu_kernels.library(torch.float32) is None, reason="the C kernels do not build here"
)
DTYPES = [torch.float32, torch.float64]
T, N, D, H = 6, 3, 4, 5


@pytest.mark.parametrize("dtype", DTYPES)
def test_draws_made_as_a_tensor_are_the_bernoulli_tensor_of_the_seed(dtype):
    like = torch.zeros(1, dtype=dtype)
    draws = library.BernoulliDraws((T, N, H), 0.3, 12345)
    want = cpu_kernels.bernoulli((T, N, H), 0.3, like, seed=12345)
    assert torch.equal(draws.tensor(like), want)
    assert 0 < want.sum() < want.numel()


@pytest.mark.parametrize("dtype", DTYPES)
def test_drop_connected_is_the_weight_times_the_mask_of_its_seed(dtype):
    w = torch.randn(12, 7, dtype=dtype)
    w[0, 0], w[1, 1] = float("nan"), float("inf")  # NaN * 0 and Inf * 0 are NaN, as in torch
    drop = library.Dropped(0.4, 777)
    want = w * dropout_mask(tuple(w.shape), 0.4, w, seed=777)
    torch.testing.assert_close(
        library.drop_connected(w, drop), want, rtol=0, atol=0, equal_nan=True
    )
    g = w.clone()
    library.drop_connected(g, drop, out=g)  # in place, as the weight gradient is masked
    torch.testing.assert_close(g, want, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("shape", [(12, 7), (96, 33), (3, 70)])
def test_dropped_panels_multiply_as_the_dropped_matrix(dtype, transpose, shape):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(*shape, dtype=dtype, generator=gen)
    drop = library.Dropped(0.25, 99)
    dropped = w * dropout_mask(shape, 0.25, w, seed=99)
    b = dropped.t() if transpose else dropped
    a = torch.randn(5, b.shape[0], dtype=dtype, generator=gen)
    got = panels.matmul(a, panels.pack_dropped(w, transpose, drop))
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got, a @ b, rtol=tol, atol=tol)


def _op_args(seeded: bool, grad: bool = False):
    """lstm_sequence's arguments with zoneout of h and c and DropConnect, as seeds or as the
    mask tensors and the dropped matrix those seeds give."""
    gen = torch.Generator().manual_seed(3)
    dt = torch.float64

    def rand(*shape):
        return (0.5 * torch.randn(*shape, dtype=dt, generator=gen)).requires_grad_(grad)

    x, w_ih, h0, c0, w = rand(T, N, D), rand(4 * H, D), rand(N, H), rand(N, H), rand(4 * H, H)
    like = x.detach()
    sh, sc, sw = 11, 22, 33
    head = (x, w_ih, h0, c0)
    tail = (None,) * 7  # bias, the four layer norms, peepholes, the recurrent dropout mask
    if seeded:
        return (*head, w, *tail, None, 0.2, None, 0.3, None, False, True, [sh, sc, sw], 0.4)
    zh = cpu_kernels.bernoulli((T, N, H), 0.2, like, seed=sh)
    zc = cpu_kernels.bernoulli((T, N, H), 0.3, like, seed=sc)
    dropped = w * dropout_mask(tuple(w.shape), 0.4, like, seed=sw)
    return (*head, dropped, *tail, zh, 0.0, zc, 0.0, None, False, True), w


def test_the_op_with_seeds_gives_what_it_gives_with_the_masks_of_those_seeds():
    seeded = torch.ops.rnnkit.lstm_sequence(*_op_args(True))
    args, _ = _op_args(False)
    masked = torch.ops.rnnkit.lstm_sequence(*args)
    for a, b in zip(seeded[:3], masked[:3]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # and the gradients: the weight's through w * mask
    args = _op_args(True, grad=True)
    out = torch.ops.rnnkit.lstm_sequence(*args)
    got = torch.autograd.grad(out[0].square().sum() + out[2].sum(), [args[0], args[1], args[4]])
    args, w = _op_args(False, grad=True)
    out = torch.ops.rnnkit.lstm_sequence(*args)
    want = torch.autograd.grad(out[0].square().sum() + out[2].sum(), [args[0], args[1], w])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _saved_shapes(layer, x):
    """The shapes of what autograd keeps for backward in one forward of ``layer``, and whether
    each is a parameter of it."""
    params = {p.data_ptr() for p in layer.parameters()}
    shapes = []

    def pack(t):
        shapes.append((tuple(t.shape), t.data_ptr() in params))
        return t

    torch.manual_seed(0)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)
    return shapes


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU])
def test_zoneout_and_dropconnect_keep_no_mask_and_no_dropped_matrix(cls, monkeypatch):
    x = torch.randn(T, N, D, requires_grad=True)
    layer = cls(D, H, 2, zoneout=0.2, weight_drop=0.3)
    kept = _saved_shapes(layer, x)
    w_hh = tuple(layer.weight_hh_l0.shape)
    assert all(is_param for s, is_param in kept if s == w_hh)  # W_hh itself, never W_hh * mask
    monkeypatch.setattr(cpu_kernels, "bernoulli_draws", lambda *a, **k: None)  # mask tensors
    with_masks = _saved_shapes(layer, x)
    masks = 2 if cls is rnnkit.LSTM else 1  # per layer: zoneout of h (and of c)
    count = [len([s for s, _ in k if s == (T, N, H)]) for k in (kept, with_masks)]
    assert count[1] - count[0] == 2 * masks
