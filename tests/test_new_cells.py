"""rnnkit.MinGRU, MinLSTM, IndRNN, SLSTM and their cells behind the layers' contract: what they
are, the options they take and refuse, Stateful streams, step-wise decoding, whole-model
save/load, the initialisation, the backends, and the errors for bad input."""

from __future__ import annotations

import io

import pytest
import torch

import rnnkit
from rnnkit.decode import LayerStepper
from rnnkit.registry import cell_names, get_cell

F64 = torch.float64
NAMES = ("mingru", "minlstm", "indrnn", "slstm")
LAYERS = {"mingru": rnnkit.MinGRU, "minlstm": rnnkit.MinLSTM, "indrnn": rnnkit.IndRNN,
          "slstm": rnnkit.SLSTM}  # fmt: skip
CELLS = {"mingru": rnnkit.MinGRUCell, "minlstm": rnnkit.MinLSTMCell,
         "indrnn": rnnkit.IndRNNCell, "slstm": rnnkit.SLSTMCell}  # fmt: skip


def states(out):
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("name", NAMES)
def test_the_named_classes_are_the_generic_ones_with_their_cell(name):
    spec = get_cell(name)
    assert name in cell_names() and spec.layer_class() is LAYERS[name]
    assert spec.cell_class() is CELLS[name]
    layer = LAYERS[name](3, 4, num_layers=2, dtype=F64)
    assert isinstance(layer, rnnkit.Recurrent) and layer.spec is spec
    generic = rnnkit.Recurrent(name, 3, 4, num_layers=2, dtype=F64)
    assert list(generic.state_dict()) == list(layer.state_dict())
    generic.load_state_dict(layer.state_dict())
    x = torch.randn(5, 2, 3, dtype=F64)
    torch.testing.assert_close(generic(x)[0], layer(x)[0], rtol=0, atol=0)
    assert repr(layer) == f"{type(layer).__name__}(3, 4, num_layers=2)"
    assert repr(CELLS[name](3, 4)) == f"{CELLS[name].__name__}(3, 4)"


def test_parameter_shapes_follow_each_cells_recurrent_weight():
    def shapes(m):
        return {k: tuple(v.shape) for k, v in m.named_parameters()}

    assert shapes(rnnkit.MinGRU(3, 8)) == {"weight_ih_l0": (16, 3), "bias_ih_l0": (16,)}
    assert shapes(rnnkit.MinLSTM(3, 8, bias=False)) == {"weight_ih_l0": (24, 3)}
    assert shapes(rnnkit.IndRNN(3, 8))["weight_hh_l0"] == (8,)
    assert shapes(rnnkit.SLSTM(3, 8))["weight_hh_l0"] == (4, 8, 2)  # 4 heads by default
    assert shapes(rnnkit.SLSTM(3, 6))["weight_hh_l0"] == (1, 24, 6)  # 4 does not divide 6
    assert shapes(rnnkit.SLSTMCell(3, 8, num_heads=2))["weight_hh"] == (2, 16, 4)
    assert shapes(rnnkit.MinGRUCell(3, 8, layer_norm=True)) == {
        "weight_ih": (16, 3), "bias_ih": (16,), "layer_norm_ih": (16,)}  # fmt: skip
    assert rnnkit.MinGRUCell(3, 8).weight_hh is None


def test_indrnn_initialises_u_uniform_in_zero_one_and_clamps_it_in_every_step():
    torch.manual_seed(0)
    u = rnnkit.IndRNN(3, 2000).weight_hh_l0
    assert 0 <= u.min() < 0.01 and 0.99 < u.max() <= 1 and abs(u.mean().item() - 0.5) < 0.03
    assert rnnkit.IndRNN(3, 500, recurrent_max=0.5).weight_hh_l0.max() <= 0.5
    layer = rnnkit.IndRNN(2, 3, recurrent_max=0.9, dtype=F64)
    with torch.no_grad():
        layer.weight_hh_l0.copy_(torch.tensor([2.0, -3.0, 0.5], dtype=F64))
        layer.weight_ih_l0.zero_()
        layer.bias_ih_l0.zero_()
        layer.bias_hh_l0.zero_()
    out, h = layer(torch.zeros(2, 1, 2, dtype=F64), torch.ones(1, 1, 3, dtype=F64))
    # relu(u' * h): u' = (0.9, -0.9, 0.5)
    torch.testing.assert_close(out[:, 0], torch.tensor([[0.9, 0, 0.5], [0.81, 0, 0.25]], dtype=F64))
    out.sum().backward()
    assert layer.weight_hh_l0.grad[0] == 0 and layer.weight_hh_l0.grad[2] != 0
    assert rnnkit.registry.recurrent_max_for(100) == pytest.approx(2 ** (1 / 100))


