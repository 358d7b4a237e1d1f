"""Cells (stepping by hand equals the layer), Stateful and TimeDistributed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit

T, N, D, H = 6, 3, 4, 5
F64 = torch.float64

CELL_CASES = [
    ("LSTM", {}),
    ("LSTM", dict(layer_norm=True, peephole=True)),
    ("LSTM", dict(zoneout=(0.3, 0.1))),
    ("LSTM", dict(recurrent_dropout=0.3, weight_drop=0.2)),
    ("GRU", {}),
    ("GRU", dict(layer_norm=True, zoneout=0.2)),
    ("RNN", dict(layer_norm=True)),
]
LAYER = {"LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU, "RNN": rnnkit.RNN}
CELL = {"LSTM": rnnkit.LSTMCell, "GRU": rnnkit.GRUCell, "RNN": rnnkit.RNNCell}
TORCH_CELL = {"LSTM": nn.LSTMCell, "GRU": nn.GRUCell, "RNN": nn.RNNCell}


@pytest.mark.parametrize("mode,kw", CELL_CASES)
def test_stepping_the_cell_by_hand_equals_the_layer(mode, kw):
    """flax's key test: a cell stepped in a Python loop gives the layer's outputs and final state
    (eval mode: zoneout at its expectation, dropout off)."""
    layer = LAYER[mode](D, H, dtype=F64, **kw).eval()
    cell = CELL[mode](D, H, dtype=F64, **kw).eval()
    cell.load_from_layer(layer)
    x = torch.randn(T, N, D, dtype=F64)
    out, state = layer(x)
    s = None
    steps = []
    for t in range(T):
        s = cell(x[t], s)
        steps.append(s[0] if isinstance(s, tuple) else s)
    torch.testing.assert_close(torch.stack(steps), out, atol=1e-12, rtol=0)
    final = state if isinstance(state, tuple) else (state,)
    for got, want in zip(s if isinstance(s, tuple) else (s,), final):
        torch.testing.assert_close(got, want[0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_plain_cell_is_torch_cell(mode):
    torch.manual_seed(0)
    ours = CELL[mode](D, H, dtype=F64)
    torch.manual_seed(0)
    theirs = TORCH_CELL[mode](D, H, dtype=F64)
    assert isinstance(ours, TORCH_CELL[mode])
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(N, D, dtype=F64)
    a, b = ours(x), theirs(x)
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        assert torch.equal(u, v)


def test_cell_dropout_masks_persist_until_reset():
    cell = rnnkit.GRUCell(D, H, recurrent_dropout=0.5, dtype=F64)
    x = torch.randn(N, D, dtype=F64)
    h = torch.randn(N, H, dtype=F64)
    torch.manual_seed(0)
    a = cell(x, h)
    torch.manual_seed(1)  # another seed: same result, the per-sequence mask is reused
    b = cell(x, h)
    assert torch.equal(a, b)
    cell.reset_dropout_mask()
    results = set()
    for seed in range(5):
        torch.manual_seed(seed)
        cell.reset_dropout_mask()
        results.add(tuple(cell(x, h).flatten().tolist()))
    assert len(results) > 1


def test_cell_errors():
    cell = rnnkit.LSTMCell(D, H)
    with pytest.raises(ValueError, match="expects 4 input features"):
        cell(torch.randn(N, D + 1))
    with pytest.raises(ValueError, match=r"h must have shape \(3, 5\)"):
        cell(torch.randn(N, D), (torch.zeros(N + 1, H), torch.zeros(N, H)))
    with pytest.raises(TypeError, match="tuple"):
        cell(torch.randn(N, D), torch.zeros(N, H))


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_stateful_chunks_equal_one_pass(mode):
    layer = LAYER[mode](D, H, num_layers=2, dtype=F64, layer_norm=True).eval()
    x = torch.randn(12, N, D, dtype=F64)
    whole, _ = layer(x)
    stateful = rnnkit.Stateful(layer)
    parts = [stateful(chunk) for chunk in x.split(4)]
    torch.testing.assert_close(torch.cat(parts), whole, atol=1e-12, rtol=0)


def test_stateful_detach_cuts_the_graph_but_keeps_values():
    stateful = rnnkit.Stateful(rnnkit.LSTM(D, H))
    stateful(torch.randn(3, N, D))
    h_before = stateful.state[0].clone()
    assert stateful.state[0].requires_grad
    stateful.detach_state()
    assert not stateful.state[0].requires_grad
    assert torch.equal(stateful.state[0], h_before)
    stateful.reset_state()
    assert stateful.state is None


def test_stateful_reset_mask_zeroes_only_the_ended_streams():
    layer = rnnkit.GRU(D, H, dtype=F64)
    stateful = rnnkit.Stateful(layer)
    x1, x2 = torch.randn(4, N, D, dtype=F64), torch.randn(4, N, D, dtype=F64)
    stateful(x1)
    carried = stateful.state.clone()
    out = stateful(x2, reset_mask=torch.tensor([True, False, False]))
    fresh, _ = layer(x2[:, :1])
    cont, _ = layer(x2[:, 1:], carried[:, 1:])
    torch.testing.assert_close(out[:, :1], fresh)
    torch.testing.assert_close(out[:, 1:], cont)


def test_stateful_batch_size_change_raises():
    stateful = rnnkit.Stateful(rnnkit.LSTM(D, H))
    stateful(torch.randn(3, N, D))
    with pytest.raises(ValueError, match="batch size 3, got an input with batch size 2"):
        stateful(torch.randn(3, 2, D))
    stateful.reset_state()
    assert stateful(torch.randn(3, 2, D)).shape == (3, 2, H)


def test_stateful_cell_like_chainer_l_lstm():
    cell = rnnkit.LSTMCell(D, H, dtype=F64)
    layer = rnnkit.LSTM(D, H, dtype=F64)
    cell.load_from_layer(layer)
    stateful = rnnkit.Stateful(cell)
    x = torch.randn(T, N, D, dtype=F64)
    hs = torch.stack([stateful(x[t]) for t in range(T)])
    torch.testing.assert_close(hs, layer(x)[0])


def test_stateful_with_lengths_carries_each_sequences_last_valid_state():
    layer = rnnkit.LSTM(D, H, dtype=F64)
    stateful = rnnkit.Stateful(layer)
    x = torch.randn(T, N, D, dtype=F64)
    lengths = torch.tensor([6, 2, 4])
    stateful(x, lengths=lengths)
    for n, length in enumerate(lengths.tolist()):
        _, (h, _) = layer(x[:length, n : n + 1])
        torch.testing.assert_close(stateful.state[0][:, n : n + 1], h)


@pytest.mark.parametrize("batch_first", [False, True])
def test_time_distributed_applies_the_module_per_step(batch_first):
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()).double()
    td = rnnkit.TimeDistributed(cnn, batch_first=batch_first)
    frames = torch.randn(4, 3, 1, 6, 6, dtype=F64)
    out = td(frames)
    assert out.shape == (4, 3, 2 * 4 * 4)
    for a in range(4):
        torch.testing.assert_close(out[a], cnn(frames[a]))


def test_time_distributed_errors():
    td = rnnkit.TimeDistributed(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        td(torch.randn(4, 3))
    bad = rnnkit.TimeDistributed(nn.Flatten(0))
    with pytest.raises(ValueError, match="rows"):
        bad(torch.randn(2, 3, 4))
