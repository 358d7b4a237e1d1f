"""minGRU and minLSTM on the C kernels (backends/cpu_kernels/minrnn.py): the fused gates + scan
against the reference loop and the torch-op scans in float64, forward and every gradient, with
lengths and both directions; the ops' registration; where the torch-op scan serves instead."""

import pytest
import torch

import rnnkit
from rnnkit.backends import cpu_kernels

pytestmark = pytest.mark.skipif(
    cpu_kernels.library(torch.float64) is None, reason="no C compiler: the torch-op scan serves"
)
DT = torch.float64
CELLS = (rnnkit.MinGRU, rnnkit.MinLSTM)


def _nodes(t: torch.Tensor) -> set[str]:
    """The names of the autograd nodes behind ``t``."""
    seen, todo, names = set(), [t.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        todo.extend(n for n, _ in node.next_functions)
    return names


def _runs_the_c_scan(out: torch.Tensor) -> bool:
    return any("minrnn_scan" in name for name in _nodes(out))


def _grads(layer, x, lengths, h0=None):
    out, h = layer(x, h0, lengths=lengths)
    loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=DT)).square().sum() + h.sum()
    return out, h, torch.autograd.grad(loss, [x, *layer.parameters()])


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("kw", [{}, {"bidirectional": True, "num_layers": 2}, {"layer_norm": True}])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_the_c_scan_equals_the_step_loop(cls, kw, with_lengths):
    torch.manual_seed(0)
    fast = cls(5, 7, dtype=DT, **kw)
    loop = cls(5, 7, dtype=DT, backend="reference", **kw)
    loop.load_state_dict(fast.state_dict())
    x = torch.randn(11, 4, 5, dtype=DT, requires_grad=True) * 3
    lengths = torch.tensor([11, 3, 7, 1]) if with_lengths else None
    h0 = torch.randn(fast.num_layers * (2 if fast.bidirectional else 1), 4, 7, dtype=DT)
    got, want = _grads(fast, x, lengths, h0), _grads(loop, x, lengths, h0)
    assert _runs_the_c_scan(fast(x, h0, lengths=lengths)[0])
    torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[1], want[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(got[2], want[2]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("lstm", [False, True])
def test_the_ops_against_numeric_gradients_and_opcheck(lstm):
    torch.manual_seed(1)
    g = 3 if lstm else 2
    gx = (torch.randn(6, 2, g * 3, dtype=DT) * 2).requires_grad_()
    h0 = torch.randn(2, 3, dtype=DT, requires_grad=True)
    op = torch.ops.rnnkit.minrnn_scan
    assert torch.autograd.gradcheck(lambda a, b: op(a, b, lstm), (gx, h0))
    assert torch.autograd.gradgradcheck(lambda a, b: op(a, b, lstm), (gx, h0))
    torch.library.opcheck(op.default, (gx, h0, lstm))


@pytest.mark.parametrize("cls", CELLS)
def test_extreme_gates_stay_finite_and_nan_propagates(cls):
    """Pre-activations far beyond exp's range give the reference's finite values (minLSTM's gate
    normalisation never overflows); a NaN input gives NaN where the reference has it."""
    torch.manual_seed(2)
    for dtype in (torch.float32, DT):
        fast = cls(3, 4, dtype=dtype).eval()
        loop = cls(3, 4, dtype=dtype, backend="reference").eval()
        loop.load_state_dict(fast.state_dict())
        x = torch.randn(6, 2, 3, dtype=dtype) * 400
        torch.testing.assert_close(fast(x)[0], loop(x)[0], rtol=1e-5, atol=1e-5)
        assert torch.isfinite(fast(x)[0]).all()
        x[2, 1, 0] = float("nan")
        assert torch.equal(fast(x)[0].isnan(), loop(x)[0].isnan())


def test_an_explicit_scan_chunk_and_the_switch_take_the_torch_scans(monkeypatch):
    x = torch.randn(8, 2, 3)
    assert _runs_the_c_scan(rnnkit.MinGRU(3, 4)(x)[0])
    assert not _runs_the_c_scan(rnnkit.MinGRU(3, 4, scan_chunk=4)(x)[0])
    monkeypatch.setenv("RNNKIT_CPU_KERNELS", "0")
    assert not _runs_the_c_scan(rnnkit.MinGRU(3, 4)(x)[0])
