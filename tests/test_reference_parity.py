"""rnnkit's torch time loops (the functional oracle and the fused path) against the independent NumPy
reference, float64, forward and gradients, with every variant option and explicit masks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from rnnkit.backends import dispatch, reference
from rnnkit.functional import CellParams, StepOptions, input_projection
from rnnkit.reference import variants as ref
from rnnkit.registry import get_cell

T, N, D, H = 4, 3, 5, 6
F64 = torch.float64
TORCH_TO_CS231N = [0, 1, 3, 2]  # torch LSTM blocks (i, f, g, o) -> CS231n (i, f, o, g)


def lstm_reorder(a: np.ndarray) -> np.ndarray:
    """Reorder the 4H gate axis (the last one) from torch to CS231n order."""
    blocks = np.split(a, 4, axis=-1)
    return np.concatenate([blocks[k] for k in TORCH_TO_CS231N], axis=-1)


def make_params(
    mode: str, gen: torch.Generator, ln: bool, peephole: bool
) -> dict[str, torch.Tensor]:
    g = {"LSTM": 4, "GRU": 3, "RNN": 1}[mode]

    def rnd(*shape, scale=0.5):
        return (torch.randn(*shape, generator=gen, dtype=F64) * scale).requires_grad_()

    p = dict(w_ih=rnd(g * H, D), w_hh=rnd(g * H, H), b_ih=rnd(g * H), b_hh=rnd(g * H))
    if ln:
        p.update(ln_ih=(1 + rnd(g * H, scale=0.1)).detach().requires_grad_(),
                 ln_hh=(1 + rnd(g * H, scale=0.1)).detach().requires_grad_())  # fmt: skip
        if mode == "LSTM":
            p.update(
                ln_c_weight=(1 + rnd(H, scale=0.1)).detach().requires_grad_(), ln_c_bias=rnd(H)
            )
    if peephole:
        p["peephole"] = rnd(3, H)
    return p


def numpy_reference(mode, p, x, h0, c0, masks):
    """Run the NumPy reference with rnnkit's parameters converted; returns (h (T,N,H), c_last, cache)."""
    a = {k: v.detach().numpy() for k, v in p.items()}
    xs = x.detach().numpy().transpose(1, 0, 2)  # (N, T, D)
    zh = None if masks.get("zh") is None else masks["zh"].numpy().transpose(1, 0, 2)
    zc = None if masks.get("zc") is None else masks["zc"].numpy().transpose(1, 0, 2)
    dm = None if masks.get("drop") is None else masks["drop"].numpy()
    opts = {}
    if mode == "LSTM":
        if "ln_ih" in a:
            opts.update(gamma_x=lstm_reorder(a["ln_ih"]), gamma_h=lstm_reorder(a["ln_hh"]),
                        gamma_c=a["ln_c_weight"], beta_c=a["ln_c_bias"])  # fmt: skip
        if "peephole" in a:
            opts["peephole"] = a["peephole"]
        h, c_last, cache = ref.lstm_variant_forward(
            xs, h0.numpy(), c0.numpy(), lstm_reorder(a["w_ih"].T), lstm_reorder(a["w_hh"].T),
            lstm_reorder(a["b_ih"] + a["b_hh"]), zoneout_h=zh, zoneout_c=zc, dropout_mask=dm, **opts,
        )  # fmt: skip
        return h, c_last, cache
    if "ln_ih" in a:
        opts.update(gamma_x=a["ln_ih"], gamma_h=a["ln_hh"])
    if mode == "GRU":
        h, cache = ref.gru_variant_forward(
            xs, h0.numpy(), a["w_ih"].T, a["w_hh"].T, a["b_ih"], a["b_hh"],
            zoneout_h=zh, dropout_mask=dm, **opts,
        )  # fmt: skip
    else:
        h, cache = ref.rnn_variant_forward(
            xs, h0.numpy(), a["w_ih"].T, a["w_hh"].T, a["b_ih"] + a["b_hh"],
            zoneout_h=zh, dropout_mask=dm, **opts,
        )  # fmt: skip
    return h, None, cache


CASES = [
    (mode, ln, peep, zone, drop, train)
    for mode, ln, peep, zone, drop, train in itertools.product(
        ["LSTM", "GRU", "RNN"],
        [False, True],
        [False, True],
        [False, True],
        [False, True],
        [False, True],
    )
    if not (peep and mode != "LSTM") and not (drop and not train)
]


