"""Whole-model torch.save / torch.load (torch's default weights_only=True) of every rnnkit module."""

from __future__ import annotations

import io

import pytest
import torch

import rnnkit

VARIANTS = [{}, {"layer_norm": True}, {"zoneout": 0.1, "recurrent_dropout": 0.2},
            {"weight_drop": 0.3}]  # fmt: skip
LAYERS = [
    (cls, kw)
    for cls in (
        rnnkit.LSTM,
        rnnkit.GRU,
        rnnkit.RNN,
        rnnkit.LSTMCell,
        rnnkit.GRUCell,
        rnnkit.RNNCell,
    )  # fmt: skip
    for kw in VARIANTS
    + ([{"peephole": True, "forget_bias": 1.0}] if "LSTM" in cls.__name__ else [])
]


def _roundtrip(module):
    buf = io.BytesIO()
    torch.save(module, buf)
    buf.seek(0)
    return torch.load(buf)  # weights_only=True: torch's default


@pytest.mark.parametrize("cls,kw", LAYERS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_every_layer_and_cell_loads_under_weights_only(cls, kw):
    torch.manual_seed(0)
    module = cls(3, 4, **kw).eval()
    loaded = _roundtrip(module)
    assert type(loaded) is cls
    assert loaded.spec is module.spec and loaded.variants == module.variants
    x = torch.randn(5, 2, 3) if "Cell" not in cls.__name__ else torch.randn(2, 3)
    a, b = module(x), loaded(x)
    a, b = (a[0], b[0]) if isinstance(a, tuple) else (a, b)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_relu_rnn_keeps_its_cell_and_wrappers_load():
    loaded = _roundtrip(rnnkit.RNN(3, 4, nonlinearity="relu", layer_norm=True))
    assert loaded.spec.name == "rnn_relu"
    stream = _roundtrip(rnnkit.Stateful(rnnkit.GRU(3, 4)))
    assert isinstance(stream, rnnkit.Stateful) and stream(torch.randn(5, 2, 3)).shape == (5, 2, 4)
    # (torch.nn.Linear itself is not on torch's own allowlist: wrap an rnnkit module)
    frames = _roundtrip(rnnkit.TimeDistributed(rnnkit.GRUCell(3, 2)))
    assert frames(torch.randn(4, 2, 3)).shape == (4, 2, 2)