@pytest.mark.parametrize(
    "name,option,value",
    [("mingru", "recurrent_dropout", 0.2), ("mingru", "weight_drop", 0.1),
     ("minlstm", "zoneout", 0.1), ("mingru", "num_heads", 2), ("slstm", "zoneout", 0.1),
     ("slstm", "scan_chunk", 8), ("indrnn", "forget_gate", "sigmoid"),
     ("lstm", "recurrent_max", 1.0)],
)  # fmt: skip
def test_options_a_cell_does_not_take_are_refused_naming_cell_and_option(name, option, value):
    spec = get_cell(name)
    with pytest.raises(ValueError, match=rf"{spec.title} has no option {option} \(got {option}="):
        rnnkit.Recurrent(name, 3, 4, **{option: value})
    if name != "lstm":
        with pytest.raises(ValueError, match=f"{spec.title} has no option {option}"):
            CELLS[name](3, 4, **{option: value})


def test_refusals_say_what_is_accepted_and_bad_values_are_errors():
    # (a test module may register cells of its own after these)
    with pytest.raises(ValueError, match="minGRU accepts layer_norm, scan_chunk; zoneout is an "
                       "option of GRU, IndRNN, LSTM(,| and) RNN"):  # fmt: skip
        rnnkit.MinGRU(3, 4, zoneout=0.1)
    with pytest.raises(ValueError, match="peephole connections exist only for LSTM, not sLSTM"):
        rnnkit.SLSTM(3, 4, peephole=True)
    with pytest.raises(
        ValueError, match="sLSTM num_heads must divide hidden_size 6, got num_heads=4"
    ):
        rnnkit.SLSTM(3, 6, num_heads=4)
    with pytest.raises(
        ValueError, match=r"forget_gate must be one of \('exp', 'sigmoid'\), got 'tanh'"
    ):
        rnnkit.SLSTM(3, 4, forget_gate="tanh")
    with pytest.raises(ValueError, match="recurrent_max must be a positive finite number or None"):
        rnnkit.IndRNN(3, 4, recurrent_max=-1.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'proj_size'"):
        rnnkit.MinGRU(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="backend='native': torch has no kernels for minGRU"):
        rnnkit.MinGRU(3, 4, backend="native")
    with pytest.raises(ValueError, match="backend='parallel' cannot run this IndRNN layer: IndRNN "
                       "has no whole-sequence form"):  # fmt: skip
        rnnkit.IndRNN(3, 4, backend="parallel")(torch.randn(2, 1, 3))
    # options a cell takes pass through to its repr
    assert "num_heads=2, forget_gate='sigmoid'" in repr(
        rnnkit.SLSTM(3, 4, num_heads=2, forget_gate="sigmoid")
    )


def test_bad_inputs_and_states_name_what_was_expected():
    layer = rnnkit.SLSTM(3, 4)
    with pytest.raises(ValueError, match="SLSTM expects 3 input features"):
        layer(torch.randn(5, 2, 7))
    with pytest.raises(
        TypeError, match=r"sLSTM hx must be a tuple \(h_0, c_0, n_0, m_0\), got Tensor"
    ):
        layer(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"n_0 must have shape \(1, 2, 4\), got \(1, 3, 4\)"):
        layer(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4),) * 2 + (torch.zeros(1, 3, 4),) * 2)
    with pytest.raises(ValueError, match="MinGRUCell expects 3 input features"):
        rnnkit.MinGRUCell(3, 4)(torch.randn(2, 5))
    with pytest.raises(
        TypeError, match="MinGRU has torch.float32 parameters, got torch.float64 input"
    ):
        rnnkit.MinGRU(3, 4)(torch.randn(5, 2, 3, dtype=F64))


