"""rnnkit.reference.variants: numeric gradients for every option alone and combined, the
options' defining formulas, equality with the plain functions, parity with torch.nn."""

import numpy as np
import pytest

from rnnkit.reference import (
    eval_numerical_gradient_array,
    gru_backward,
    gru_forward,
    gru_step_forward,
    gru_variant_backward,
    gru_variant_forward,
    gru_variant_step_forward,
    layer_norm_backward,
    layer_norm_forward,
    lstm_backward,
    lstm_forward,
    lstm_step_forward,
    lstm_variant_backward,
    lstm_variant_forward,
    lstm_variant_step_backward,
    lstm_variant_step_forward,
    rel_error,
    rnn_backward,
    rnn_forward,
    rnn_variant_backward,
    rnn_variant_forward,
    rnn_variant_step_forward,
)

TOL = 1e-7
H_STEP = 1e-6
N, T, D, H = 3, 4, 4, 5
MASKS = ("zoneout_h", "zoneout_c", "dropout_mask")


def extended(args: dict) -> dict:
    """Float arrays as np.longdouble: the numeric reference is computed in extended precision so
    that round-off (~1e-11 in float64) does not dominate rel_error on near-zero gradient elements;
    the analytic gradients under test stay float64."""
    return {
        k: v.astype(np.longdouble) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
        for k, v in args.items()
    }


def check_grads(forward, args: dict, grads: dict, dout) -> None:
    """Every trainable array in ``args`` has ``grads['d' + name]`` equal to the numeric gradient
    of ``sum(forward(**args) * dout)``, and no other gradient is returned."""
    trainable = {k for k, v in args.items() if isinstance(v, np.ndarray) and k not in MASKS}
    assert set(grads) == {f"d{k}" for k in trainable}
    ext = extended(args)
    for name in sorted(trainable):
        numeric = eval_numerical_gradient_array(lambda _: forward(**ext), ext[name], dout, h=H_STEP)
        assert grads[f"d{name}"].dtype == np.float64, name
        assert rel_error(numeric.astype(np.float64), grads[f"d{name}"]) < TOL, name


def weight(rng, fan_in, fan_out):
    return rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)


def near_one(rng, *shape):
    return 1.0 + 0.2 * rng.standard_normal(shape)


def option_values(rng, options: tuple, k: int) -> dict:
    """Option arrays for a cell with k gates; zoneout_* 'binary' draws 0/1 masks per step,
    'eval' passes the rate itself (a scalar, broadcast to every step)."""
    out = {}
    if "layer_norm" in options:
        out.update(gamma_x=near_one(rng, k * H), gamma_h=near_one(rng, k * H))
        if k == 4:
            out.update(gamma_c=near_one(rng, H), beta_c=0.3 * rng.standard_normal(H))
    if "peephole" in options:
        out["peephole"] = 0.5 * rng.standard_normal((3, H))
    if "zoneout" in options:
        out["zoneout_h"] = (rng.random((N, T, H)) < 0.3).astype(float)
        if k == 4:
            out["zoneout_c"] = (rng.random((N, T, H)) < 0.3).astype(float)
    if "zoneout_eval" in options:
        out["zoneout_h"] = 0.3
        if k == 4:
            out["zoneout_c"] = 0.1
    if "dropout" in options:
        out["dropout_mask"] = (rng.random((N, H)) > 0.25) / 0.75
    return out


LSTM_CONFIGS = {
    "layer_norm": ("layer_norm",),
    "peephole": ("peephole",),
    "zoneout": ("zoneout",),
    "zoneout_eval": ("zoneout_eval",),
    "dropout": ("dropout",),
    "all": ("layer_norm", "peephole", "zoneout", "dropout"),
    "all_eval": ("layer_norm", "peephole", "zoneout_eval"),
}
GRU_CONFIGS = {  # no peephole outside the LSTM
    k: tuple(o for o in v if o != "peephole") for k, v in LSTM_CONFIGS.items() if k != "peephole"
}


