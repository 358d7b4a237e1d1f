"""Against Flax linen itself (JAX on CPU): its LSTM/GRU/Simple cells run by ``nn.RNN``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("jax", reason="JAX not installed (pip install 'rnnkit[frameworks]')")
nn = pytest.importorskip(
    "flax.linen", reason="Flax not installed (pip install 'rnnkit[frameworks]')"
)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax.traverse_util import flatten_dict, unflatten_dict  # noqa: E402

from rnnkit.interop import export_weights, load_weights  # noqa: E402

T, N, D, H = 6, 2, 3, 4
X = np.random.default_rng(0).standard_normal((N, T, D)).astype(np.float32)  # nn.RNN is batch-major
CELLS = {
    "OptimizedLSTMCell": ("LSTM", nn.OptimizedLSTMCell),
    "LSTMCell": ("LSTM", nn.LSTMCell),
    "GRUCell": ("GRU", nn.GRUCell),
    "SimpleCell": ("RNN", nn.SimpleCell),
}


def torch_layer(kind, layers=1, bidirectional=False, seed=0):
    torch.manual_seed(seed)
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[kind]
    return cls(D, H, layers, bidirectional=bidirectional)


def torch_out(module):
    with torch.no_grad():
        return module(torch.from_numpy(X).transpose(0, 1))[0].transpose(0, 1).numpy()


def nest(flat):
    return unflatten_dict({tuple(k.split("/")): jnp.asarray(v) for k, v in flat.items()})


def flat(tree):
    return {"/".join(k): np.asarray(v) for k, v in flatten_dict(tree).items()}


@pytest.mark.parametrize("cell_name", list(CELLS))
def test_torch_weights_run_in_flax(cell_name):
    kind, cell = CELLS[cell_name]
    module = torch_layer(kind)
    params = export_weights(module, "flax")
    rnn = nn.RNN(cell(features=H))
    init = rnn.init(jax.random.key(0), jnp.asarray(X))["params"]
    assert set(flat(init)) == {"cell/" + k for k in params}  # the names flax itself creates
    y = rnn.apply({"params": {"cell": nest(params)}}, jnp.asarray(X))
    np.testing.assert_allclose(np.asarray(y), torch_out(module), rtol=0, atol=1e-5)


@pytest.mark.parametrize("cell_name", ["LSTMCell", "GRUCell"])
def test_flax_weights_run_in_torch(cell_name):
    kind, cell = CELLS[cell_name]
    rnn = nn.RNN(cell(features=H, bias_init=nn.initializers.normal(1.0)))
    variables = rnn.init(jax.random.key(1), jnp.asarray(X))
    module = torch_layer(kind, seed=1)
    load_weights(module, flat(variables["params"]["cell"]), "flax")
    y = np.asarray(rnn.apply(variables, jnp.asarray(X)))
    np.testing.assert_allclose(torch_out(module), y, rtol=0, atol=1e-5)


class Stack(nn.Module):
    """Two bidirectional LSTM layers in a list, as flax users write a stack (``layers_{k}``)."""

    def setup(self):
        self.layers = [
            nn.Bidirectional(nn.RNN(nn.OptimizedLSTMCell(H)), nn.RNN(nn.OptimizedLSTMCell(H)))
            for _ in range(2)
        ]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def test_stacked_bidirectional_names_and_outputs():
    module = torch_layer("LSTM", 2, True, seed=2)
    params = export_weights(module, "flax")
    shapes = jax.eval_shape(Stack().init, jax.random.key(0), jnp.asarray(X))["params"]
    assert {k: v.shape for k, v in flatten_dict(shapes, sep="/").items()} == {
        k: v.shape for k, v in params.items()
    }
    y = Stack().apply({"params": nest(params)}, jnp.asarray(X))
    np.testing.assert_allclose(np.asarray(y), torch_out(module), rtol=0, atol=1e-5)