@pytest.mark.parametrize("name", NAMES)
def test_stateful_streams_and_step_wise_decoding_equal_the_whole_sequence(name):
    torch.manual_seed(1)
    layer = LAYERS[name](3, 4, num_layers=2, dtype=F64).eval()
    x = torch.randn(9, 2, 3, dtype=F64)
    full, final = layer(x)
    stream = rnnkit.Stateful(layer)
    torch.testing.assert_close(torch.cat([stream(c) for c in x.split(4)]), full, rtol=0, atol=1e-12)
    for a, b in zip(states(stream.state), states(final)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    stepper = LayerStepper(layer)
    s = tuple(torch.zeros(2, 2, 4, dtype=F64) for _ in get_cell(name).states)
    s = s if len(s) > 1 else s[0]
    outs = []
    for t in range(9):
        y, s = stepper.step(x[t], s)
        outs.append(y)
    torch.testing.assert_close(torch.stack(outs), full, rtol=0, atol=1e-9)
    for a, b in zip(states(s), states(final)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    # a stream of cells: the cell's whole state is carried, h comes out
    cell = CELLS[name](3, 4, dtype=F64).eval()
    cell.load_from_layer(layer, 0)
    steps = rnnkit.Stateful(cell)
    hs = torch.stack([steps(x[t]) for t in range(9)])
    assert len(states(steps.state)) == len(get_cell(name).states)
    one = LAYERS[name](3, 4, dtype=F64).eval()
    one.load_state_dict({k: v for k, v in layer.state_dict().items() if "_l1" not in k})
    torch.testing.assert_close(hs, one(x)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_whole_models_load_with_weights_only(name):
    torch.manual_seed(2)
    options = {"slstm": {"num_heads": 2, "forget_gate": "sigmoid"}, "indrnn": {"recurrent_max": 1.1},
               "mingru": {"layer_norm": True}, "minlstm": {"scan_chunk": 3}}[name]  # fmt: skip
    for module in (LAYERS[name](3, 4, bidirectional=True, **options).eval(),
                   rnnkit.Stateful(CELLS[name](3, 4, **options).eval())):  # fmt: skip
        buf = io.BytesIO()
        torch.save(module, buf)
        buf.seek(0)
        loaded = torch.load(buf)  # torch's default weights_only=True
        assert type(loaded) is type(module)
        inner, back = getattr(module, "module", module), getattr(loaded, "module", loaded)
        assert back.spec is inner.spec and back.variants == inner.variants
        x = torch.randn(2, 3) if module is not inner else torch.randn(5, 2, 3)
        a, b = module(x), loaded(x)
        torch.testing.assert_close(states(a)[0], states(b)[0], rtol=0, atol=0)


def test_training_mode_options_run_and_change_the_outputs():
    torch.manual_seed(3)
    x = torch.randn(6, 2, 3)
    ind = rnnkit.IndRNN(3, 4, recurrent_dropout=0.5, weight_drop=0.5, zoneout=0.3)
    sl = rnnkit.SLSTM(3, 4, recurrent_dropout=0.5, weight_drop=0.5, num_heads=2)
    for layer in (ind, sl):
        a = layer.train()(x)[0]
        b = layer.eval()(x)[0]
        assert not torch.allclose(a, b)
        layer.train()(x)[0].sum().backward()
        assert all(p.grad is not None for p in layer.parameters())
    # dropout between layers for the scan cells
    layer = rnnkit.MinGRU(3, 4, num_layers=2, dropout=0.5).train()
    assert not torch.allclose(layer(x)[0], layer.eval()(x)[0])


def test_forget_bias_initialises_the_slstm_forget_gate():
    layer = rnnkit.SLSTM(3, 4, forget_bias=3.0)
    assert (layer.bias_ih_l0[4:8] == 3.0).all() and (layer.bias_hh_l0[4:8] == 0).all()