# ------------------------------------------------------------------------------------ layer norm
def test_layer_norm_normalises_the_last_axis_and_has_exact_gradients():
    rng = np.random.default_rng(0)
    a = 2.0 + 3.0 * rng.standard_normal((N, 4 * H))
    y, _ = layer_norm_forward(a, np.ones(4 * H), eps=0.0)
    np.testing.assert_allclose(y.mean(axis=1), 0.0, atol=1e-14)
    np.testing.assert_allclose(y.var(axis=1), 1.0, rtol=1e-12)
    args = dict(a=a, gamma=near_one(rng, 4 * H), beta=rng.standard_normal(4 * H))
    y, cache = layer_norm_forward(**args)
    dy = rng.standard_normal(y.shape)
    da, dgamma, dbeta = layer_norm_backward(dy, cache)
    grads = dict(da=da, dgamma=dgamma, dbeta=dbeta)
    check_grads(lambda **kw: layer_norm_forward(**kw)[0], args, grads, dy)


# ------------------------------------------------------------------------------------------- LSTM
def lstm_args(seed: int, options: tuple) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        x=rng.standard_normal((N, T, D)),
        h0=rng.standard_normal((N, H)),
        c0=rng.standard_normal((N, H)),
        Wx=weight(rng, D, 4 * H),
        Wh=weight(rng, H, 4 * H),
        b=rng.standard_normal(4 * H),
        **option_values(rng, options, 4),
    )


def lstm_h_and_c(**args):
    h, c_last, _ = lstm_variant_forward(**args)
    return np.concatenate([h.ravel(), c_last.ravel()])


@pytest.mark.parametrize("config", sorted(LSTM_CONFIGS))
def test_lstm_variant_backward_matches_numeric(config):
    args = lstm_args(1, LSTM_CONFIGS[config])
    rng = np.random.default_rng(2)
    h, c_last, cache = lstm_variant_forward(**args)
    dh, dc_last = rng.standard_normal(h.shape), rng.standard_normal(c_last.shape)
    grads = lstm_variant_backward(dh, dc_last, cache)
    check_grads(lstm_h_and_c, args, grads, np.concatenate([dh.ravel(), dc_last.ravel()]))


def test_lstm_variant_step_backward_all_options():
    full = lstm_args(3, LSTM_CONFIGS["all"])
    args = dict(full, x=full["x"][:, 0], zoneout_h=full["zoneout_h"][:, 0])
    args["zoneout_c"] = full["zoneout_c"][:, 0]
    args["prev_h"], args["prev_c"] = args.pop("h0"), args.pop("c0")
    next_h, next_c, cache = lstm_variant_step_forward(**args)
    rng = np.random.default_rng(4)
    dnext_h, dnext_c = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    grads = lstm_variant_step_backward(dnext_h, dnext_c, cache)

    def both(**kw):
        return np.concatenate(lstm_variant_step_forward(**kw)[:2], axis=1)

    check_grads(both, args, grads, np.concatenate([dnext_h, dnext_c], axis=1))


def test_lstm_variant_with_options_off_equals_plain_lstm():
    args = lstm_args(5, ())
    del args["c0"]
    rng = np.random.default_rng(6)
    h, c_last, cache = lstm_variant_forward(**args, c0=None)
    h_ref, cache_ref = lstm_forward(**args)
    np.testing.assert_array_equal(h, h_ref)
    dh = rng.standard_normal(h.shape)
    grads = lstm_variant_backward(dh, None, cache)
    for name, ref in zip(["dx", "dh0", "dWx", "dWh", "db"], lstm_backward(dh, cache_ref)):
        np.testing.assert_allclose(grads[name], ref, rtol=1e-13, atol=1e-15)


