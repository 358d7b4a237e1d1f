"""Round trips through every layout, shape checks, and what each layout refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.interop import (
    LAYOUTS,
    ResetBeforeError,
    export_gru_weights,
    export_lstm_weights,
    export_rnn_weights,
    export_weights,
    get_layout,
    load_gru_weights,
    load_lstm_weights,
    load_weights,
)
from rnnkit.interop.weights import reorder

CLASSES = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}
SHAPES = [(1, False), (2, False), (1, True), (3, True)]


def supports(layout: str, mode: str, layers: int, bidirectional: bool) -> bool:
    lay = get_layout(layout)
    torch_mode = "RNN_TANH" if mode == "RNN" else mode
    return (
        torch_mode in lay.modes
        and (layers == 1 or lay.multilayer)
        and (not bidirectional or lay.bidirectional)
    )


def make(mode: str, layers: int = 1, bidirectional: bool = False, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return CLASSES[mode](3, 5, layers, bidirectional=bidirectional, **kw)


def run(module, x):
    with torch.no_grad():
        return module(x)[0]


CASES = [
    (layout, mode, layers, bi)
    for layout in LAYOUTS
    for mode in CLASSES
    for layers, bi in SHAPES
    if supports(layout, mode, layers, bi)
]


@pytest.mark.parametrize(("layout", "mode", "layers", "bi"), CASES)
def test_round_trip(layout, mode, layers, bi):
    """layout -> module -> layout is the identity; module -> layout -> module keeps the weights
    (biases summed for one-bias layouts) and the outputs."""
    src = make(mode, layers, bi, seed=1)
    params = export_weights(src, layout)
    dst = make(mode, layers, bi, seed=2)
    load_weights(dst, params, layout)
    again = export_weights(dst, layout)
    assert again.keys() == params.keys()
    for key in params:
        np.testing.assert_array_equal(again[key], params[key], err_msg=key)
    for name, p in src.named_parameters():
        q = dict(dst.named_parameters())[name]
        if name.startswith("weight"):
            assert torch.equal(p, q), name
        elif name.startswith("bias_ih"):
            other = name.replace("bias_ih", "bias_hh")
            total = dict(src.named_parameters())[other] + p
            q_total = q + dict(dst.named_parameters())[other]
            torch.testing.assert_close(q_total, total, rtol=0, atol=1e-7)
    x = torch.randn(4, 2, 3)
    torch.testing.assert_close(run(dst, x), run(src, x), rtol=0, atol=1e-6)
    spec = get_layout(layout).infer(params)
    assert (spec.num_layers, spec.bidirectional, spec.hidden_size, spec.input_size) == (
        layers,
        bi,
        5,
        3,
    )


@pytest.mark.parametrize("layout", ["torch", "gluon", "chainer_nstep", "onnx", "haste"])
def test_two_bias_layouts_keep_each_bias(layout):
    gru = make("GRU", seed=3)
    dst = make("GRU", seed=4)
    load_weights(dst, export_weights(gru, layout), layout)
    for (name, p), q in zip(gru.named_parameters(), dst.parameters()):
        assert torch.equal(p, q), name


def test_keras_names_follow_keras_defaults():
    keys = set(export_lstm_weights(make("LSTM", 2, True), "keras"))
    assert "bidirectional/forward_lstm/kernel" in keys
    assert "bidirectional_1/backward_lstm_1/recurrent_kernel" in keys
    assert set(export_weights(make("GRU", 2), "keras")) == {
        f"{n}/{w}" for n in ("gru", "gru_1") for w in ("kernel", "recurrent_kernel", "bias")
    }


def test_gate_orders_by_construction():
    """Each gate's block lands where the framework expects it (gate k filled with the value k)."""
    lstm = make("LSTM")
    with torch.no_grad():
        for q in range(4):  # torch i, f, g, o
            lstm.weight_ih_l0[q * 5 : (q + 1) * 5] = q
    i, f, g, o = 0, 1, 2, 3
    expect = {
        "cs231n": ("Wx", [i, f, o, g], 1),
        "keras": ("kernel", [i, f, g, o], 1),
        "haste": ("kernel", [i, g, f, o], 1),
        "onnx": ("W", [i, o, f, g], 0),
        "gluon": ("l0_i2h_weight", [i, f, g, o], 0),
    }
    for layout, (key, order, axis) in expect.items():
        a = export_lstm_weights(lstm, layout)[key]
        a = a[0] if layout == "onnx" else a
        blocks = np.split(a, 4, axis=axis)
        assert [int(b.flat[0]) for b in blocks] == order, layout
    up = export_lstm_weights(lstm, "chainer")["upward/W"]
    assert [int(v) for v in up[:8, 0]] == [g, i, f, o] * 2  # interleaved per unit: a, i, f, o
    nstep = export_lstm_weights(lstm, "chainer_nstep")
    assert [int(nstep[f"0/w{n}"][0, 0]) for n in range(4)] == [i, f, g, o]
    flax = export_lstm_weights(lstm, "flax")
    assert [int(flax[f"i{q}/kernel"][0, 0]) for q in "ifgo"] == [i, f, g, o]


