"""The layer contract: rnnkit's LSTM/GRU/RNN equal torch.nn's, and the variants behave as documented."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.backends import cpu_kernels, dispatch

T, N, D, H = 5, 3, 4, 6
LENGTHS = torch.tensor([5, 2, 4])

PAIRS = {
    "LSTM": (rnnkit.LSTM, nn.LSTM),
    "GRU": (rnnkit.GRU, nn.GRU),
    "RNN_TANH": (rnnkit.RNN, nn.RNN),
    "RNN_RELU": (rnnkit.RNN, nn.RNN),
}


def make_pair(mode: str, backend: str = "reference", **kw):
    """An rnnkit layer and its torch.nn twin with the same weights (the twin only without variants)."""
    a = make_layer(mode, backend, **kw)
    _, theirs = PAIRS[mode]
    if mode == "RNN_RELU":
        kw["nonlinearity"] = "relu"
    torch.manual_seed(0)
    return a, theirs(D, H, dtype=torch.float64, **kw)


def make_layer(mode: str, backend: str = "auto", **kw):
    ours, _ = PAIRS[mode]
    if mode == "RNN_RELU":
        kw["nonlinearity"] = "relu"
    torch.manual_seed(0)
    return ours(D, H, backend=backend, dtype=torch.float64, **kw)


def as_tuple(s):
    return s if isinstance(s, tuple) else (s,)


def run_torch(b: nn.Module, x: torch.Tensor, hx, lengths, batch_first: bool):
    if lengths is None:
        return b(x, hx)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out, hn = b(packed, hx)
    out, _ = pad_packed_sequence(
        out, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0]
    )
    return out, hn


def random_hx(mode: str, layers: int, dirs: int, proj: int, gen: torch.Generator):
    h = torch.randn(layers * dirs, N, proj or H, generator=gen, dtype=torch.float64)
    if mode == "LSTM":
        return h, torch.randn(layers * dirs, N, H, generator=gen, dtype=torch.float64)
    return h


def check_close_with_grads(a, b, mode, x, hx, lengths, batch_first, tol=1e-9):
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    ya, ha = a(xa, hx, lengths=lengths)
    yb, hb = run_torch(b, xb, hx, lengths, batch_first)
    torch.testing.assert_close(ya, yb, atol=tol, rtol=0)
    for s, t in zip(as_tuple(ha), as_tuple(hb)):
        torch.testing.assert_close(s, t, atol=tol, rtol=0)
    gen = torch.Generator().manual_seed(1)
    gy = torch.randn(ya.shape, generator=gen, dtype=ya.dtype)
    gh = [torch.randn(s.shape, generator=gen, dtype=s.dtype) for s in as_tuple(ha)]
    la = (ya * gy).sum() + sum((s * g).sum() for s, g in zip(as_tuple(ha), gh))
    lb = (yb * gy).sum() + sum((s * g).sum() for s, g in zip(as_tuple(hb), gh))
    ga = torch.autograd.grad(la, [xa, *a.parameters()])
    gb = torch.autograd.grad(lb, [xb, *b.parameters()])
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, atol=tol, rtol=0)


COMBOS = list(
    itertools.product(
        ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"],
        [1, 2],  # num_layers
        [False, True],  # bidirectional
        [True, False],  # bias
        [False, True],  # batch_first
        [False, True],  # lengths
    )
)


@pytest.mark.parametrize("mode,layers,bidi,bias,batch_first,use_lengths", COMBOS)
def test_reference_loop_equals_torch_nn(mode, layers, bidi, bias, batch_first, use_lengths):
    """The functional time loop (the oracle) equals torch.nn to 1e-9 in float64, outputs and grads."""
    kw = dict(num_layers=layers, bidirectional=bidi, bias=bias, batch_first=batch_first)
    if layers == 2:
        kw["dropout"] = 0.3
    a, b = make_pair(mode, **kw)
    a.eval(), b.eval()  # inter-layer dropout is RNG-bound; its expectation is the identity
    gen = torch.Generator().manual_seed(2)
    shape = (N, T, D) if batch_first else (T, N, D)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    hx = random_hx(mode, layers, 2 if bidi else 1, 0, gen)
    check_close_with_grads(a, b, mode, x, hx, LENGTHS if use_lengths else None, batch_first)


@pytest.mark.parametrize(
    "layers,bidi,use_lengths", list(itertools.product([1, 2], [False, True], [False, True]))
)
def test_reference_lstm_with_projection_equals_torch_nn(layers, bidi, use_lengths):
    a, b = make_pair("LSTM", num_layers=layers, bidirectional=bidi, proj_size=2)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(T, N, D, generator=gen, dtype=torch.float64)
    hx = random_hx("LSTM", layers, 2 if bidi else 1, 2, gen)
    check_close_with_grads(a, b, "LSTM", x, hx, LENGTHS if use_lengths else None, False)


@pytest.mark.parametrize("mode", list(PAIRS))
def test_native_dispatch_is_torch_nn_with_lengths_and_state_dicts(mode):
    a, b = make_pair(mode, backend="auto", num_layers=2, bidirectional=True)
    assert isinstance(a, type(b))
    assert list(a.state_dict()) == list(b.state_dict())
    for k, v in a.state_dict().items():  # same seed, same initialisation
        assert torch.equal(v, b.state_dict()[k])
    # load_state_dict works both ways
    b.load_state_dict(a.state_dict())
    a.load_state_dict(b.state_dict())
    x = torch.randn(T, N, D, dtype=torch.float64)
    check_close_with_grads(a, b, mode, x, None, LENGTHS, False, tol=0)


@pytest.mark.parametrize("mode", list(PAIRS))
def test_lengths_zero_padded_outputs_and_per_sequence_final_state(mode):
    a, _ = make_pair(mode, backend="reference", bidirectional=True)
    x = torch.randn(T, N, D, dtype=torch.float64)
    out, hn = a(x, lengths=LENGTHS)
    for n, length in enumerate(LENGTHS.tolist()):
        assert torch.all(out[length:, n] == 0)
        # running the sequence alone, unpadded, gives the same outputs and final state
        alone, hn_alone = a(x[:length, n : n + 1])
        torch.testing.assert_close(out[:length, n : n + 1], alone, atol=1e-12, rtol=0)
        for s, t in zip(as_tuple(hn), as_tuple(hn_alone)):
            torch.testing.assert_close(s[:, n : n + 1], t, atol=1e-12, rtol=0)


VARIANT_KWARGS = {
    "LSTM": [
        dict(layer_norm=True),
        dict(peephole=True),
        dict(zoneout=(0.2, 0.1)),
        dict(recurrent_dropout=0.3),
        dict(weight_drop=0.4),
        dict(layer_norm=True, peephole=True, zoneout=0.1, recurrent_dropout=0.2, weight_drop=0.2),
    ],
    "GRU": [
        dict(layer_norm=True),
        dict(zoneout=0.2),
        dict(recurrent_dropout=0.3),
        dict(weight_drop=0.4),
    ],
    "RNN_TANH": [dict(layer_norm=True), dict(zoneout=0.2), dict(recurrent_dropout=0.3)],
}


def variant_cases():
    for mode, options in VARIANT_KWARGS.items():
        for kw in options:
            yield pytest.param(mode, kw, id=f"{mode}-{'-'.join(kw)}")


@pytest.mark.parametrize("mode,kw", list(variant_cases()))
def test_variant_packed_sequence_round_trip(mode, kw):
    a = make_layer(mode, bidirectional=True, **kw)
    a.eval()
    x = torch.randn(T, N, D, dtype=torch.float64)
    padded_out, hn = a(x, lengths=LENGTHS)
    packed = pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
    packed_out, hn_packed = a(packed)
    assert isinstance(packed_out, torch.nn.utils.rnn.PackedSequence)
    assert torch.equal(packed_out.sorted_indices, packed.sorted_indices)
    out, lengths = pad_packed_sequence(packed_out, total_length=T)
    assert torch.equal(lengths, LENGTHS)
    torch.testing.assert_close(out, padded_out, atol=0, rtol=0)
    for s, t in zip(as_tuple(hn), as_tuple(hn_packed)):
        torch.testing.assert_close(s, t, atol=0, rtol=0)


@pytest.mark.parametrize("mode,kw", list(variant_cases()))
def test_variant_eval_is_deterministic_and_training_is_stochastic(mode, kw):
    a = make_layer(mode, **kw)
    x = torch.randn(T, N, D, dtype=torch.float64)
    a.eval()
    y1, _ = a(x)
    y2, _ = a(x)
    assert torch.equal(y1, y2)
    stochastic = {"zoneout", "recurrent_dropout", "weight_drop"} & set(kw)
    a.train()
    torch.manual_seed(5)
    y3, _ = a(x)
    torch.manual_seed(6)
    y4, _ = a(x)
    assert torch.equal(y3, y4) != bool(stochastic)


@pytest.mark.parametrize("mode,kw", list(variant_cases()))
def test_variant_gradients_match_numeric(mode, kw):
    """Backward of every variant vs central differences (torch.autograd.gradcheck, float64), with the
    stochastic masks fixed by reseeding inside the function."""
    a = make_layer(mode, **kw)
    a.train()
    x = torch.randn(3, 2, D, dtype=torch.float64, requires_grad=True)
    params = list(a.parameters())

    def f(x, *ps):
        torch.manual_seed(7)
        with torch.nn.utils.stateless._reparametrize_module(
            a, dict(zip([n for n, _ in a.named_parameters()], ps))
        ):
            out, _ = a(x, lengths=torch.tensor([3, 2]))
        return out

    assert torch.autograd.gradcheck(f, (x, *[p.detach().requires_grad_() for p in params]))


def test_zoneout_eval_uses_the_expectation():
    a = make_layer("GRU", zoneout=0.25)
    plain = make_layer("GRU", backend="reference")
    a.eval()
    x = torch.randn(1, N, D, dtype=torch.float64)
    h0 = torch.randn(1, N, H, dtype=torch.float64)
    y, _ = a(x, h0)
    y_plain, _ = plain(x, h0)
    torch.testing.assert_close(y[0], 0.25 * h0[0] + 0.75 * y_plain[0])


def test_eval_dropout_variants_equal_the_plain_layer():
    a = make_layer("LSTM", recurrent_dropout=0.5, weight_drop=0.5)
    b = make_layer("LSTM")
    a.eval()
    x = torch.randn(T, N, D, dtype=torch.float64)
    torch.testing.assert_close(a(x)[0], b(x)[0], atol=1e-12, rtol=0)


def test_recurrent_dropout_mask_is_shared_over_time():
    """With a zero input and W_ih = 0, h_t depends on the mask only through W_hh (h * m): a unit
    dropped at step 1 is dropped at every step, so its recurrent column never contributes."""
    torch.manual_seed(0)
    layer = rnnkit.RNN(2, 16, recurrent_dropout=0.5, bias=True, dtype=torch.float64)
    with torch.no_grad():
        layer.weight_ih_l0.zero_()
        layer.weight_hh_l0.copy_(torch.eye(16))
        layer.bias_hh_l0.zero_()
        layer.bias_ih_l0.fill_(0.0)
    h0 = torch.ones(1, 1, 16, dtype=torch.float64)
    out, _ = layer(torch.zeros(6, 1, 2, dtype=torch.float64), h0)
    dropped = out[0, 0] == 0
    assert dropped.any() and (~dropped).any()
    assert torch.all(out[:, 0, dropped] == 0)
    assert torch.all(out[:, 0, ~dropped] != 0)


def test_forget_bias_initialisation():
    layer = rnnkit.LSTM(D, H, num_layers=2, bidirectional=True, forget_bias=1.0)
    for name, p in layer.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.all(p[H : 2 * H] == 1.0)
        if name.startswith("bias_hh"):
            assert torch.all(p[H : 2 * H] == 0.0)
    assert not layer.variants.changes_recurrence  # native kernels still run it


def test_extra_parameter_names_and_shapes():
    layer = rnnkit.LSTM(D, H, num_layers=2, bidirectional=True, layer_norm=True, peephole=True)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes["layer_norm_ih_l1_reverse"] == (4 * H,)
    assert shapes["layer_norm_hh_l0"] == (4 * H,)
    assert shapes["layer_norm_c_weight_l0"] == (H,)
    assert shapes["peephole_l1"] == (3, H)
    gru = rnnkit.GRU(D, H, layer_norm=True)
    assert {k for k in gru.state_dict() if "layer_norm" in k} == {
        "layer_norm_ih_l0",
        "layer_norm_hh_l0",
    }


def test_unbatched_input_matches_batched():
    a = make_layer("LSTM", backend="reference", layer_norm=True, num_layers=2)
    x = torch.randn(T, D, dtype=torch.float64)
    y, (h, c) = a(x)
    yb, (hb, cb) = a(x.unsqueeze(1))
    assert y.shape == (T, H) and h.shape == (2, H)
    torch.testing.assert_close(y, yb[:, 0])
    torch.testing.assert_close(c, cb[:, 0])


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda m: m(torch.randn(T, N, D, 1)), ValueError, "rank 3"),
        (lambda m: m(torch.randn(T, N, D + 1)), ValueError, "input_size 4"),
        (lambda m: m(torch.ones(T, N, D, dtype=torch.long)), TypeError, "floating-point"),
        (lambda m: m(torch.randn(T, N, D), torch.zeros(1, N, H)), TypeError, r"tuple \(h_0, c_0\)"),
        (
            lambda m: m(torch.randn(T, N, D), (torch.zeros(2, N, H), torch.zeros(1, N, H))),
            ValueError,
            "h_0 must have shape",
        ),
        (
            lambda m: m(
                torch.randn(T, N, D),
                (torch.zeros(1, N, H, dtype=torch.float64), torch.zeros(1, N, H)),
            ),
            TypeError,
            "dtype",
        ),
        (lambda m: m(torch.randn(T, N, D), lengths=torch.tensor([[1, 2, 3]])), ValueError, "1-D"),
        (
            lambda m: m(torch.randn(T, N, D), lengths=torch.tensor([1.0, 2.0, 3.0])),
            TypeError,
            "integer",
        ),
        (lambda m: m(torch.randn(T, N, D), lengths=torch.tensor([1, 0, 3])), ValueError, ">= 1"),
        (lambda m: m(torch.randn(T, N, D), lengths=torch.tensor([1, -2, 3])), ValueError, ">= 1"),
        (
            lambda m: m(torch.randn(T, N, D), lengths=torch.tensor([1, 2, T + 1])),
            ValueError,
            "<= the time",
        ),
        (
            lambda m: m(torch.randn(T, N, D), lengths=torch.tensor([1, 2])),
            ValueError,
            "one entry per",
        ),
    ],
)
@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_bad_input_errors_name_expected_and_received(call, exc, match, backend):
    with pytest.raises(exc, match=match):
        call(rnnkit.LSTM(D, H, backend=backend))


def test_bad_options_errors():
    with pytest.raises(TypeError, match="peephole"):
        rnnkit.GRU(D, H, peephole=True)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="no cell state"):
        rnnkit.GRU(D, H, zoneout=(0.1, 0.2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        rnnkit.LSTM(D, H, zoneout=1.5)
    with pytest.raises(ValueError, match="backend='native' cannot run"):
        rnnkit.LSTM(D, H, layer_norm=True, backend="native")
    with pytest.raises(ValueError, match="backend must be one of"):
        rnnkit.LSTM(D, H, backend="cuda")
    with pytest.raises(TypeError, match="forget_bias exists only for LSTM|unexpected keyword"):
        rnnkit.RNN(D, H, forget_bias=1.0)  # type: ignore[call-arg]


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
@pytest.mark.parametrize("packed", [False, True])
def test_weight_drop_runs_native_kernels_on_the_dropped_matrix(mode, packed):
    """DropConnect alone runs on torch's kernels with the dropped W_hh (a GRU or RNN on CPU: on the C
    kernels, faster than torch's unfused CPU GRU and without the dropped matrix kept); with the same
    seed it draws the same masks as the reference loop, so outputs and gradients agree."""
    fast = make_layer(mode, num_layers=2, bidirectional=True, weight_drop=0.4)
    slow = make_layer(mode, backend="reference", num_layers=2, bidirectional=True, weight_drop=0.4)
    x = torch.randn(T, N, D, dtype=torch.float64)
    natively = [dispatch.runs_natively(m.spec, m.variants, m.backend, like=x) for m in (fast, slow)]
    c_kernels = mode != "LSTM" and cpu_kernels.library(torch.float64) is not None
    assert natively == [not c_kernels, False]
    # where the C kernels do not serve (another device), every mode runs on torch's kernels
    assert dispatch.runs_natively(fast.spec, fast.variants, fast.backend, like=x.to("meta"))
    results = []
    for layer in (fast, slow):
        torch.manual_seed(11)
        inp = pack_padded_sequence(x, LENGTHS, enforce_sorted=False) if packed else x
        out, _ = layer(inp)
        out = pad_packed_sequence(out, total_length=T)[0] if packed else out
        grads = torch.autograd.grad(out.square().sum(), list(layer.parameters()))
        results.append((out, grads))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-12, rtol=0)
    for g, h in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(g, h, atol=1e-10, rtol=0)
    assert not torch.equal(results[0][0], make_layer(mode, num_layers=2, bidirectional=True)(x)[0])
    fast.eval()  # evaluation: no drop, exactly the plain layer
    torch.testing.assert_close(fast(x)[0], make_layer(mode, num_layers=2, bidirectional=True)(x)[0])