def test_lstm_zoneout_all_ones_keeps_the_state():
    args = lstm_args(7, ())
    h, c_last, cache = lstm_variant_forward(**args, zoneout_h=1.0, zoneout_c=np.ones((N, T, H)))
    np.testing.assert_array_equal(h, np.broadcast_to(args["h0"][:, None], h.shape))
    np.testing.assert_array_equal(c_last, args["c0"])
    rng = np.random.default_rng(8)
    dh, dc = rng.standard_normal(h.shape), rng.standard_normal(c_last.shape)
    grads = lstm_variant_backward(dh, dc, cache)
    np.testing.assert_allclose(grads["dh0"], dh.sum(axis=1))
    np.testing.assert_array_equal(grads["dc0"], dc)
    np.testing.assert_array_equal(grads["dx"], 0.0)
    np.testing.assert_array_equal(grads["dWh"], 0.0)


def test_lstm_zoneout_eval_is_the_expected_value():
    a = lstm_args(9, ())
    x, h, c = a["x"][:, 0], a["h0"], a["c0"]
    h_new, c_new, _ = lstm_step_forward(x, h, c, a["Wx"], a["Wh"], a["b"])
    next_h, next_c, _ = lstm_variant_step_forward(
        x, h, c, a["Wx"], a["Wh"], a["b"], zoneout_h=0.3, zoneout_c=0.1
    )
    np.testing.assert_allclose(next_h, 0.3 * h + 0.7 * h_new, rtol=1e-14)
    np.testing.assert_allclose(next_c, 0.1 * c + 0.9 * c_new, rtol=1e-14)


def test_lstm_peephole_formula():
    a = lstm_args(10, ())
    x, h, c = a["x"][:, 0], a["h0"], a["c0"]
    P = np.zeros((3, H))
    plain = lstm_step_forward(x, h, c, a["Wx"], a["Wh"], a["b"])[:2]
    np.testing.assert_array_equal(
        lstm_variant_step_forward(x, h, c, a["Wx"], a["Wh"], a["b"], peephole=P)[:2], plain
    )
    # a peephole on the input gate equals an input-gate bias of P[0] * c_prev per sample
    P[0] = 0.7
    shifted = [
        lstm_step_forward(x[n : n + 1], h[n : n + 1], c[n : n + 1], a["Wx"], a["Wh"],
                          a["b"] + np.r_[0.7 * c[n], np.zeros(3 * H)])[:2]
        for n in range(N)
    ]  # fmt: skip
    ours = lstm_variant_step_forward(x, h, c, a["Wx"], a["Wh"], a["b"], peephole=P)[:2]
    np.testing.assert_allclose(ours[0], np.concatenate([s[0] for s in shifted]), rtol=1e-14)
    np.testing.assert_allclose(ours[1], np.concatenate([s[1] for s in shifted]), rtol=1e-14)


def test_lstm_recurrent_dropout_masks_only_the_recurrent_input():
    a = lstm_args(11, ())
    x, h, c = a["x"][:, 0], a["h0"], a["c0"]
    zeros = lstm_variant_step_forward(x, h, c, a["Wx"], a["Wh"], a["b"], dropout_mask=0.0)
    no_wh = lstm_step_forward(x, h, c, a["Wx"], np.zeros_like(a["Wh"]), a["b"])
    np.testing.assert_allclose(zeros[0], no_wh[0], rtol=1e-14)
    grads = lstm_variant_step_backward(np.ones((N, H)), np.ones((N, H)), zeros[2])
    np.testing.assert_array_equal(grads["dprev_h"], 0.0)
    # the same mask at every step: the sequence equals stepping by hand
    m = np.random.default_rng(12).random((N, H)) * 2
    h_seq, c_last, _ = lstm_variant_forward(**a, dropout_mask=m)
    for t in range(T):
        h, c, _ = lstm_variant_step_forward(
            a["x"][:, t], h if t else a["h0"], c, a["Wx"], a["Wh"], a["b"], dropout_mask=m
        )
        np.testing.assert_array_equal(h_seq[:, t], h)
    np.testing.assert_array_equal(c_last, c)


