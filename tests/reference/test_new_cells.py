"""The NumPy oracle of minGRU, minLSTM, IndRNN and sLSTM: hand-written backward passes against
numeric gradients (every option alone and together), and the equations checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.reference import (
    eval_numerical_gradient_array,
    indrnn_backward,
    indrnn_forward,
    mingru_backward,
    mingru_forward,
    minlstm_backward,
    minlstm_forward,
    positive_activation,
    rel_error,
    sigmoid,
    slstm_backward,
    slstm_dense_recurrent,
    slstm_forward,
    slstm_heads_gradient,
)

N, T, D, H = 3, 4, 4, 6
TOL = 1e-7
MASKS = ("zoneout_h", "dropout_mask")


def extended(args: dict) -> dict:
    """Float arrays in extended precision for the numeric side (as tests/reference/test_variants)."""
    return {
        k: v.astype(np.longdouble) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
        for k, v in args.items()
    }


def check_grads(forward, args: dict, grads: dict, dout, skip=()) -> None:
    """``grads['d' + name]`` equals the numeric gradient of ``sum(forward(**args) * dout)`` for
    every trainable array; no other gradient comes back."""
    trainable = {
        k for k, v in args.items() if isinstance(v, np.ndarray) and k not in MASKS and k not in skip
    }
    assert set(grads) == {f"d{k}" for k in trainable}
    ext = extended(args)
    for name in sorted(trainable):
        numeric = eval_numerical_gradient_array(lambda _: forward(**ext), ext[name], dout, h=1e-6)
        assert grads[f"d{name}"].dtype == np.float64, name
        assert rel_error(numeric.astype(np.float64), grads[f"d{name}"]) < TOL, name


def w(rng, *shape, scale=0.5):
    return scale * rng.standard_normal(shape)


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_min_cells_gradients(cell, layer_norm):
    rng = np.random.default_rng(0)
    g = 2 if cell == "mingru" else 3
    args = dict(x=w(rng, N, T, D, scale=1.0), h0=w(rng, N, H, scale=1.0), Wx=w(rng, D, g * H),
                b=w(rng, g * H))  # fmt: skip
    if layer_norm:
        args["gamma_x"] = 1.0 + w(rng, g * H, scale=0.2)
    fwd, bwd = (mingru_forward, mingru_backward) if cell == "mingru" else (minlstm_forward,
                                                                           minlstm_backward)  # fmt: skip
    h, cache = fwd(**args)
    dout = rng.standard_normal(h.shape)
    check_grads(lambda **a: fwd(**a)[0], args, bwd(dout, cache), dout)


def test_min_cells_equations_by_hand():
    rng = np.random.default_rng(1)
    x, h0 = rng.standard_normal((2, 1, 3)), rng.standard_normal((2, 4))
    Wx, b = rng.standard_normal((3, 12)), rng.standard_normal(12)
    k = x[:, 0] @ Wx + b
    k_f, k_i, k_h = k[:, :4], k[:, 4:8], k[:, 8:]
    f, i = sigmoid(k_f), sigmoid(k_i)
    g_h = np.where(k_h >= 0, k_h + 0.5, sigmoid(k_h))
    h, _ = minlstm_forward(x, h0, Wx, b)
    np.testing.assert_allclose(h[:, 0], f / (f + i) * h0 + i / (f + i) * g_h, rtol=0, atol=1e-14)
    z = sigmoid(k[:, :4])
    h, _ = mingru_forward(x, h0, Wx[:, :8], b[:8])
    g_h = np.where(k[:, 4:8] >= 0, k[:, 4:8] + 0.5, sigmoid(k[:, 4:8]))
    np.testing.assert_allclose(h[:, 0], (1 - z) * h0 + z * g_h, rtol=0, atol=1e-14)
    value, slope = positive_activation(np.array([-2.0, 0.0, 3.0]))
    np.testing.assert_allclose(value, [sigmoid(-2.0), 0.5, 3.5])
    np.testing.assert_allclose(slope, [sigmoid(-2.0) * (1 - sigmoid(-2.0)), 0.25, 1.0])


@pytest.mark.parametrize(
    "options", [{}, {"layer_norm": True}, {"recurrent_max": 0.7}, {"zoneout": "binary"},
                {"zoneout": "eval"}, {"dropout": True},
                {"layer_norm": True, "recurrent_max": 0.9, "zoneout": "binary", "dropout": True}],
    ids=lambda o: "-".join(o) or "plain",
)  # fmt: skip
def test_indrnn_gradients(options):
    rng = np.random.default_rng(2)
    args = dict(x=w(rng, N, T, D, scale=1.0), h0=np.abs(w(rng, N, H)), Wx=w(rng, D, H),
                u=rng.uniform(-1.2, 1.2, H), b=0.3 + w(rng, H, scale=0.2))  # fmt: skip
    if options.get("layer_norm"):
        args["gamma_x"] = 1.0 + w(rng, H, scale=0.2)
    if "recurrent_max" in options:
        args["recurrent_max"] = options["recurrent_max"]
        args["u"][:2] = [1.1, -1.05]  # clipped: no gradient
    if options.get("zoneout") == "binary":
        args["zoneout_h"] = (rng.random((N, T, H)) < 0.3).astype(float)
    elif options.get("zoneout") == "eval":
        args["zoneout_h"] = 0.3
    if options.get("dropout"):
        args["dropout_mask"] = (rng.random((N, H)) < 0.7) / 0.7
    h, cache = indrnn_forward(**args)
    dout = rng.standard_normal(h.shape)
    grads = indrnn_backward(dout, cache)
    check_grads(lambda **a: indrnn_forward(**a)[0], args, grads, dout)
    if "recurrent_max" in options:
        clipped = np.abs(args["u"]) > args["recurrent_max"]
        assert clipped[:2].all() and (grads["du"][clipped] == 0).all()
        assert (grads["du"][~clipped] != 0).any()


def test_indrnn_equation_by_hand():
    rng = np.random.default_rng(3)
    x, h0 = rng.standard_normal((2, 1, 3)), rng.standard_normal((2, 4))
    Wx, u, b = rng.standard_normal((3, 4)), np.array([0.5, 2.0, -3.0, 0.1]), rng.standard_normal(4)
    h, _ = indrnn_forward(x, h0, Wx, u, b, recurrent_max=1.5)
    expected = np.maximum(x[:, 0] @ Wx + np.array([0.5, 1.5, -1.5, 0.1]) * h0 + b, 0)
    np.testing.assert_allclose(h[:, 0], expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "options", [{}, {"layer_norm": True}, {"forget_gate": "sigmoid"}, {"dropout": True},
                {"layer_norm": True, "forget_gate": "sigmoid", "dropout": True}],
    ids=lambda o: "-".join(o) or "plain",
)  # fmt: skip
def test_slstm_gradients_of_outputs_and_every_final_state(options):
    rng = np.random.default_rng(4)
    heads = 2
    R = w(rng, heads, 4 * H // heads, H // heads)
    args = dict(x=w(rng, N, T, D, scale=1.0), h0=w(rng, N, H), c0=w(rng, N, H),
                n0=np.abs(w(rng, N, H)) + 0.5, m0=w(rng, N, H), Wx=w(rng, D, 4 * H),
                Wh=slstm_dense_recurrent(R), b=w(rng, 4 * H))  # fmt: skip
    if options.get("layer_norm"):
        args.update(gamma_x=1.0 + w(rng, 4 * H, scale=0.2), gamma_h=1.0 + w(rng, 4 * H, scale=0.2))
    if "forget_gate" in options:
        args["forget_gate"] = options["forget_gate"]
    if options.get("dropout"):
        args["dropout_mask"] = (rng.random((N, H)) < 0.7) / 0.7
    h, (c, n, m), cache = slstm_forward(**args)
    douts = [rng.standard_normal(a.shape) for a in (h, c, n, m)]
    grads = slstm_backward(douts[0], tuple(douts[1:]), cache)

    def loss_of(**a):
        h, (c, n, m), _ = slstm_forward(**a)
        return np.concatenate([h.reshape(-1), c.reshape(-1), n.reshape(-1), m.reshape(-1)])

    dflat = np.concatenate([d.reshape(-1) for d in douts])
    check_grads(loss_of, args, grads, dflat)
    # the block-diagonal weight's gradient: the blocks of the dense one, zero elsewhere
    dR = slstm_heads_gradient(grads["dWh"], heads)
    assert (
        rel_error(slstm_dense_recurrent(dR), grads["dWh"] * (slstm_dense_recurrent(R) != 0)) < 1e-15
    )


def test_slstm_equations_by_hand_and_the_stabiliser_cancels():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 3))
    Wx, Wh, b = rng.standard_normal((3, 16)), rng.standard_normal((4, 16)), rng.standard_normal(16)
    zeros = np.zeros((2, 4))
    h, (c, n, m), _ = slstm_forward(x, zeros, None, None, None, Wx, Wh, b)
    # unstabilised: c_t = f c + i tanh(z), n_t = f n + i with f = exp(f~), i = exp(i~)
    hp, cp, np_ = zeros, zeros, zeros
    for t in range(3):
        a = x[:, t] @ Wx + hp @ Wh + b
        i, f, z, o = np.exp(a[:, :4]), np.exp(a[:, 4:8]), np.tanh(a[:, 8:12]), sigmoid(a[:, 12:])
        cp, np_ = f * cp + i * z, f * np_ + i
        hp = o * cp / np_
        np.testing.assert_allclose(h[:, t], hp, rtol=1e-12, atol=0)
    np.testing.assert_allclose(c * np.exp(m), cp, rtol=1e-12)
    np.testing.assert_allclose(n * np.exp(m), np_, rtol=1e-12)
    assert (n > 0).all()


def test_slstm_dense_recurrent_layout():
    R = np.arange(2 * 8 * 2, dtype=float).reshape(2, 8, 2)  # 2 heads, H = 4, 4 gates
    W = slstm_dense_recurrent(R).T  # (4H, H), torch orientation
    assert W.shape == (16, 4)
    # gate 1 (f), unit 3 = head 1, unit 1 of the head: row 1*4 + 3 reads units 2, 3 of h
    np.testing.assert_array_equal(W[1 * 4 + 3], [0, 0, *R[1, 1 * 2 + 1]])
    with pytest.raises(ValueError, match="forget_gate: expected one of"):
        slstm_forward(np.zeros((1, 1, 1)), np.zeros((1, 4)), None, None, None,
                      np.zeros((1, 16)), W.T, np.zeros(16), forget_gate="tanh")  # fmt: skip
