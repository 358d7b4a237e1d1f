"""rnnkit.reference.layers and gradcheck: CS231n values, numeric gradients, parity with torch.nn."""

import numpy as np
import pytest

from rnnkit.reference import (
    affine_backward,
    affine_forward,
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    gru_backward,
    gru_forward,
    gru_step_backward,
    gru_step_forward,
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
    lstm_variant_forward,
    rel_error,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
    sigmoid,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)

TOL = 1e-7
H_STEP = 1e-6  # centred-difference step for the extended-precision numeric gradients
N, T, D, H = 3, 4, 4, 5


def randn(rng, *shape):
    return rng.standard_normal(shape)


def weight(rng, fan_in, fan_out):
    """Weights scaled as in practice (1/sqrt(fan_in)), which keeps the centred differences exact."""
    return rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)


def extended(args: dict) -> dict:
    """Float arrays in extended precision (np.longdouble, 64-bit mantissa on x86-64 Linux).

    The analytic gradients are float64; only the numeric reference is evaluated in extended
    precision, with a step h = 1e-6. In float64 the round-off of centred differences is ~1e-11,
    which alone puts rel_error above 1e-7 on any gradient element smaller than ~1e-4 (a quarter
    of random draws in practice); in extended precision that floor drops about 100-fold.
    """
    return {
        k: v.astype(np.longdouble) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
        for k, v in args.items()
    }


def check_grads(forward, args: dict, grads: dict, dout) -> None:
    """Every ``grads[name]`` equals the numeric gradient of ``sum(forward(**args) * dout)``."""
    ext = extended(args)
    for name, analytic in grads.items():
        numeric = eval_numerical_gradient_array(lambda _: forward(**ext), ext[name], dout, h=H_STEP)
        assert analytic.dtype == np.float64, name
        assert rel_error(numeric.astype(np.float64), analytic) < TOL, name


# ------------------------------------------------------------------------------ gradcheck helpers
def test_rel_error_is_cs231n_formula():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5)
    assert rel_error(np.array([0.0]), np.array([1e-9])) == pytest.approx(0.1)  # 1e-8 floor


def test_numeric_gradients_of_known_functions():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    grad = eval_numerical_gradient(lambda v: np.sum(v**3), x, verbose=False)
    np.testing.assert_allclose(grad, 3 * x**2, rtol=1e-8)
    np.testing.assert_array_equal(x, [[1.0, -2.0], [0.5, 3.0]])  # restored after perturbing
    df = np.array([[1.0, 2.0], [3.0, 4.0]])
    grad = eval_numerical_gradient_array(lambda v: np.sin(v), x, df)
    np.testing.assert_allclose(grad, np.cos(x) * df, rtol=1e-8)


def test_verbose_flags_log_instead_of_printing(caplog, capsys):
    x = np.array([1.0, 2.0])
    with caplog.at_level("INFO", logger="rnnkit.reference"):
        eval_numerical_gradient(lambda v: np.sum(v**2), x)
        temporal_softmax_loss(
            np.zeros((1, 2, 3)), np.zeros((1, 2), dtype=int), np.ones((1, 2)), True
        )
    assert len(caplog.records) == 3  # one line per component of x, one for the loss
    assert capsys.readouterr().out == ""


def test_numeric_gradient_rejects_integer_arrays():
    with pytest.raises(TypeError, match="floating-point"):
        eval_numerical_gradient(np.sum, np.arange(3), verbose=False)


def test_sigmoid_is_stable_and_exact():
    x = np.linspace(-30, 30, 61)
    np.testing.assert_allclose(sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-14)
    with np.errstate(over="raise"):
        s = sigmoid(np.array([-1000.0, 1000.0]))
    np.testing.assert_array_equal(s, [0.0, 1.0])
    np.testing.assert_allclose(sigmoid(-x), 1 - sigmoid(x), atol=1e-15)
    assert sigmoid(np.float32(2.0)).dtype == np.float32


# ------------------------------------------------------------------- CS231n notebook values (8 dp)
def test_rnn_step_forward_matches_cs231n_notebook():
    n, d, h = 3, 10, 4
    x = np.linspace(-0.4, 0.7, num=n * d).reshape(n, d)
    prev_h = np.linspace(-0.2, 0.5, num=n * h).reshape(n, h)
    Wx = np.linspace(-0.1, 0.9, num=d * h).reshape(d, h)
    Wh = np.linspace(-0.3, 0.7, num=h * h).reshape(h, h)
    b = np.linspace(-0.2, 0.4, num=h)
    next_h, _ = rnn_step_forward(x, prev_h, Wx, Wh, b)
    expected = [
        [-0.58172089, -0.50182032, -0.41232771, -0.31410098],
        [0.66854692, 0.79562378, 0.87755553, 0.92795967],
        [0.97934501, 0.99144213, 0.99646691, 0.99854353],
    ]
    np.testing.assert_allclose(next_h, expected, atol=1e-8)


