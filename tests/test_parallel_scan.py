"""The log-space parallel scan (rnnkit.parallel_scan) against the sequential loop: the bare
recurrence and minGRU/minLSTM layers at T = 4096 in float64 to 1e-9 (forward and gradients),
any sign of h0, every chunk size, lengths and reverse, float32 over long sequences, and what
non-finite and extreme inputs do."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import rnnkit
from rnnkit.parallel_scan import chunk_size, chunked_scan, default_chunk, log_scan, scan_sequence
from rnnkit.registry import mingru, minlstm

F64 = torch.float64


def loop(log_a, log_b, h0):
    a, b, h, out = log_a.exp(), log_b.exp(), h0, []
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        out.append(h)
    return torch.stack(out)


def coefficients(steps: int, gen, dtype=F64, shape=(2, 8)):
    k = torch.randn(steps, *shape, generator=gen, dtype=dtype) * 2
    log_a = -F.softplus(k)
    log_b = -F.softplus(-k) + torch.randn(steps, *shape, generator=gen, dtype=dtype)
    return log_a, log_b


def scan(log_a, log_b, h0, chunk):
    """Heinsen's scan for chunk 1, else the chunked one of the linear coefficients."""
    if chunk == 1:
        return log_scan(log_a, log_b, h0)
    return chunked_scan(log_a.exp(), log_b.exp(), h0, chunk)


@pytest.mark.parametrize("chunk", [1, 7, 64, 5000])
def test_the_scan_equals_the_loop_at_4096_steps_for_any_sign_of_h0(chunk):
    gen = torch.Generator().manual_seed(chunk)
    log_a, log_b = coefficients(4096, gen)
    h0 = torch.randn(2, 8, generator=gen, dtype=F64) * 5  # negative entries among them
    assert (h0 < 0).any()
    want = loop(log_a, log_b, h0)
    torch.testing.assert_close(scan(log_a, log_b, h0, chunk), want, rtol=0, atol=1e-9)
    zero = loop(log_a, log_b, torch.zeros_like(h0))
    torch.testing.assert_close(scan(log_a, log_b, None, chunk), zero, rtol=0, atol=1e-9)


def test_chunk_sizes_avoid_padding_when_a_divisor_is_near():
    assert [chunk_size(t, 64) for t in (35, 64, 100, 1000, 4096, 4097)] == [35, 64, 50, 50, 64, 64]
    gen = torch.Generator().manual_seed(9)
    log_a, log_b = coefficients(4097, gen)  # a prime: the last chunk is padded
    h0 = torch.randn(2, 8, generator=gen, dtype=F64)
    torch.testing.assert_close(
        scan(log_a, log_b, h0, 64), loop(log_a, log_b, h0), rtol=0, atol=1e-9
    )


def test_the_scan_backward_equals_the_loop_backward():
    gen = torch.Generator().manual_seed(1)
    log_a, log_b = coefficients(600, gen)
    h0 = torch.randn(2, 8, generator=gen, dtype=F64)
    dout = torch.randn(600, 2, 8, generator=gen, dtype=F64)
    grads = []
    for fn in (
        loop,
        lambda a, b, h: scan(a, b, h, 1),
        lambda a, b, h: scan(a, b, h, 37),
    ):
        leaves = [t.clone().requires_grad_() for t in (log_a, log_b, h0)]
        (fn(*leaves) * dout).sum().backward()
        grads.append([t.grad for t in leaves])
    for other in grads[1:]:
        for got, want in zip(other, grads[0]):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_layers_scan_equals_step_by_step_at_4096_steps(name):
    torch.manual_seed(2)
    scan = rnnkit.Recurrent(name, 3, 6, bidirectional=True, dtype=F64)
    steps = rnnkit.Recurrent(name, 3, 6, bidirectional=True, dtype=F64, backend="reference")
    steps.load_state_dict(scan.state_dict())
    x = torch.randn(4096, 2, 3, dtype=F64, requires_grad=True)
    h0 = -torch.rand(2, 2, 6, dtype=F64) * 3  # negative initial state
    results = []
    for layer in (scan, steps):
        x.grad = None
        layer.zero_grad()
        out, h = layer(x, h0)
        ((out * torch.linspace(-1, 1, 12, dtype=F64)).sum() + h.sum()).backward()
        results.append((out, h, x.grad, layer.weight_ih_l0.grad, layer.bias_ih_l0_reverse.grad))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-9)


