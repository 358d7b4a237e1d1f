"""rnnkit.quantization.quantize_dynamic: plain layers become torch's int8 LSTM/GRU, variants raise."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.quantization import quantize_dynamic


class Tagger(nn.Module):
    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn, self.out = rnn, nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.rnn(x)[0])


@pytest.mark.parametrize(
    "rnn",
    [
        rnnkit.LSTM(4, 8, 2),
        rnnkit.GRU(4, 8, bidirectional=False),
        rnnkit.LSTM(4, 8, weight_drop=0.3, forget_bias=1.0),
    ],  # fmt: skip
    ids=["lstm", "gru", "lstm-weight-drop"],
)
def test_plain_layers_convert_to_torchs_quantized_modules(rnn):
    torch.manual_seed(0)
    model = Tagger(rnn).eval()
    q = quantize_dynamic(model)
    assert type(q.rnn).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert type(q.out).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert isinstance(model.rnn, (rnnkit.LSTM, rnnkit.GRU))  # the original is untouched
    x = torch.randn(6, 2, 4)
    err = (model(x) - q(x)).abs().max().item()
    assert 0 < err < 0.05  # int8 weights: close, not equal


@pytest.mark.parametrize("kw", [{"layer_norm": True}, {"zoneout": 0.1}, {"peephole": True}])
def test_variant_layers_raise_naming_the_layer(kw):
    with pytest.raises(ValueError, match=r"rnn \(LSTM with .*\) has no quantized kernel"):
        quantize_dynamic(Tagger(rnnkit.LSTM(4, 8, **kw)))


def test_a_bare_layer_is_quantized_too():
    """torch's quantize_dynamic swaps children only: a bare layer came back as a float nn.LSTM."""
    layer = rnnkit.LSTM(4, 8).eval()
    q = quantize_dynamic(layer)
    assert type(q).__module__.startswith("torch.ao.nn.quantized.dynamic")
    x = torch.randn(5, 2, 4)
    assert 0 < (layer(x)[0] - q(x)[0]).abs().max() < 0.05


@pytest.mark.parametrize(
    "module",
    [
        rnnkit.RNN(4, 8, zoneout=0.3),
        rnnkit.Recurrent("gru", 4, 8, layer_norm=True),
        rnnkit.GRUCell(4, 8, layer_norm=True),
    ],  # fmt: skip
    ids=["rnn-zoneout", "recurrent-gru-ln", "gru-cell-ln"],
)
def test_every_variant_module_raises(module):
    with pytest.raises(ValueError, match="has no quantized kernel"):
        quantize_dynamic(module)