def test_rnn_forward_matches_cs231n_notebook():
    n, t, d, h = 2, 3, 4, 5
    x = np.linspace(-0.1, 0.3, num=n * t * d).reshape(n, t, d)
    h0 = np.linspace(-0.3, 0.1, num=n * h).reshape(n, h)
    Wx = np.linspace(-0.2, 0.4, num=d * h).reshape(d, h)
    Wh = np.linspace(-0.4, 0.1, num=h * h).reshape(h, h)
    b = np.linspace(-0.7, 0.1, num=h)
    out, _ = rnn_forward(x, h0, Wx, Wh, b)
    expected = [
        [
            [-0.42070749, -0.27279261, -0.11074945, 0.05740409, 0.22236251],
            [-0.39525808, -0.22554661, -0.0409454, 0.14649412, 0.32397316],
            [-0.42305111, -0.24223728, -0.04287027, 0.15997045, 0.35014525],
        ],
        [
            [-0.55857474, -0.39065825, -0.19198182, 0.02378408, 0.23735671],
            [-0.27150199, -0.07088804, 0.13562939, 0.33099728, 0.50158768],
            [-0.51014825, -0.30524429, -0.06755202, 0.17806392, 0.40333043],
        ],
    ]
    np.testing.assert_allclose(out, expected, atol=1e-8)


def test_lstm_forward_matches_cs231n_notebook():
    n, d, h, t = 2, 5, 4, 3
    x = np.linspace(-0.4, 0.6, num=n * t * d).reshape(n, t, d)
    h0 = np.linspace(-0.4, 0.8, num=n * h).reshape(n, h)
    Wx = np.linspace(-0.2, 0.9, num=4 * d * h).reshape(d, 4 * h)
    Wh = np.linspace(-0.3, 0.6, num=4 * h * h).reshape(h, 4 * h)
    b = np.linspace(0.2, 0.7, num=4 * h)
    out, _ = lstm_forward(x, h0, Wx, Wh, b)
    expected = [
        [
            [0.01764008, 0.01823233, 0.01882671, 0.0194232],
            [0.11287491, 0.12146228, 0.13018446, 0.13902939],
            [0.31358768, 0.33338627, 0.35304453, 0.37250975],
        ],
        [
            [0.45767879, 0.4761092, 0.4936887, 0.51041945],
            [0.6704845, 0.69350089, 0.71486014, 0.7346449],
            [0.81733511, 0.83677871, 0.85403753, 0.86935314],
        ],
    ]
    np.testing.assert_allclose(out, expected, atol=1e-8)


# ----------------------------------------------------------------------- backward vs numeric grads
def test_rnn_step_backward():
    rng = np.random.default_rng(0)
    args = dict(
        x=randn(rng, N, D),
        prev_h=randn(rng, N, H),
        Wx=weight(rng, D, H),
        Wh=weight(rng, H, H),
        b=randn(rng, H),
    )
    out, cache = rnn_step_forward(**args)
    dout = randn(rng, *out.shape)
    dx, dprev_h, dWx, dWh, db = rnn_step_backward(dout, cache)
    grads = dict(x=dx, prev_h=dprev_h, Wx=dWx, Wh=dWh, b=db)
    check_grads(lambda **a: rnn_step_forward(**a)[0], args, grads, dout)


def test_rnn_backward():
    rng = np.random.default_rng(1)
    args = dict(
        x=randn(rng, N, T, D),
        h0=randn(rng, N, H),
        Wx=weight(rng, D, H),
        Wh=weight(rng, H, H),
        b=randn(rng, H),
    )
    out, cache = rnn_forward(**args)
    dout = randn(rng, *out.shape)
    dx, dh0, dWx, dWh, db = rnn_backward(dout, cache)
    grads = dict(x=dx, h0=dh0, Wx=dWx, Wh=dWh, b=db)
    check_grads(lambda **a: rnn_forward(**a)[0], args, grads, dout)


def test_lstm_step_backward():
    rng = np.random.default_rng(2)
    args = dict(
        x=randn(rng, N, D),
        prev_h=randn(rng, N, H),
        prev_c=randn(rng, N, H),
        Wx=weight(rng, D, 4 * H),
        Wh=weight(rng, H, 4 * H),
        b=randn(rng, 4 * H),
    )
    next_h, next_c, cache = lstm_step_forward(**args)
    dnext_h, dnext_c = randn(rng, N, H), randn(rng, N, H)
    dx, dprev_h, dprev_c, dWx, dWh, db = lstm_step_backward(dnext_h, dnext_c, cache)
    grads = dict(x=dx, prev_h=dprev_h, prev_c=dprev_c, Wx=dWx, Wh=dWh, b=db)

    def both(**a):
        return np.concatenate(lstm_step_forward(**a)[:2], axis=1)

    check_grads(both, args, grads, np.concatenate([dnext_h, dnext_c], axis=1))