def test_lstm_layer_norm_is_invariant_to_weight_scale():
    a = lstm_args(13, ("layer_norm",))
    ln = {k: a[k] for k in ("gamma_x", "gamma_h", "gamma_c", "beta_c")}
    base = dict(x=a["x"], h0=a["h0"], c0=a["c0"], b=a["b"], eps=0.0, **ln)
    h1, c1, _ = lstm_variant_forward(Wx=a["Wx"], Wh=a["Wh"], **base)
    h2, c2, _ = lstm_variant_forward(Wx=3.0 * a["Wx"], Wh=0.5 * a["Wh"], **base)
    np.testing.assert_allclose(h1, h2, rtol=1e-12)
    np.testing.assert_allclose(c1, c2, rtol=1e-12)


# -------------------------------------------------------------------------------------------- GRU
def gru_args(seed: int, options: tuple) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        x=rng.standard_normal((N, T, D)),
        h0=rng.standard_normal((N, H)),
        Wx=weight(rng, D, 3 * H),
        Wh=weight(rng, H, 3 * H),
        bx=rng.standard_normal(3 * H),
        bh=rng.standard_normal(3 * H),
        **option_values(rng, options, 3),
    )


@pytest.mark.parametrize("config", sorted(GRU_CONFIGS))
def test_gru_variant_backward_matches_numeric(config):
    args = gru_args(20, GRU_CONFIGS[config])
    h, cache = gru_variant_forward(**args)
    dh = np.random.default_rng(21).standard_normal(h.shape)
    grads = gru_variant_backward(dh, cache)
    check_grads(lambda **kw: gru_variant_forward(**kw)[0], args, grads, dh)


def test_gru_variant_with_options_off_equals_plain_gru():
    args = gru_args(22, ())
    h, cache = gru_variant_forward(**args)
    h_ref, cache_ref = gru_forward(**args)
    np.testing.assert_array_equal(h, h_ref)
    dh = np.random.default_rng(23).standard_normal(h.shape)
    grads = gru_variant_backward(dh, cache)
    names = ["dx", "dh0", "dWx", "dWh", "dbx", "dbh"]
    for name, ref in zip(names, gru_backward(dh, cache_ref)):
        np.testing.assert_allclose(grads[name], ref, rtol=1e-13, atol=1e-15)


def test_gru_zoneout_and_dropout_formulas():
    a = gru_args(24, ())
    x, h = a["x"][:, 0], a["h0"]
    h_new, _ = gru_step_forward(x, h, a["Wx"], a["Wh"], a["bx"], a["bh"])
    ones, _ = gru_variant_step_forward(x, h, a["Wx"], a["Wh"], a["bx"], a["bh"], zoneout_h=1)
    np.testing.assert_array_equal(ones, h)
    ev, _ = gru_variant_step_forward(x, h, a["Wx"], a["Wh"], a["bx"], a["bh"], zoneout_h=0.25)
    np.testing.assert_allclose(ev, 0.25 * h + 0.75 * h_new, rtol=1e-14)
    # dropout zeroes h only inside h Wh: the carried z * h_prev term stays
    dropped, _ = gru_variant_step_forward(
        x, h, a["Wx"], a["Wh"], a["bx"], a["bh"], dropout_mask=np.zeros((N, 1))
    )
    no_wh, _ = gru_step_forward(x, h, a["Wx"], np.zeros_like(a["Wh"]), a["bx"], a["bh"])
    np.testing.assert_allclose(dropped, no_wh, rtol=1e-14)


# -------------------------------------------------------------------------------------------- RNN
def rnn_args(seed: int, options: tuple) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        x=rng.standard_normal((N, T, D)),
        h0=rng.standard_normal((N, H)),
        Wx=weight(rng, D, H),
        Wh=weight(rng, H, H),
        b=rng.standard_normal(H),
        **option_values(rng, options, 1),
    )


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("config", ["none", *sorted(GRU_CONFIGS)])
def test_rnn_variant_backward_matches_numeric(config, nonlinearity):
    args = rnn_args(30, GRU_CONFIGS.get(config, ()))
    h, cache = rnn_variant_forward(**args, nonlinearity=nonlinearity)
    dh = np.random.default_rng(32).standard_normal(h.shape)
    grads = rnn_variant_backward(dh, cache)
    check_grads(
        lambda **kw: rnn_variant_forward(**kw, nonlinearity=nonlinearity)[0], args, grads, dh
    )