def test_reorder_rejects_mismatched_orders():
    with pytest.raises(ValueError, match="different gates"):
        reorder(np.zeros(8), "ifgo", "ifgx")


def test_shape_error_names_array_and_shapes():
    params = export_lstm_weights(make("LSTM"), "keras")
    params["recurrent_kernel"] = params["recurrent_kernel"][:, :12]
    with pytest.raises(
        ValueError, match=r"'recurrent_kernel' has shape \(5, 12\), expected \(5, 20\)"
    ):
        load_lstm_weights(make("LSTM"), params, "keras")


def test_missing_and_unexpected_keys():
    lstm = make("LSTM")
    params = export_lstm_weights(lstm, "gluon")
    with pytest.raises(ValueError, match=r"missing array 'l0_h2h_bias' \(expected shape \(20,\)\)"):
        load_lstm_weights(lstm, {k: v for k, v in params.items() if k != "l0_h2h_bias"}, "gluon")
    with pytest.raises(ValueError, match=r"unexpected arrays \['l1_i2h_weight'\]"):
        load_lstm_weights(lstm, {**params, "l1_i2h_weight": params["l0_i2h_weight"]}, "gluon")
    torch_params = export_lstm_weights(lstm, "torch")
    with pytest.raises(ValueError, match="missing array 'bias_hh_l0'"):
        load_lstm_weights(
            lstm, {k: v for k, v in torch_params.items() if k != "bias_hh_l0"}, "torch"
        )


def test_load_is_in_place_and_accepts_tensors():
    lstm = make("LSTM")
    weight = lstm.weight_ih_l0
    params = {
        k: torch.from_numpy(v) for k, v in export_lstm_weights(make("LSTM", seed=9), "onnx").items()
    }
    load_lstm_weights(lstm, params, "onnx")
    assert lstm.weight_ih_l0 is weight
    assert torch.equal(weight, make("LSTM", seed=9).weight_ih_l0)


def test_unknown_layout_and_wrong_kind():
    with pytest.raises(ValueError, match="unknown layout 'tf1'"):
        export_lstm_weights(make("LSTM"), "tf1")
    with pytest.raises(TypeError, match="expected a GRU module"):
        export_gru_weights(make("LSTM"), "keras")
    with pytest.raises(TypeError, match="expected a recurrent layer"):
        export_weights(torch.nn.Linear(2, 2), "keras")
    with pytest.raises(ValueError, match="'cs231n' has no GRU"):
        export_gru_weights(make("GRU"), "cs231n")
    with pytest.raises(ValueError, match="'chainer' has no bidirectional"):
        export_lstm_weights(make("LSTM", 1, True), "chainer")
    with pytest.raises(ValueError, match="'cs231n' holds one layer"):
        export_rnn_weights(make("RNN", 2), "cs231n")


def test_projection_only_where_the_framework_has_it():
    lstm = make("LSTM", 2, True, proj_size=2)
    for layout in ("torch", "gluon"):
        dst = make("LSTM", 2, True, seed=5, proj_size=2)
        load_lstm_weights(dst, export_lstm_weights(lstm, layout), layout)
        assert torch.equal(dst.weight_hr_l1_reverse, lstm.weight_hr_l1_reverse)
    assert export_lstm_weights(lstm, "gluon")["r1_h2r_weight"].shape == (2, 5)
    with pytest.raises(ValueError, match=r"'keras' has no LSTM projection \(proj_size=2\)"):
        export_lstm_weights(lstm, "keras")