def test_lstm_backward():
    rng = np.random.default_rng(3)
    args = dict(
        x=randn(rng, N, T, D),
        h0=randn(rng, N, H),
        Wx=weight(rng, D, 4 * H),
        Wh=weight(rng, H, 4 * H),
        b=randn(rng, 4 * H),
    )
    out, cache = lstm_forward(**args)
    dout = randn(rng, *out.shape)
    dx, dh0, dWx, dWh, db = lstm_backward(dout, cache)
    grads = dict(x=dx, h0=dh0, Wx=dWx, Wh=dWh, b=db)
    check_grads(lambda **a: lstm_forward(**a)[0], args, grads, dout)


def test_lstm_forward_cache_holds_the_final_cell_state():
    rng = np.random.default_rng(13)
    x, h0 = randn(rng, N, T, D), randn(rng, N, H)
    Wx, Wh, b = weight(rng, D, 4 * H), weight(rng, H, 4 * H), randn(rng, 4 * H)
    h, cache = lstm_forward(x, h0, Wx, Wh, b)
    h_var, c_last, _ = lstm_variant_forward(x, h0, None, Wx, Wh, b)
    np.testing.assert_array_equal(h, h_var)
    np.testing.assert_array_equal(cache[-1]["c_new"], c_last)


def test_gru_step_backward():
    rng = np.random.default_rng(4)
    args = dict(
        x=randn(rng, N, D),
        prev_h=randn(rng, N, H),
        Wx=weight(rng, D, 3 * H),
        Wh=weight(rng, H, 3 * H),
        bx=randn(rng, 3 * H),
        bh=randn(rng, 3 * H),
    )
    out, cache = gru_step_forward(**args)
    dout = randn(rng, *out.shape)
    dx, dprev_h, dWx, dWh, dbx, dbh = gru_step_backward(dout, cache)
    grads = dict(x=dx, prev_h=dprev_h, Wx=dWx, Wh=dWh, bx=dbx, bh=dbh)
    check_grads(lambda **a: gru_step_forward(**a)[0], args, grads, dout)


def test_gru_backward():
    rng = np.random.default_rng(5)
    args = dict(
        x=randn(rng, N, T, D),
        h0=randn(rng, N, H),
        Wx=weight(rng, D, 3 * H),
        Wh=weight(rng, H, 3 * H),
        bx=randn(rng, 3 * H),
        bh=randn(rng, 3 * H),
    )
    out, cache = gru_forward(**args)
    dout = randn(rng, *out.shape)
    dx, dh0, dWx, dWh, dbx, dbh = gru_backward(dout, cache)
    grads = dict(x=dx, h0=dh0, Wx=dWx, Wh=dWh, bx=dbx, bh=dbh)
    check_grads(lambda **a: gru_forward(**a)[0], args, grads, dout)


def test_word_embedding_forward_and_backward():
    rng = np.random.default_rng(6)
    V = 6
    idx = np.array([[0, 3, 1, 3], [2, 1, 0, 3]])  # word 3 three times, word 4/5 never
    W = randn(rng, V, D)
    out, cache = word_embedding_forward(idx, W)
    assert out.shape == (2, 4, D)
    np.testing.assert_array_equal(out[1, 0], W[2])
    dout = randn(rng, *out.shape)
    dW = word_embedding_backward(dout, cache)
    np.testing.assert_allclose(dW[3], dout[0, 1] + dout[0, 3] + dout[1, 3])
    np.testing.assert_array_equal(dW[4:], 0.0)
    numeric = eval_numerical_gradient_array(lambda _: word_embedding_forward(idx, W)[0], W, dout)
    assert rel_error(numeric, dW) < TOL


def test_affine_backward():
    rng = np.random.default_rng(7)
    args = dict(x=randn(rng, N, 2, 3), w=weight(rng, 6, H), b=randn(rng, H))
    out, cache = affine_forward(**args)
    np.testing.assert_allclose(out, args["x"].reshape(N, 6) @ args["w"] + args["b"])
    dout = randn(rng, *out.shape)
    dx, dw, db = affine_backward(dout, cache)
    check_grads(lambda **a: affine_forward(**a)[0], args, dict(x=dx, w=dw, b=db), dout)


def test_temporal_affine_backward():
    rng = np.random.default_rng(8)
    args = dict(x=randn(rng, N, T, D), w=weight(rng, D, H), b=randn(rng, H))
    out, cache = temporal_affine_forward(**args)
    np.testing.assert_allclose(out[1, 2], args["x"][1, 2] @ args["w"] + args["b"])
    dout = randn(rng, *out.shape)
    dx, dw, db = temporal_affine_backward(dout, cache)
    check_grads(lambda **a: temporal_affine_forward(**a)[0], args, dict(x=dx, w=dw, b=db), dout)


