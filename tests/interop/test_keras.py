"""Against Keras 3 itself (torch backend): its own LSTM/GRU/SimpleRNN layers and weight files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip(
    "keras", reason="Keras 3 not installed (pip install 'rnnkit[frameworks]')"
)

from rnnkit.interop import export_weights, load_weights  # noqa: E402
from rnnkit.interop.legacy import load_checkpoint  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

T, N, D, H = 6, 2, 3, 4
X = np.random.default_rng(0).standard_normal((N, T, D)).astype(np.float32)  # Keras is batch-first


def torch_out(module, x=X):
    with torch.no_grad():
        return module(torch.from_numpy(x).transpose(0, 1))[0].transpose(0, 1).numpy()


def keras_out(layer, x=X):
    return keras.ops.convert_to_numpy(layer(x))


def keras_layer(kind, **kw):
    cls = {"LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU, "RNN": keras.layers.SimpleRNN}[kind]
    layer = cls(H, return_sequences=True, **kw)
    layer.build((None, T, D))
    return layer


def torch_layer(kind, layers=1, bidirectional=False, seed=0):
    torch.manual_seed(seed)
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[kind]
    return cls(D, H, layers, bidirectional=bidirectional)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_torch_weights_run_in_keras(kind):
    module = torch_layer(kind)
    p = export_weights(module, "keras")
    layer = keras_layer(kind)
    layer.set_weights([p["kernel"], p["recurrent_kernel"], p["bias"]])
    np.testing.assert_allclose(keras_out(layer), torch_out(module), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_keras_weights_run_in_torch(kind):
    layer = keras_layer(kind, bias_initializer="random_normal")
    params = dict(zip(("kernel", "recurrent_kernel", "bias"), layer.get_weights()))
    module = torch_layer(kind, seed=1)
    load_weights(module, params, "keras")
    np.testing.assert_allclose(torch_out(module), keras_out(layer), rtol=0, atol=1e-5)


def test_keras_reset_before_gru_with_diagonal_candidate():
    layer = keras_layer("GRU", reset_after=False, bias_initializer="random_normal")
    kernel, rec, bias = layer.get_weights()
    rec[:, 2 * H :] = np.diag(np.linspace(-0.9, 0.9, H))
    layer.set_weights([kernel, rec, bias])
    module = torch_layer("GRU", seed=2)
    load_weights(module, {"kernel": kernel, "recurrent_kernel": rec, "bias": bias}, "keras")
    np.testing.assert_allclose(torch_out(module), keras_out(layer), rtol=0, atol=1e-5)


def stacked_model(module, kind="LSTM"):
    """Keras' equivalent of a 2-layer bidirectional torch module, weights set from the export."""
    cls = keras.layers.LSTM if kind == "LSTM" else keras.layers.GRU
    model = keras.Sequential(
        [keras.Input((T, D))]
        + [keras.layers.Bidirectional(cls(H, return_sequences=True)) for _ in range(2)]
    )
    p = export_weights(module, "keras")
    base = kind.lower()
    for k, wrapper in enumerate(model.layers):
        sfx = "" if k == 0 else f"_{k}"
        names = [
            f"bidirectional{sfx}/{side}_{base}{sfx}/{w}"
            for side in ("forward", "backward")
            for w in ("kernel", "recurrent_kernel", "bias")
        ]
        wrapper.set_weights([p[n] for n in names])
    return model


def test_stacked_bidirectional_matches_keras():
    module = torch_layer("LSTM", 2, True)
    model = stacked_model(module)
    np.testing.assert_allclose(keras_out(model), torch_out(module), rtol=0, atol=1e-5)


@pytest.mark.parametrize("filename", ["m.weights.h5", "m.h5", "m.keras"])
def test_keras_files(tmp_path, filename):
    """Files Keras writes (Keras 3 weights, legacy HDF5 model, .keras zip) load into torch; the
    layer names in them depend on the session, and come back as Keras' default names."""
    source = torch_layer("GRU", 2, True, seed=3)
    model = stacked_model(source, "GRU")
    path = tmp_path / filename
    if filename.endswith(".weights.h5"):
        model.save_weights(path)
    else:
        model.save(path)
    params = load_checkpoint(path)
    assert "bidirectional_1/backward_gru_1/recurrent_kernel" in params
    module = torch_layer("GRU", 2, True, seed=4)
    load_weights(module, params, "keras")
    np.testing.assert_allclose(torch_out(module), keras_out(model), rtol=0, atol=1e-5)


def test_single_layer_file_gives_bare_names(tmp_path):
    model = keras.Sequential([keras.Input((T, D)), keras.layers.LSTM(H), keras.layers.Dense(2)])
    model.save_weights(tmp_path / "one.weights.h5")
    params = load_checkpoint(tmp_path / "one.weights.h5")
    assert sorted(params) == ["bias", "kernel", "recurrent_kernel"]  # the Dense layer is left out
    module = torch_layer("LSTM", seed=5)
    load_weights(module, params, "keras")
    last = keras.ops.convert_to_numpy(model.layers[0](X))
    np.testing.assert_allclose(torch_out(module)[:, -1], last, rtol=0, atol=1e-5)