@pytest.mark.parametrize("run", [reference.scan, dispatch.scan], ids=["reference", "fused"])
@pytest.mark.parametrize("mode,ln,peep,zone,drop,train", CASES)
def test_torch_loops_equal_numpy_reference(run, mode, ln, peep, zone, drop, train):
    gen = torch.Generator().manual_seed(hash((mode, ln, peep, zone, drop, train)) % 2**31)
    p = make_params(mode, gen, ln, peep)
    x = torch.randn(T, N, D, generator=gen, dtype=F64, requires_grad=True)
    h0 = torch.randn(N, H, generator=gen, dtype=F64, requires_grad=True)
    c0 = torch.randn(N, H, generator=gen, dtype=F64, requires_grad=True)
    masks: dict[str, torch.Tensor | None] = {}
    opts = StepOptions()
    if zone:
        if train:
            masks["zh"] = torch.bernoulli(torch.full((T, N, H), 0.3, dtype=F64), generator=gen)
            masks["zc"] = torch.bernoulli(torch.full((T, N, H), 0.2, dtype=F64), generator=gen)
            zh, zc = masks["zh"], masks["zc"] if mode == "LSTM" else 0.0
        else:  # evaluation: the rates themselves, as fractional masks
            masks["zh"] = torch.full((T, N, H), 0.3, dtype=F64)
            masks["zc"] = torch.full((T, N, H), 0.2, dtype=F64)
            zh, zc = 0.3, 0.2 if mode == "LSTM" else 0.0
        if mode != "LSTM":
            masks["zc"] = None
        opts = StepOptions(zoneout_h=zh, zoneout_c=zc)
    if drop:
        masks["drop"] = torch.bernoulli(torch.full((N, H), 0.7, dtype=F64), generator=gen) / 0.7
        opts = StepOptions(
            dropout_mask=masks["drop"], zoneout_h=opts.zoneout_h, zoneout_c=opts.zoneout_c
        )

    cp = CellParams(**p)
    state = (h0, c0) if mode == "LSTM" else (h0,)
    cell = get_cell("RNN_TANH" if mode == "RNN" else mode)
    out, final = run(cell, input_projection(x, cp), state, cp, options=opts)

    h_ref, c_ref, cache = numpy_reference(mode, p, x, h0.detach(), c0.detach(), masks)
    np.testing.assert_allclose(out.detach().numpy(), h_ref.transpose(1, 0, 2), atol=1e-12, rtol=0)
    if mode == "LSTM":
        np.testing.assert_allclose(final[1].detach().numpy(), c_ref, atol=1e-12, rtol=0)

    # gradients of a random projection of the outputs (and of c_T for LSTM)
    dout = torch.randn(out.shape, generator=gen, dtype=F64)
    loss = (out * dout).sum()
    dc = None
    if mode == "LSTM":
        dc = torch.randn(N, H, generator=gen, dtype=F64)
        loss = loss + (final[1] * dc).sum()
    names = list(p)
    grads = torch.autograd.grad(
        loss, [x, h0, *(p[k] for k in names)] + ([c0] if mode == "LSTM" else [])
    )
    got = dict(zip(["x", "h0", *names, "c0"], [g.numpy() for g in grads]))
    dh = dout.numpy().transpose(1, 0, 2)
    if mode == "LSTM":
        r = ref.lstm_variant_backward(dh, dc.numpy(), cache)
    elif mode == "GRU":
        r = ref.gru_variant_backward(dh, cache)
    else:
        r = ref.rnn_variant_backward(dh, cache)

    def close(a, b):
        np.testing.assert_allclose(a, b, atol=1e-10, rtol=0)

    close(got["x"], r["dx"].transpose(1, 0, 2))
    close(got["h0"], r["dh0"])
    if mode == "LSTM":
        close(got["c0"], r["dc0"])
        close(lstm_reorder(got["w_ih"].T), r["dWx"])
        close(lstm_reorder(got["w_hh"].T), r["dWh"])
        close(lstm_reorder(got["b_ih"]), r["db"])
        close(got["b_ih"], got["b_hh"])
        if ln:
            close(lstm_reorder(got["ln_ih"]), r["dgamma_x"])
            close(lstm_reorder(got["ln_hh"]), r["dgamma_h"])
            close(got["ln_c_weight"], r["dgamma_c"])
            close(got["ln_c_bias"], r["dbeta_c"])
        if peep:
            close(got["peephole"], r["dpeephole"])
    else:
        close(got["w_ih"].T, r["dWx"])
        close(got["w_hh"].T, r["dWh"])
        if mode == "GRU":
            close(got["b_ih"], r["dbx"])
            close(got["b_hh"], r["dbh"])
        else:
            close(got["b_ih"], r["db"])
        if ln:
            close(got["ln_ih"], r["dgamma_x"])
            close(got["ln_hh"], r["dgamma_h"])
