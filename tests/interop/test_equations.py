"""Converted weights compute torch's outputs under each framework's own cell equations, written
here in NumPy from that framework's source (for the frameworks that do not install on this
Python)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.interop import export_gru_weights, export_lstm_weights, export_rnn_weights


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def torch_run(module, x):
    with torch.no_grad():
        return module(torch.from_numpy(x))[0].numpy()


def stack(x, steps, layers, directions):
    """Run ``steps[(k, d)](x_t, state) -> (h, state)`` over layers and directions, time-major."""
    for k in range(layers):
        outs = []
        for d in range(directions):
            state, hs = None, []
            order = range(len(x)) if d == 0 else reversed(range(len(x)))
            for t in order:
                h, state = steps[k, d](x[t], state)
                hs.append(h)
            outs.append(np.stack(hs if d == 0 else hs[::-1]))
        x = np.concatenate(outs, axis=-1)
    return x


X = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float64)


def lstm_module(layers=1, bidirectional=False):
    torch.manual_seed(0)
    return torch.nn.LSTM(3, 4, layers, bidirectional=bidirectional).double()


def gru_module(layers=1, bidirectional=False):
    torch.manual_seed(0)
    return torch.nn.GRU(3, 4, layers, bidirectional=bidirectional).double()


def test_cs231n_lstm_step_forward():
    """cs231n/rnn_layers.py: a = x Wx + h Wh + b; a_i, a_f, a_o, a_g; i, f, o = sigmoid; g =
    tanh."""
    lstm = lstm_module()
    p = export_lstm_weights(lstm, "cs231n")

    def step(x, state):
        h, c = state or (np.zeros((2, 4)), np.zeros((2, 4)))
        ai, af, ao, ag = np.split(x @ p["Wx"] + h @ p["Wh"] + p["b"], 4, axis=1)
        c = sigmoid(af) * c + sigmoid(ai) * np.tanh(ag)
        h = sigmoid(ao) * np.tanh(c)
        return h, (h, c)

    np.testing.assert_allclose(stack(X, {(0, 0): step}, 1, 1), torch_run(lstm, X), atol=1e-12)


def test_cs231n_rnn_step_forward():
    torch.manual_seed(0)
    rnn = torch.nn.RNN(3, 4).double()
    p = export_rnn_weights(rnn, "cs231n")

    def step(x, h):
        h = np.tanh(x @ p["Wx"] + (np.zeros((2, 4)) if h is None else h) @ p["Wh"] + p["b"])
        return h, h

    np.testing.assert_allclose(stack(X, {(0, 0): step}, 1, 1), torch_run(rnn, X), atol=1e-12)


def test_haste_lstm_and_gru_scripts():
    """haste frameworks/pytorch/lstm.py LSTMScript (chunks i, g, f, o) and gru.py GRUScript
    (z, r, g; reset after the recurrent matmul; h = z*h + (1-z)*g)."""
    lstm = lstm_module(2)
    p = export_lstm_weights(lstm, "haste")

    def lstm_step(k):
        def step(x, state):
            h, c = state or (np.zeros((2, 4)), np.zeros((2, 4)))
            v = h @ p[f"{k}.recurrent_kernel"] + x @ p[f"{k}.kernel"] + p[f"{k}.bias"]
            i, g, f, o = np.split(v, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            return h, (h, c)

        return step

    steps = {(k, 0): lstm_step(k) for k in range(2)}
    np.testing.assert_allclose(stack(X, steps, 2, 1), torch_run(lstm, X), atol=1e-12)

    gru = gru_module()
    q = export_gru_weights(gru, "haste")

    def gru_step(x, h):
        h = np.zeros((2, 4)) if h is None else h
        vx = np.split(x @ q["kernel"] + q["bias"], 3, axis=1)
        vh = np.split(h @ q["recurrent_kernel"] + q["recurrent_bias"], 3, axis=1)
        z, r = sigmoid(vx[0] + vh[0]), sigmoid(vx[1] + vh[1])
        g = np.tanh(vx[2] + r * vh[2])
        h = z * h + (1 - z) * g
        return h, h

    np.testing.assert_allclose(stack(X, {(0, 0): gru_step}, 1, 1), torch_run(gru, X), atol=1e-12)


def test_chainer_lstm_link():
    """chainer.links.LSTM: lstm(c, upward(x) + lateral(h)) where chainer.functions.lstm reads the
    4H pre-activations as (N, H, 4) -- a, i, f, o per unit; a = tanh, the gates sigmoid."""
    lstm = lstm_module(2)
    p = export_lstm_weights(lstm, "chainer")

    def link(k):
        def step(x, state):
            h, c = state or (np.zeros((2, 4)), np.zeros((2, 4)))
            z = x @ p[f"l{k}/upward/W"].T + p[f"l{k}/upward/b"] + h @ p[f"l{k}/lateral/W"].T
            z = z.reshape(len(z), -1, 4)
            a, i, f, o = (z[:, :, q] for q in range(4))
            c = np.tanh(a) * sigmoid(i) + sigmoid(f) * c
            h = sigmoid(o) * np.tanh(c)
            return h, (h, c)

        return step

    steps = {(k, 0): link(k + 1) for k in range(2)}
    np.testing.assert_allclose(stack(X, steps, 2, 1), torch_run(lstm, X), atol=1e-12)


def test_chainer_nstep_lstm_as_computed():
    """chainer/functions/rnn/n_step_lstm.py ``_lstm``: xw = stack([w2, w0, w1, w3]) fed to lstm's
    a, i, f, o -- so w0 i, w1 f, w2 a, w3 o (its docstring's formula swaps w2/w3); children
    ``2*layer + direction``."""
    lstm = lstm_module(2, True)
    p = export_lstm_weights(lstm, "chainer_nstep")

    def child(j):
        w = [p[f"{j}/w{n}"] for n in range(8)]
        b = [p[f"{j}/b{n}"] for n in range(8)]

        def pre(n, x, h):
            return x @ w[n].T + b[n] + h @ w[n + 4].T + b[n + 4]

        def step(x, state):
            h, c = state or (np.zeros((2, 4)), np.zeros((2, 4)))
            i, f, a, o = (pre(n, x, h) for n in range(4))
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(a)
            h = sigmoid(o) * np.tanh(c)
            return h, (h, c)

        return step

    steps = {(k, d): child(2 * k + d) for k in range(2) for d in range(2)}
    np.testing.assert_allclose(stack(X, steps, 2, 2), torch_run(lstm, X), atol=1e-12)


def test_chainer_nstep_gru():
    """n_step_gru: r = s(W0 x + W3 h + b0 + b3), z = s(W1 x + W4 h + b1 + b4),
    h_bar = tanh(W2 x + b2 + r * (W5 h + b5)), h = (1 - z) * h_bar + z * h."""
    gru = gru_module(1, True)
    p = export_gru_weights(gru, "chainer_nstep")

    def child(j):
        def lin(n, v):
            return v @ p[f"{j}/w{n}"].T + p[f"{j}/b{n}"]

        def step(x, h):
            h = np.zeros((2, 4)) if h is None else h
            r = sigmoid(lin(0, x) + lin(3, h))
            z = sigmoid(lin(1, x) + lin(4, h))
            h = (1 - z) * np.tanh(lin(2, x) + r * lin(5, h)) + z * h
            return h, h

        return step

    steps = {(0, d): child(d) for d in range(2)}
    np.testing.assert_allclose(stack(X, steps, 1, 2), torch_run(gru, X), atol=1e-12)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_gluon_cells(kind):
    """mxnet/gluon/rnn/rnn_cell.py: LSTMCell slices i2h + h2h into in_gate, forget_gate,
    in_transform, out_gate; GRUCell into r, z, h with next_h_tmp = tanh(i2h + r * h2h),
    next_h = (1 - z) * next_h_tmp + z * h. Layers ``l{k}``/``r{k}``."""
    module = lstm_module(2, True) if kind == "LSTM" else gru_module(2, True)
    export = export_lstm_weights if kind == "LSTM" else export_gru_weights
    p = export(module, "gluon")

    def cell(prefix):
        def lin(x, name):
            return x @ p[f"{prefix}_{name}_weight"].T + p[f"{prefix}_{name}_bias"]

        def lstm_step(x, state):
            h, c = state or (np.zeros((2, 4)), np.zeros((2, 4)))
            i, f, g, o = np.split(lin(x, "i2h") + lin(h, "h2h"), 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            return h, (h, c)

        def gru_step(x, h):
            h = np.zeros((2, 4)) if h is None else h
            xr, xz, xn = np.split(lin(x, "i2h"), 3, axis=1)
            hr, hz, hn = np.split(lin(h, "h2h"), 3, axis=1)
            r, z = sigmoid(xr + hr), sigmoid(xz + hz)
            h = (1 - z) * np.tanh(xn + r * hn) + z * h
            return h, h

        return lstm_step if kind == "LSTM" else gru_step

    steps = {(k, d): cell(f"{'r' if d else 'l'}{k}") for k in range(2) for d in range(2)}
    np.testing.assert_allclose(stack(X, steps, 2, 2), torch_run(module, X), atol=1e-12)


def test_flax_gru_equations():
    """flax linen GRUCell: r = s(ir(x) + hr(h)), z = s(iz(x) + hz(h)),
    n = tanh(in(x) + r * hn(h)), h = (1 - z) * n + z * h; biases on ir, iz, in, hn."""
    gru = gru_module()
    p = export_gru_weights(gru, "flax")

    def dense(name, v):
        return v @ p[f"{name}/kernel"] + p.get(f"{name}/bias", 0.0)

    def step(x, h):
        h = np.zeros((2, 4)) if h is None else h
        r = sigmoid(dense("ir", x) + dense("hr", h))
        z = sigmoid(dense("iz", x) + dense("hz", h))
        n = np.tanh(dense("in", x) + r * dense("hn", h))
        h = (1 - z) * n + z * h
        return h, h

    assert "hr/bias" not in p and "ir/bias" in p
    np.testing.assert_allclose(stack(X, {(0, 0): step}, 1, 1), torch_run(gru, X), atol=1e-12)
