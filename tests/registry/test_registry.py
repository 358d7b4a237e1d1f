"""The cell registry: lookups, and a new cell registered in one module runs everywhere a cell runs
(generic layer and cell, lengths, both directions, Stateful, step-wise decoding, whole-model
save/load), matching its step function stepped by hand."""

from __future__ import annotations

import io

import pytest
import torch

import rnnkit
from rnnkit.backends import reference
from rnnkit.decode import LayerStepper
from rnnkit.functional import CellParams, recurrent_projection
from rnnkit.registry import (
    CellSpec,
    StateSpec,
    cell_names,
    cell_of,
    get_cell,
    register_cell,
)

F64 = torch.float64


def test_lookups_by_name_torch_mode_and_module():
    assert {"lstm", "gru", "rnn", "rnn_relu"} <= set(cell_names())
    assert cell_names(option="peephole") == ("lstm",)
    assert get_cell("LSTM") is get_cell("lstm") and get_cell("RNN_RELU").name == "rnn_relu"
    assert cell_of(torch.nn.GRU(2, 3)).name == "gru"
    assert cell_of(torch.nn.RNN(2, 3, nonlinearity="relu")).name == "rnn_relu"
    assert cell_of(rnnkit.RNNCell(2, 3, nonlinearity="relu")).name == "rnn_relu"
    assert get_cell("lstm").layer_class() is rnnkit.LSTM
    assert get_cell("gru").cell_class() is rnnkit.GRUCell
    assert "peephole" in get_cell("lstm").options and not get_cell("gru").accepts("peephole")
    with pytest.raises(ValueError, match="cell must be one of .*'lstm'.*got 'lstmx'"):
        get_cell("lstmx")
    with pytest.raises(ValueError, match="registered already"):
        register_cell(get_cell("gru"))


# ---- a toy cell with two states, to prove the registry carries any number of them
def _leaky_step(gx, state, p, w_hh=None, dropout_mask=None):
    """``a = gx + h W_hh^T + b_hh``; ``m' = 0.5 m + 0.5 a``; ``h' = tanh(m')``."""
    h, m = state
    m_new = 0.5 * m + 0.5 * (gx + recurrent_projection(h, p, w_hh, dropout_mask))
    return torch.tanh(m_new), m_new


LEAKY = register_cell(
    CellSpec(
        name="test_leaky",
        title="LeakyTest",
        torch_mode="",
        gates=("a",),
        states=(StateSpec("h", "output", zoneout="h"), StateSpec("m", "hidden")),
        step=_leaky_step,
        parameters=lambda hidden, v: {},
        layer="Recurrent",
        cell="RecurrentCell",
    )
)


def _by_hand(cell: rnnkit.RecurrentCell, x: torch.Tensor, state):
    outs = []
    for t in range(x.shape[0]):
        state = cell(x[t], state)
        outs.append(state[0])
    return torch.stack(outs), state


def test_a_new_cell_runs_in_the_generic_layer_and_equals_stepping_by_hand():
    torch.manual_seed(0)
    layer = rnnkit.Recurrent("test_leaky", 3, 4, dtype=F64)
    cell = rnnkit.RecurrentCell("test_leaky", 3, 4, dtype=F64)
    cell.load_from_layer(layer, 0)
    x = torch.randn(6, 2, 3, dtype=F64)
    out, (h, m) = layer(x)
    ref_out, (ref_h, ref_m) = _by_hand(cell, x, None)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(m[0], ref_m, rtol=0, atol=1e-12)
    assert repr(layer) == "Recurrent('test_leaky', 3, 4)"


def test_a_new_cell_has_lengths_both_directions_and_layers():
    torch.manual_seed(1)
    layer = rnnkit.Recurrent("test_leaky", 3, 4, num_layers=2, bidirectional=True, dtype=F64)
    x = torch.randn(5, 3, 3, dtype=F64)
    lengths = torch.tensor([5, 2, 4])
    out, (h, m) = layer(x, lengths=lengths)
    assert out.shape == (5, 3, 8) and h.shape == m.shape == (4, 3, 4)
    assert (out[2:, 1] == 0).all()
    # each sequence alone, unpadded, gives the same outputs and final states
    for n, length in enumerate(lengths.tolist()):
        o, (hn, mn) = layer(x[:length, n : n + 1])
        torch.testing.assert_close(out[:length, n : n + 1], o, rtol=0, atol=1e-12)
        torch.testing.assert_close(m[:, n : n + 1], mn, rtol=0, atol=1e-12)
    out.sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


def test_a_new_cell_under_stateful_decoding_and_torch_load():
    torch.manual_seed(2)
    layer = rnnkit.Recurrent("test_leaky", 3, 4, num_layers=2, dtype=F64).eval()
    x = torch.randn(8, 2, 3, dtype=F64)
    full, state = layer(x)
    stream = rnnkit.Stateful(layer)
    chunks = torch.cat([stream(c) for c in x.split(3)])
    torch.testing.assert_close(chunks, full, rtol=0, atol=1e-12)
    stepper, s = LayerStepper(layer), tuple(torch.zeros(2, 2, 4, dtype=F64) for _ in range(2))
    steps = []
    for t in range(8):
        y, s = stepper.step(x[t], s)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps), full, rtol=0, atol=1e-12)
    buf = io.BytesIO()
    torch.save(layer, buf)
    buf.seek(0)
    loaded = torch.load(buf)
    assert loaded.spec is LEAKY
    torch.testing.assert_close(loaded(x)[0], full, rtol=0, atol=0)


def test_options_a_cell_does_not_accept_are_refused_by_name():
    with pytest.raises(ValueError, match="peephole connections exist only for LSTM, not LeakyTest"):
        rnnkit.Recurrent("test_leaky", 3, 4, peephole=True)
    with pytest.raises(ValueError, match="torch has no kernels for LeakyTest"):
        rnnkit.Recurrent("test_leaky", 3, 4, backend="native")
    with pytest.raises(ValueError, match="backend='torch_ops' has no LeakyTest kernel"):
        rnnkit.Recurrent("test_leaky", 3, 4, backend="torch_ops")(torch.randn(2, 1, 3))


@pytest.mark.parametrize("name,kw", [("lstm", {"layer_norm": True, "peephole": True}),
                                     ("gru", {"zoneout": 0.1}), ("rnn_relu", {})])  # fmt: skip
def test_the_generic_layer_equals_the_torch_twin_layers(name, kw):
    torch.manual_seed(3)
    generic = rnnkit.Recurrent(name, 3, 4, num_layers=2, bidirectional=True, dtype=F64, **kw)
    twin_cls = get_cell(name).layer_class()
    extra = {"nonlinearity": "relu"} if name == "rnn_relu" else {}
    twin = twin_cls(3, 4, num_layers=2, bidirectional=True, dtype=F64, **kw, **extra)
    twin.load_state_dict(generic.state_dict())
    x, lengths = torch.randn(5, 3, 3, dtype=F64), torch.tensor([5, 1, 3])
    a, b = generic.eval()(x, lengths=lengths), twin.eval()(x, lengths=lengths)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-12)


def test_reference_scan_runs_any_registered_cell():
    p = CellParams(w_ih=torch.randn(4, 3, dtype=F64), w_hh=torch.randn(4, 4, dtype=F64))
    gx = torch.randn(5, 2, 4, dtype=F64)
    out, (h, m) = reference.scan("test_leaky", gx, (torch.zeros(2, 4, dtype=F64),) * 2, p)
    assert out.shape == (5, 2, 4) and torch.equal(out[-1], h)