# ------------------------------------------------------------------------- temporal softmax loss
def test_temporal_softmax_loss_uniform_scores_is_log_v_times_masked_steps():
    rng = np.random.default_rng(9)
    for n, t, v, p in [(100, 1, 10, 1.0), (100, 10, 10, 1.0), (50, 10, 7, 0.3)]:
        y = rng.integers(v, size=(n, t))
        mask = rng.random((n, t)) <= p
        loss, dx = temporal_softmax_loss(np.zeros((n, t, v)), y, mask)
        assert loss == pytest.approx(np.log(v) * mask.sum() / n, rel=1e-12)
        np.testing.assert_array_equal(dx[~mask], 0.0)


def test_temporal_softmax_loss_gradient_and_stability():
    rng = np.random.default_rng(10)
    n, t, v = 3, 4, 6
    x = randn(rng, n, t, v)
    y = rng.integers(v, size=(n, t))
    mask = rng.random((n, t)) > 0.3
    loss, dx = temporal_softmax_loss(x, y, mask)
    xe = x.astype(np.longdouble)  # see extended()
    numeric = eval_numerical_gradient(
        lambda _: temporal_softmax_loss(xe, y, mask)[0], xe, verbose=False, h=H_STEP
    )
    assert rel_error(numeric.astype(np.float64), dx) < TOL
    shifted_loss, _ = temporal_softmax_loss(x + 1000.0, y, mask)  # shift invariance, no overflow
    assert shifted_loss == pytest.approx(loss, rel=1e-10)


# ------------------------------------------------------------------------------ parity with torch
def test_lstm_and_gru_forward_backward_equal_torch_nn():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rng = np.random.default_rng(11)
    x, h0 = randn(rng, N, T, D), randn(rng, N, H)
    dout = randn(rng, N, T, H)
    perm = np.r_[0:H, H : 2 * H, 3 * H : 4 * H, 2 * H : 3 * H]  # torch i,f,g,o -> CS231n i,f,o,g

    lstm = torch.nn.LSTM(D, H, batch_first=True).double()
    xt = torch.tensor(x, requires_grad=True)
    out, _ = lstm(xt, (torch.tensor(h0)[None], torch.zeros(1, N, H, dtype=torch.float64)))
    out.backward(torch.tensor(dout))
    w_ih, w_hh = lstm.weight_ih_l0.detach().numpy(), lstm.weight_hh_l0.detach().numpy()
    bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy()
    h, cache = lstm_forward(x, h0, w_ih.T[:, perm], w_hh.T[:, perm], bias[perm])
    np.testing.assert_allclose(h, out.detach().numpy(), rtol=0, atol=1e-10)
    dx, _, dWx, dWh, db = lstm_backward(dout, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(dWx, lstm.weight_ih_l0.grad.numpy().T[:, perm], atol=1e-10)
    np.testing.assert_allclose(dWh, lstm.weight_hh_l0.grad.numpy().T[:, perm], atol=1e-10)
    np.testing.assert_allclose(db, lstm.bias_ih_l0.grad.numpy()[perm], atol=1e-10)

    gru = torch.nn.GRU(D, H, batch_first=True).double()
    xt = torch.tensor(x, requires_grad=True)
    out, _ = gru(xt, torch.tensor(h0)[None])
    out.backward(torch.tensor(dout))
    params = [p.detach().numpy() for p in gru.parameters()]  # w_ih, w_hh, b_ih, b_hh
    h, cache = gru_forward(x, h0, params[0].T, params[1].T, params[2], params[3])
    np.testing.assert_allclose(h, out.detach().numpy(), rtol=0, atol=1e-10)
    dx, _, dWx, dWh, dbx, dbh = gru_backward(dout, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-10)
    for ours, p in zip([dWx.T, dWh.T, dbx, dbh], gru.parameters()):
        np.testing.assert_allclose(ours, p.grad.numpy(), atol=1e-10)


def test_rnn_forward_equals_torch_nn_rnn():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    rng = np.random.default_rng(12)
    x, h0 = randn(rng, N, T, D), randn(rng, N, H)
    rnn = torch.nn.RNN(D, H, batch_first=True).double()
    out, h_n = rnn(torch.tensor(x), torch.tensor(h0)[None])
    w_ih, w_hh, b_ih, b_hh = (p.detach().numpy() for p in rnn.parameters())
    h, _ = rnn_forward(x, h0, w_ih.T, w_hh.T, b_ih + b_hh)
    np.testing.assert_allclose(h, out.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(h[:, -1], h_n[0].detach().numpy(), rtol=0, atol=1e-10)
