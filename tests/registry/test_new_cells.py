"""minGRU, minLSTM, IndRNN and sLSTM as torch layers against the independent NumPy oracle
(rnnkit.reference), float64: outputs and every final state with several layers, both directions
and lengths; gradients against the hand-written backward passes; the stochastic options with
explicit masks; the cells stepped by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.backends import dispatch, reference
from rnnkit.functional import CellParams, StepOptions, input_projection
from rnnkit.reference import (
    indrnn_backward,
    indrnn_forward,
    mingru_backward,
    mingru_forward,
    minlstm_backward,
    minlstm_forward,
    slstm_backward,
    slstm_dense_recurrent,
    slstm_forward,
    slstm_heads_gradient,
)
from rnnkit.registry import get_cell

F64 = torch.float64
CASES = [
    ("mingru", {}), ("mingru", {"layer_norm": True}), ("mingru", {"scan_chunk": 1}),
    ("minlstm", {}), ("minlstm", {"layer_norm": True}),
    ("indrnn", {}), ("indrnn", {"layer_norm": True, "recurrent_max": 0.8}),
    ("slstm", {}), ("slstm", {"num_heads": 2, "forget_gate": "sigmoid", "layer_norm": True}),
]  # fmt: skip


def arrays(p: CellParams) -> dict[str, np.ndarray | None]:
    return {k: None if v is None else v.detach().numpy() for k, v in vars(p).items()
            if k != "variants"}  # fmt: skip


def numpy_params(name: str, p: CellParams) -> dict:
    """The NumPy oracle's weights (and options) from one direction's torch parameters."""
    a = arrays(p)
    bias = a["b_ih"] if a["b_hh"] is None else a["b_ih"] + a["b_hh"]
    out: dict = {"Wx": a["w_ih"].T, "b": bias}
    if a["ln_ih"] is not None:
        out["gamma_x"] = a["ln_ih"]
    if name == "indrnn":
        out["u"] = a["w_hh"]
        if p.variants.recurrent_max is not None:
            out["recurrent_max"] = p.variants.recurrent_max
    if name == "slstm":
        out["Wh"] = slstm_dense_recurrent(a["w_hh"])
        out["forget_gate"] = p.variants.forget_gate
        if a["ln_hh"] is not None:
            out["gamma_h"] = a["ln_hh"]
    return out


def numpy_run(name: str, x: np.ndarray, state: tuple, w: dict, **masks):
    """One direction: ``x (N, T, D)``, ``state`` one ``(N, H)`` array per state ->
    ``(h (N, T, H), final states)``."""
    if name == "mingru":
        h, cache = mingru_forward(x, state[0], w["Wx"], w["b"], **_ln(w))
        return h, (h[:, -1],), cache
    if name == "minlstm":
        h, cache = minlstm_forward(x, state[0], w["Wx"], w["b"], **_ln(w))
        return h, (h[:, -1],), cache
    if name == "indrnn":
        opts = {k: w[k] for k in ("gamma_x", "recurrent_max") if k in w}
        h, cache = indrnn_forward(x, state[0], w["Wx"], w["u"], w["b"], **opts, **masks)
        return h, (h[:, -1],), cache
    opts = {k: w[k] for k in ("gamma_x", "gamma_h", "forget_gate") if k in w}
    h, rest, cache = slstm_forward(x, *state, w["Wx"], w["Wh"], w["b"], **opts, **masks)
    return h, (h[:, -1], *rest), cache


def _ln(w: dict) -> dict:
    return {"gamma_x": w["gamma_x"]} if "gamma_x" in w else {}


def initial_state(name: str, layers_dirs: int, batch: int, hidden: int, gen) -> tuple:
    def rnd():
        return torch.randn(layers_dirs, batch, hidden, generator=gen, dtype=F64)

    if name != "slstm":
        return (rnd() - 0.2,)  # negative entries: the scan's h0 term handles any sign
    return rnd(), rnd(), rnd().abs() + 0.5, rnd()


@pytest.mark.parametrize("name,options", CASES, ids=lambda v: str(v))
def test_layers_equal_the_numpy_oracle_with_layers_directions_and_lengths(name, options):
    gen = torch.Generator().manual_seed(len(name) + len(options))
    layer = rnnkit.Recurrent(name, 3, 4, num_layers=2, bidirectional=True, dtype=F64, **options)
    layer.eval()
    steps, lengths = 6, [6, 2, 4]
    x = torch.randn(steps, 3, 3, generator=gen, dtype=F64)
    state = initial_state(name, 4, 3, 4, gen)
    with torch.no_grad():
        out, final = layer(x, state if len(state) > 1 else state[0], lengths=torch.tensor(lengths))
    final = final if isinstance(final, tuple) else (final,)
    for n, length in enumerate(lengths):
        inp = x[:length, n].numpy()[None]  # (1, L, C)
        for k in range(2):
            outs = []
            for d in range(2):
                w = numpy_params(name, layer.cell_params(k, d))
                s0 = tuple(s[2 * k + d, n : n + 1].numpy() for s in state)
                seq = inp[:, ::-1] if d else inp
                h, fin, _ = numpy_run(name, np.ascontiguousarray(seq), s0, w)
                outs.append(h[:, ::-1] if d else h)
                for got, want in zip(final, fin):
                    np.testing.assert_allclose(
                        got[2 * k + d, n].numpy(), want[0], rtol=0, atol=1e-12
                    )
            inp = np.concatenate(outs, axis=-1)
        np.testing.assert_allclose(out[:length, n].numpy(), inp[0], rtol=0, atol=1e-12)
        assert (out[length:, n] == 0).all()


@pytest.mark.parametrize("name,options", CASES, ids=lambda v: str(v))
def test_gradients_equal_the_numpy_backward(name, options):
    gen = torch.Generator().manual_seed(7)
    layer = rnnkit.Recurrent(name, 3, 4, dtype=F64, **options).eval()
    x = torch.randn(5, 2, 3, generator=gen, dtype=F64, requires_grad=True)
    state = tuple(s.requires_grad_() for s in initial_state(name, 1, 2, 4, gen))
    out, final = layer(x, state if len(state) > 1 else state[0])
    final = final if isinstance(final, tuple) else (final,)
    dout = torch.randn(out.shape, generator=gen, dtype=F64)
    dfinal = [torch.randn(s.shape, generator=gen, dtype=F64) for s in final[1:]]
    loss = (out * dout).sum() + sum((s * d).sum() for s, d in zip(final[1:], dfinal))
    loss.backward()

    w = numpy_params(name, layer.cell_params(0, 0))
    s0 = tuple(s[0].detach().numpy() for s in state)
    _, _, cache = numpy_run(name, x.detach().numpy().transpose(1, 0, 2), s0, w)
    dh = dout.numpy().transpose(1, 0, 2)
    if name == "slstm":
        grads = slstm_backward(dh, tuple(d[0].numpy() for d in dfinal), cache)
    else:
        backward = {"mingru": mingru_backward, "minlstm": minlstm_backward,
                    "indrnn": indrnn_backward}[name]  # fmt: skip
        grads = backward(dh, cache)

    def close(got, want):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-9, atol=1e-11)

    close(x.grad, grads["dx"].transpose(1, 0, 2))
    for s, key in zip(state, ("dh0", "dc0", "dn0", "dm0")):
        close(s.grad[0], grads[key])
    close(layer.weight_ih_l0.grad, grads["dWx"].T)
    close(layer.bias_ih_l0.grad, grads["db"])
    if name != "mingru" and name != "minlstm":
        close(layer.bias_hh_l0.grad, grads["db"])
    if name == "indrnn":
        close(layer.weight_hh_l0.grad, grads["du"])
    if name == "slstm":
        heads = layer.weight_hh_l0.shape[0]
        close(layer.weight_hh_l0.grad, slstm_heads_gradient(grads["dWh"], heads))
    if options.get("layer_norm"):
        close(layer.layer_norm_ih_l0.grad, grads["dgamma_x"])
        if name == "slstm":
            close(layer.layer_norm_hh_l0.grad, grads["dgamma_h"])


@pytest.mark.parametrize("run", [reference.scan, dispatch.scan], ids=["reference", "dispatch"])
@pytest.mark.parametrize("name,zoned", [("indrnn", "train"), ("indrnn", "eval"),
                                        ("slstm", None)])  # fmt: skip
def test_stochastic_options_with_explicit_masks_equal_the_numpy_oracle(run, name, zoned):
    """Recurrent dropout (both cells), DropConnect (a dropped W_hh passed in) and zoneout
    (IndRNN: Bernoulli masks in training, the rate in evaluation)."""
    gen = torch.Generator().manual_seed(11)
    T, N, D, H = 5, 3, 3, 4
    layer = rnnkit.Recurrent(name, D, H, dtype=F64, **({"num_heads": 2} if name == "slstm" else {}))
    p = layer.cell_params(0, 0)
    x = torch.randn(T, N, D, generator=gen, dtype=F64)
    state = initial_state(name, 1, N, H, gen)
    state = tuple(s[0] for s in state)
    drop = torch.bernoulli(torch.full((N, H), 0.7, dtype=F64), generator=gen) / 0.7
    w_hh = p.w_hh.detach() * torch.bernoulli(
        torch.full(p.w_hh.shape, 0.6, dtype=F64), generator=gen
    )
    masks: dict = {"dropout_mask": drop.numpy()}
    opts = StepOptions(dropout_mask=drop, w_hh=w_hh)
    if zoned == "train":
        zh = torch.bernoulli(torch.full((T, N, H), 0.3, dtype=F64), generator=gen)
        opts = StepOptions(dropout_mask=drop, w_hh=w_hh, zoneout_h=zh)
        masks["zoneout_h"] = zh.numpy().transpose(1, 0, 2)
    elif zoned == "eval":
        opts = StepOptions(dropout_mask=drop, w_hh=w_hh, zoneout_h=0.3)
        masks["zoneout_h"] = 0.3
    with torch.no_grad():
        out, final = run(get_cell(name), input_projection(x, p), state, p, options=opts)
    w = numpy_params(name, p)
    if name == "indrnn":
        w["u"] = w_hh.numpy()
    else:
        w["Wh"] = slstm_dense_recurrent(w_hh.numpy())
    h, fin, _ = numpy_run(name, x.numpy().transpose(1, 0, 2), tuple(s.numpy() for s in state),
                          w, **masks)  # fmt: skip
    np.testing.assert_allclose(out.detach().numpy(), h.transpose(1, 0, 2), rtol=0, atol=1e-12)
    for got, want in zip(final, fin):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["mingru", "minlstm", "indrnn", "slstm"])
def test_the_named_cell_stepped_by_hand_equals_the_named_layer(name):
    torch.manual_seed(3)
    spec = get_cell(name)
    layer = spec.layer_class()(3, 4, dtype=F64).eval()
    cell = spec.cell_class()(3, 4, dtype=F64).eval()
    cell.load_from_layer(layer, 0)
    x = torch.randn(7, 2, 3, dtype=F64)
    out, final = layer(x)
    state, steps = None, []
    for t in range(7):
        state = cell(x[t], state)
        steps.append(state[0] if isinstance(state, tuple) else state)
    torch.testing.assert_close(torch.stack(steps), out, rtol=0, atol=1e-12)
    final = final if isinstance(final, tuple) else (final,)
    state = state if isinstance(state, tuple) else (state,)
    assert len(state) == len(spec.states)
    for a, b in zip(final, state):
        torch.testing.assert_close(a[0], b, rtol=0, atol=1e-12)