@pytest.mark.parametrize("reverse", [False, True])
def test_lengths_keep_each_sequence_alone(reverse):
    gen = torch.Generator().manual_seed(3)
    gx = torch.randn(50, 3, 8, generator=gen, dtype=F64)
    h0 = torch.randn(3, 4, generator=gen, dtype=F64)
    lengths = torch.tensor([50, 1, 23])
    fns = (mingru.coefficients, mingru.log_coefficients)
    out, h = scan_sequence(*fns, gx, h0, lengths=lengths, reverse=reverse, chunk=8)
    for n, length in enumerate(lengths.tolist()):
        o, hn = scan_sequence(*fns, gx[:length, n : n + 1], h0[n : n + 1], reverse=reverse, chunk=8)
        torch.testing.assert_close(out[:length, n : n + 1], o, rtol=0, atol=1e-13)
        torch.testing.assert_close(h[n : n + 1], hn, rtol=0, atol=1e-13)
        assert (out[length:, n] == 0).all()


def test_float32_stays_close_over_long_sequences():
    gen = torch.Generator().manual_seed(4)
    log_a, log_b = coefficients(4096, gen, shape=(4, 64))
    h0 = torch.randn(4, 64, generator=gen, dtype=F64)
    want = loop(log_a, log_b, h0)
    errors = {}
    for chunk in (1, 64):
        got = scan(log_a.float(), log_b.float(), h0.float(), chunk).double()
        errors[chunk] = ((got - want).abs() / (want.abs() + 1)).max().item()
    # the pure log-space scan loses |cumsum log a| * 6e-8 (~1e-3 here); chunks joined in float64
    # keep float32's own accuracy
    assert errors[64] < 2e-6 and 1e-4 < errors[1] < 5e-3, errors


def test_extreme_pre_activations_give_finite_values_and_gradients():
    values = torch.tensor([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4])
    pick = torch.randint(0, 7, (20, 2, 18), generator=torch.Generator().manual_seed(6))
    gx = values[pick].requires_grad_()  # (T, N, 3H): every mix of saturated gates, float32
    for module in (mingru, minlstm):
        g = gx[..., :12] if module is mingru else gx
        h0 = torch.full((2, 6), -2.0)
        for chunk in (1, 4):
            fns = (module.coefficients, module.log_coefficients)
            out, h = scan_sequence(*fns, g, h0, chunk=chunk)
            out.sum().backward()
            assert torch.isfinite(out).all() and torch.isfinite(gx.grad).all(), (module, chunk)
            gx.grad = None


def test_a_nan_input_stays_in_its_own_sequence_and_after_its_step():
    gen = torch.Generator().manual_seed(5)
    for chunk in (1, 4):
        gx = torch.randn(12, 3, 8, generator=gen, dtype=F64)
        gx[5, 1, 0] = float("nan")
        fns = (mingru.coefficients, mingru.log_coefficients)
        out, h = scan_sequence(*fns, gx, torch.zeros(3, 4, dtype=F64), chunk=chunk)
        assert torch.isfinite(out[:, [0, 2]]).all() and torch.isfinite(h[[0, 2]]).all()
        assert torch.isfinite(out[:5, 1]).all() and torch.isnan(out[5:, 1, 0]).all()
        assert torch.isfinite(out[:, 1, 1:]).all()  # the other units of that sequence


def test_chunk_policy_and_bad_chunks():
    assert default_chunk(torch.zeros(1)) == 64
    with pytest.raises(ValueError, match="chunk must be a positive number of steps, got 0"):
        chunked_scan(torch.zeros(3, 1), torch.zeros(3, 1), None, 0)
    with pytest.raises(ValueError, match="scan_chunk must be a positive integer or None, got 0"):
        rnnkit.MinGRU(2, 3, scan_chunk=0)
