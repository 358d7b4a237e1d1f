"""Against MXNet Gluon and Chainer themselves, where they install.

Both are retired and need NumPy < 2 (MXNet 1.9.1 uses ``np.bool``; Chainer 7.8.1 ``np.sctypes``), so
they do not install beside rnnkit's NumPy 2 environment; these tests run in an environment that has
them (Python 3.11, numpy 1.23.5, ``SETUPTOOLS_USE_DISTUTILS=stdlib`` for Chainer) and skip
elsewhere. The files they write are the ones :func:`load_checkpoint` reads.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.interop import export_weights, load_weights
from rnnkit.interop.legacy import convert_file, load_checkpoint

T, N, D, H = 5, 2, 3, 4
X = np.random.default_rng(0).standard_normal((T, N, D)).astype(np.float32)


def torch_layer(kind, layers=2, bidirectional=True, seed=0, **kw):
    torch.manual_seed(seed)
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[kind]
    return cls(D, H, layers, bidirectional=bidirectional, **kw)


def torch_out(module):
    with torch.no_grad():
        return module(torch.from_numpy(X))[0].numpy()


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_gluon_files_both_ways(tmp_path, kind):
    mx = pytest.importorskip("mxnet", reason="MXNet needs NumPy < 2; not installable here")
    from mxnet import gluon

    kw = {"activation": "tanh"} if kind == "RNN" else {}
    net = getattr(gluon.rnn, kind)(H, num_layers=2, bidirectional=True, input_size=D, **kw)
    net.initialize(mx.init.Uniform(0.5))
    ref = net(mx.nd.array(X)).asnumpy()
    net.save_parameters(str(tmp_path / "net.params"))
    module = torch_layer(kind, seed=1)
    load_weights(module, load_checkpoint(tmp_path / "net.params"), "gluon")
    np.testing.assert_allclose(torch_out(module), ref, rtol=0, atol=1e-5)

    src = torch_layer(kind, seed=2)
    np.savez(tmp_path / "src.npz", **export_weights(src, "torch"))
    convert_file(tmp_path / "src.npz", "torch", "gluon", tmp_path / "back.params")
    net.load_parameters(str(tmp_path / "back.params"))
    np.testing.assert_allclose(net(mx.nd.array(X)).asnumpy(), torch_out(src), rtol=0, atol=1e-5)


def test_gluon_projection(tmp_path):
    mx = pytest.importorskip("mxnet", reason="MXNet needs NumPy < 2; not installable here")
    from mxnet import gluon

    net = gluon.rnn.LSTM(H, input_size=D, projection_size=2)
    net.initialize(mx.init.Uniform(0.5))
    ref = net(mx.nd.array(X)).asnumpy()
    net.save_parameters(str(tmp_path / "p.params"))
    module = torch_layer("LSTM", 1, False, proj_size=2)
    load_weights(module, load_checkpoint(tmp_path / "p.params"), "gluon")
    np.testing.assert_allclose(torch_out(module), ref, rtol=0, atol=1e-5)


def test_chainer_lstm_links(tmp_path):
    chainer = pytest.importorskip("chainer", reason="Chainer needs NumPy < 2; not installable here")
    import chainer.links as L

    class Predictor(chainer.Chain):
        def __init__(self):
            super().__init__()
            with self.init_scope():
                self.l1, self.l2 = L.LSTM(D, H), L.LSTM(H, H)

        def __call__(self, x):
            return self.l2(self.l1(x))

    class Model(chainer.Chain):
        def __init__(self):
            super().__init__()
            with self.init_scope():
                self.predictor = Predictor()

    model = Model()
    for p in model.params():
        p.array[...] = np.random.default_rng(1).uniform(-0.5, 0.5, p.shape)
    ref = np.stack([model.predictor(X[t]).array for t in range(T)])
    chainer.serializers.save_npz(str(tmp_path / "model.npz"), model)
    module = torch_layer("LSTM", 2, False)
    load_weights(module, load_checkpoint(tmp_path / "model.npz"), "chainer")
    np.testing.assert_allclose(torch_out(module), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_chainer_nstep_both_ways(tmp_path, kind):
    chainer = pytest.importorskip("chainer", reason="Chainer needs NumPy < 2; not installable here")
    import chainer.links as L

    link = {"LSTM": L.NStepBiLSTM, "GRU": L.NStepBiGRU}[kind](2, D, H, 0.0)
    for p in link.params():
        p.array[...] = np.random.default_rng(2).uniform(-0.5, 0.5, p.shape)

    def run(link):
        ys = link(None, None, list(X.transpose(1, 0, 2)))[-1] if kind == "LSTM" else None
        ys = ys if ys is not None else link(None, list(X.transpose(1, 0, 2)))[-1]
        return np.stack([y.array for y in ys], axis=1)

    ref = run(link)
    chainer.serializers.save_npz(str(tmp_path / "n.npz"), link)
    module = torch_layer(kind)
    load_weights(module, load_checkpoint(tmp_path / "n.npz"), "chainer_nstep")
    np.testing.assert_allclose(torch_out(module), ref, rtol=0, atol=1e-5)

    src = torch_layer(kind, seed=3)
    np.savez(tmp_path / "back.npz", **export_weights(src, "chainer_nstep"))
    chainer.serializers.load_npz(str(tmp_path / "back.npz"), link)
    np.testing.assert_allclose(run(link), torch_out(src), rtol=0, atol=1e-5)