def test_rnn_variant_with_options_off_equals_plain_rnn_and_relu_formula():
    args = rnn_args(33, ())
    h, cache = rnn_variant_forward(**args)
    h_ref, cache_ref = rnn_forward(**args)
    np.testing.assert_array_equal(h, h_ref)
    dh = np.random.default_rng(34).standard_normal(h.shape)
    grads = rnn_variant_backward(dh, cache)
    for name, ref in zip(["dx", "dh0", "dWx", "dWh", "db"], rnn_backward(dh, cache_ref)):
        np.testing.assert_allclose(grads[name], ref, rtol=1e-13, atol=1e-15)
    x, h0 = args["x"][:, 0], args["h0"]
    relu, _ = rnn_variant_step_forward(
        x, h0, args["Wx"], args["Wh"], args["b"], nonlinearity="relu"
    )
    np.testing.assert_array_equal(relu, np.maximum(x @ args["Wx"] + h0 @ args["Wh"] + args["b"], 0))


# ----------------------------------------------------------------------------------------- errors
def test_bad_options_raise_value_errors_naming_the_problem():
    a = lstm_args(40, ())
    x, h, c, Wx, Wh, b = a["x"][:, 0], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"]
    with pytest.raises(ValueError, match=r"gamma_x: expected shape \(20,\), got \(5,\)"):
        lstm_variant_step_forward(x, h, c, Wx, Wh, b, gamma_x=np.ones(H))
    with pytest.raises(ValueError, match="beta for gamma_c needs gamma_c"):
        lstm_variant_step_forward(x, h, c, Wx, Wh, b, beta_c=np.zeros(H))
    with pytest.raises(ValueError, match=r"peephole: expected shape \(3, 5\)"):
        lstm_variant_step_forward(x, h, c, Wx, Wh, b, peephole=np.zeros((4, H)))
    with pytest.raises(ValueError, match="zoneout_h: expected a mask broadcastable"):
        lstm_variant_forward(a["x"], h, c, Wx, Wh, b, zoneout_h=np.ones((N, T + 1, H)))
    r = rnn_args(41, ())
    with pytest.raises(ValueError, match="nonlinearity: expected one of"):
        rnn_variant_forward(**r, nonlinearity="sigmoid")


# ------------------------------------------------------------------------------ parity with torch
def test_variants_equal_torch_nn_for_c0_and_relu():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    a = lstm_args(50, ())
    lstm = torch.nn.LSTM(D, H, batch_first=True).double()
    out, (h_n, c_n) = lstm(
        torch.tensor(a["x"]), (torch.tensor(a["h0"])[None], torch.tensor(a["c0"])[None])
    )
    perm = np.r_[0 : 2 * H, 3 * H : 4 * H, 2 * H : 3 * H]  # torch i,f,g,o -> CS231n i,f,o,g
    w_ih, w_hh, b_ih, b_hh = (p.detach().numpy() for p in lstm.parameters())
    h, c_last, _ = lstm_variant_forward(
        a["x"], a["h0"], a["c0"], w_ih.T[:, perm], w_hh.T[:, perm], (b_ih + b_hh)[perm]
    )
    np.testing.assert_allclose(h, out.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(c_last, c_n[0].detach().numpy(), rtol=0, atol=1e-10)

    r = rnn_args(51, ())
    rnn = torch.nn.RNN(D, H, nonlinearity="relu", batch_first=True).double()
    out, _ = rnn(torch.tensor(r["x"]), torch.tensor(r["h0"])[None])
    w_ih, w_hh, b_ih, b_hh = (p.detach().numpy() for p in rnn.parameters())
    h, _ = rnn_variant_forward(r["x"], r["h0"], w_ih.T, w_hh.T, b_ih + b_hh, nonlinearity="relu")
    np.testing.assert_allclose(h, out.detach().numpy(), rtol=0, atol=1e-10)