def test_peepholes_map_to_onnx_p_in_i_o_f_order():
    lstm = rnnkit.LSTM(3, 4, peephole=True)
    with torch.no_grad():
        lstm.peephole_l0.copy_(torch.tensor([[1.0] * 4, [2.0] * 4, [3.0] * 4]))  # rows i, f, o
    p = export_lstm_weights(lstm, "onnx")["P"]
    assert p.shape == (1, 12)
    np.testing.assert_array_equal(p[0, ::4], [1.0, 3.0, 2.0])  # ONNX P order i, o, f
    dst = rnnkit.LSTM(3, 4, peephole=True)
    load_lstm_weights(dst, export_lstm_weights(lstm, "onnx"), "onnx")
    assert torch.equal(dst.peephole_l0, lstm.peephole_l0)
    with pytest.raises(ValueError, match="'keras' has no peephole"):
        export_lstm_weights(lstm, "keras")


def test_layer_norm_gains_have_no_place_outside_torch():
    lstm = rnnkit.LSTM(3, 4, layer_norm=True)
    with pytest.raises(ValueError, match=r"cannot hold the parameters \['layer_norm_c_bias_l0'"):
        export_lstm_weights(lstm, "keras")
    params = export_lstm_weights(lstm, "torch")
    assert "layer_norm_ih_l0" in params
    dst = rnnkit.LSTM(3, 4, layer_norm=True)
    load_lstm_weights(dst, params, "torch")
    assert all(torch.equal(p, q) for p, q in zip(lstm.parameters(), dst.parameters()))


def test_bias_false():
    src, dst = make("LSTM", bias=False), make("LSTM", seed=3, bias=False)
    assert "bias" not in export_lstm_weights(src, "keras")
    cs = export_lstm_weights(src, "cs231n")
    np.testing.assert_array_equal(cs["b"], 0)
    load_lstm_weights(dst, cs, "cs231n")
    assert torch.equal(dst.weight_hh_l0, src.weight_hh_l0)
    cs["b"] = cs["b"] + 1
    with pytest.raises(ValueError, match="bias=False but the input bias of layer 0"):
        load_lstm_weights(dst, cs, "cs231n")


def diagonal_candidate(gru):
    with torch.no_grad():
        h = gru.hidden_size
        gru.weight_hh_l0[2 * h :] = torch.diag(torch.linspace(-1, 1, h))
        gru.bias_hh_l0[2 * h :] = 0
    return gru


def reset_before_step(x, h, kernel, rec, bias):
    """Keras GRU with reset_after=False (keras/src/layers/rnn/gru.py), gates z, r, h."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    n = h.shape[1]
    xz, xr, xh = np.split(x @ kernel + bias, 3, axis=1)
    z = sig(xz + h @ rec[:, :n])
    r = sig(xr + h @ rec[:, n : 2 * n])
    hh = np.tanh(xh + (r * h) @ rec[:, 2 * n :])
    return z * h + (1 - z) * hh


def test_keras_reset_before_exact_only_for_diagonal_candidate():
    gru = make("GRU", seed=6)
    with pytest.raises(ResetBeforeError, match="not diagonal"):
        export_gru_weights(gru, "keras", reset_after=False)
    gru = diagonal_candidate(gru)
    p = export_gru_weights(gru, "keras", reset_after=False)
    assert p["bias"].shape == (15,)
    x = np.random.default_rng(0).standard_normal((6, 2, 3)).astype(np.float32)
    h = np.zeros((2, 5), np.float32)
    for t in range(6):
        h = reset_before_step(x[t], h, p["kernel"], p["recurrent_kernel"], p["bias"])
    ref = run(gru, torch.from_numpy(x))[-1].numpy()
    np.testing.assert_allclose(h, ref, rtol=0, atol=1e-5)
    dst = make("GRU", seed=7)
    load_gru_weights(dst, p, "keras")  # reset_after inferred from the (3H,) bias
    torch.testing.assert_close(run(dst, torch.from_numpy(x)), run(gru, torch.from_numpy(x)))
    with torch.no_grad():
        gru.bias_hh_l0[12] = 0.5
    with pytest.raises(ResetBeforeError, match="b_hn is non-zero"):
        export_gru_weights(gru, "keras", reset_after=False)
    p["recurrent_kernel"][0, 11] = 0.3
    with pytest.raises(ResetBeforeError, match="not diagonal"):
        load_gru_weights(dst, p, "keras")


def test_reset_after_option_is_keras_only():
    with pytest.raises(ValueError, match="only for the 'keras' layout"):
        export_gru_weights(make("GRU"), "onnx", reset_after=False)
