"""sLSTM on the C time loop (backends/cpu_kernels/slstm.py, csrc/slstm_template.h): against the
reference step loop in float64, forward, every final state and every gradient (gradients from
outside reaching c, n and m included), both forget gates, heads, both directions and layers, both
GEMM paths; the ops' registration, numeric gradients and double backward; the options and inputs
the reference loop serves instead; NaN as in the reference."""

import copy

import pytest
import torch

import rnnkit
from rnnkit.backends import cpu_kernels
from rnnkit.backends.cpu_kernels import slstm as slstm_kernels

pytestmark = pytest.mark.skipif(
    cpu_kernels.library(torch.float64) is None, reason="no C compiler: the reference loop serves"
)
DT = torch.float64


@pytest.fixture
def c_loop_calls(monkeypatch):
    """The number of directions run on the C time loop, counted as they run."""
    calls = [0]
    original = slstm_kernels.sequence

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(slstm_kernels, "sequence", counted)
    return calls


def _pair(dtype=DT, **kw):
    """The same sLSTM layer on the default backend and on the reference loop."""
    torch.manual_seed(0)
    fast = rnnkit.SLSTM(5, 8, dtype=dtype, **kw)
    loop = rnnkit.SLSTM(5, 8, dtype=dtype, backend="reference", **kw)
    loop.load_state_dict(fast.state_dict())
    return fast, loop


def _state(layer, n=3, dtype=DT):
    """A non-zero initial state: negative h and m, n > 0."""
    gen = torch.Generator().manual_seed(3)
    shape = (layer.num_layers * (2 if layer.bidirectional else 1), n, layer.hidden_size)
    h, c, m = (torch.randn(*shape, generator=gen, dtype=dtype) for _ in range(3))
    return h, c, torch.rand(*shape, generator=gen, dtype=dtype) + 0.1, m - 1.0


def _everything(layer, x, state, lengths=None):
    """Outputs, final states and the gradients of a loss over the outputs and all four final
    states with respect to the input, the initial state and every parameter."""
    xi = x.clone().requires_grad_()
    s0 = tuple(s.clone().requires_grad_() for s in state)
    out, final = layer(xi, s0, lengths=lengths)
    weights = torch.linspace(-1, 2, out.shape[-1], dtype=out.dtype)
    loss = (out * weights).square().sum() + sum((k + 1) * f.sum() for k, f in enumerate(final))
    grads = torch.autograd.grad(loss, [xi, *s0, *layer.parameters()])
    return out, final, grads


@pytest.mark.parametrize(
    "kw",
    [{}, {"forget_gate": "sigmoid"}, {"num_heads": 1}, {"num_heads": 8},
     {"bidirectional": True, "num_layers": 2, "num_heads": 2}, {"bias": False},
     {"forget_bias": 1.0, "batch_first": True}],
    ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "plain",
)  # fmt: skip
def test_the_c_loop_equals_the_reference_loop(kw, c_loop_calls):
    fast, loop = _pair(**kw)
    x = torch.randn(9, 3, 5, dtype=DT) * 2
    if kw.get("batch_first"):
        x = x.transpose(0, 1).contiguous()
    state = _state(fast)
    got = _everything(fast, x, state)
    directions = fast.num_layers * (2 if fast.bidirectional else 1)
    assert c_loop_calls[0] == directions
    want = _everything(loop, x, state)
    assert c_loop_calls[0] == directions  # the reference backend never takes it
    torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(got[1], want[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(got[2], want[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_blas_and_panels_give_the_same_loop(monkeypatch):
    """The step GEMMs on torch's BLAS (``RNNKIT_CPU_GEMM=mkl``) and on rnnkit's panels."""
    fast, loop = _pair(num_heads=2)
    x, state = torch.randn(6, 3, 5, dtype=DT), _state(fast)
    results = []
    for choice in ("mkl", "panels"):
        monkeypatch.setenv("RNNKIT_CPU_GEMM", choice)
        results.append(_everything(fast, x, state))
    want = _everything(loop, x, state)
    for got in results:
        for a, b in zip(got[2], want[2], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_float32_stays_close_to_float64(c_loop_calls):
    fast, _ = _pair(dtype=torch.float32)
    wide = copy.deepcopy(fast).double()
    x = torch.randn(20, 3, 5)
    out32 = fast(x)[0]
    out64 = wide(x.double())[0]
    assert c_loop_calls[0] == 2  # float32 and float64
    torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sigmoid", [False, True])
def test_the_op_against_numeric_gradients_double_backward_and_opcheck(sigmoid):
    gen = torch.Generator().manual_seed(1)
    steps, n, heads, size = 4, 2, 2, 3
    hid = heads * size

    def leaf(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=gen, dtype=DT) * scale + shift).requires_grad_()

    gx, bias = leaf(steps, n, 4 * hid, scale=2.0), leaf(4 * hid)
    w = leaf(heads, 4 * size, size, scale=0.5)
    h0, c0, m0 = leaf(n, hid), leaf(n, hid), leaf(n, hid)
    n0 = (torch.rand(n, hid, generator=gen, dtype=DT) + 0.2).requires_grad_()
    op = torch.ops.rnnkit.slstm_sequence

    def f(*a):
        hs, c_n, n_n, m_n, *_ = op(*a, sigmoid)
        return hs, c_n, n_n, m_n

    inputs = (gx, bias, w, h0, c0, n0, m0)
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)
    torch.library.opcheck(op.default, (*inputs, sigmoid))


@pytest.mark.parametrize(
    "kw", [{"recurrent_dropout": 0.3}, {"weight_drop": 0.3}, {"layer_norm": True}],
    ids=lambda kw: next(iter(kw)),
)  # fmt: skip
def test_options_the_c_loop_does_not_cover_run_the_reference_loop(kw, c_loop_calls):
    fast, loop = _pair(**kw)
    x, state = torch.randn(7, 3, 5, dtype=DT), _state(fast)
    torch.manual_seed(5)
    got = _everything(fast, x, state)
    torch.manual_seed(5)
    want = _everything(loop, x, state)
    assert c_loop_calls[0] == 0
    for a, b in zip(got[2], want[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_lengths_run_the_reference_loop(c_loop_calls):
    fast, loop = _pair(bidirectional=True)
    x, state = torch.randn(7, 3, 5, dtype=DT), _state(fast)
    lengths = torch.tensor([7, 2, 5])
    got, want = _everything(fast, x, state, lengths), _everything(loop, x, state, lengths)
    assert c_loop_calls[0] == 0
    for a, b in zip(got[2], want[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_asking_for_the_c_loop_with_the_recurrent_layer_norm_says_why_not():
    layer = rnnkit.SLSTM(5, 8, layer_norm=True, backend="cpu_kernels")
    with pytest.raises(ValueError, match="recurrent layer norm"):
        layer(torch.randn(4, 2, 5))


@pytest.mark.parametrize("dtype", [torch.float32, DT])
def test_nan_propagates_as_in_the_reference_loop(dtype):
    fast, loop = _pair(dtype=dtype)
    x = torch.randn(6, 3, 5, dtype=dtype)
    x[2, 1, 0] = float("nan")
    with torch.no_grad():
        got_out, got_state = fast(x)
        want_out, want_state = loop(x)
    assert torch.equal(got_out.isnan(), want_out.isnan())
    assert got_out[2:, 1].isnan().all() and not got_out[:, 0].isnan().any()
    for a, b in zip(got_state, want_state, strict=True):
        assert torch.equal(a.isnan(), b.isnan())
