"""The fused backends (C kernels, torch ops) equal the reference loop, forward and gradients, 1e-9 in
float64."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch

import rnnkit
from rnnkit.backends import cpu_kernels, dispatch, gemm, reference
from rnnkit.backends.cpu_kernels import lstm as kernel_lstm
from rnnkit.functional import CellParams, StepOptions, input_projection
from rnnkit.registry import get_cell

T, N, H, R = 5, 3, 4, 3
DT = torch.float64
LENGTHS = torch.tensor([5, 2, 4])
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}

# name -> (modes it applies to, CellParams fields, StepOptions fields)
VARIANTS = {
    "plain": (("LSTM", "GRU", "RNN"), {}, {}),
    "no_bias": (("LSTM", "GRU", "RNN"), {"bias": False}, {}),
    "layer_norm": (("LSTM", "GRU", "RNN"), {"ln": True}, {}),
    "layer_norm_no_bias": (("LSTM", "GRU", "RNN"), {"ln": True, "bias": False}, {}),
    "peephole": (("LSTM",), {"peephole": True}, {}),
    "projection": (("LSTM",), {"proj": True}, {}),
    "recurrent_dropout": (("LSTM", "GRU", "RNN"), {}, {"mask": True}),
    "weight_drop": (("LSTM", "GRU", "RNN"), {}, {"w_hh": True}),
    "zoneout_train": (("LSTM", "GRU", "RNN"), {}, {"zoneout": "mask"}),
    "zoneout_eval": (("LSTM", "GRU", "RNN"), {}, {"zoneout": "rate"}),
    "ln_peephole_zoneout": (("LSTM",), {"ln": True, "peephole": True}, {"zoneout": "mask"}),
    "everything": (
        ("LSTM", "GRU", "RNN"),
        {"ln": True, "peephole": True, "proj": True},
        {"mask": True, "w_hh": True, "zoneout": "mask"},
    ),
}
CASES = [
    (mode, name)
    for name, (modes, _, _) in VARIANTS.items()
    for mode in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
    if mode.split("_")[0] in modes
]


def make_problem(mode: str, name: str, seed: int = 0):
    """Random ``(gx, state, params, options)`` of one case, every tensor a float64 leaf."""
    base = mode.split("_")[0]
    _, pk, ok = VARIANTS[name]
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0, grad=True):
        t = torch.randn(*shape, generator=gen, dtype=DT) * scale
        return t.requires_grad_(grad)

    g = GATES[base] * H
    proj = base == "LSTM" and pk.get("proj", False)
    r = R if proj else H
    bias = pk.get("bias", True)
    lstm = base == "LSTM"
    p = CellParams(
        w_ih=rnd(g, 2),
        w_hh=rnd(g, r, scale=0.5),
        b_ih=rnd(g) if bias else None,
        b_hh=rnd(g) if bias else None,
        w_hr=rnd(r, H, scale=0.7) if proj else None,
        ln_ih=rnd(g) if pk.get("ln") else None,
        ln_hh=(1 + rnd(g, scale=0.3, grad=False)).requires_grad_() if pk.get("ln") else None,
        ln_c_weight=(1 + rnd(H, scale=0.3, grad=False)).requires_grad_()
        if pk.get("ln") and lstm
        else None,
        ln_c_bias=rnd(H, scale=0.3) if pk.get("ln") and lstm else None,
        peephole=rnd(3, H, scale=0.5) if pk.get("peephole") and lstm else None,
    )
    opts = StepOptions()
    if ok.get("mask"):
        keep = torch.rand(N, r, generator=gen, dtype=DT) > 0.3
        opts = replace(opts, dropout_mask=keep.to(DT) / 0.7)
    if ok.get("w_hh"):
        opts = replace(opts, w_hh=rnd(g, r, scale=0.5))
    if ok.get("zoneout") == "mask":
        zh = (torch.rand(T, N, r, generator=gen, dtype=DT) < 0.3).to(DT)
        zc = (torch.rand(T, N, H, generator=gen, dtype=DT) < 0.3).to(DT)
        opts = replace(opts, zoneout_h=zh, zoneout_c=zc if lstm else 0.0)
    elif ok.get("zoneout") == "rate":
        opts = replace(opts, zoneout_h=0.2, zoneout_c=0.3 if lstm else 0.0)
    gx = rnd(T, N, g)
    state = (rnd(N, r), rnd(N, H)) if lstm else (rnd(N, r),)
    return base, gx, state, p, opts


def leaves(gx, state, p, opts):
    params = [getattr(p, f) for f in p.__dataclass_fields__]
    ts = [gx, *state, *params, opts.w_hh]
    return [t for t in ts if t is not None and t.requires_grad]


def run(fn, mode, gx, state, p, opts, lengths, reverse):
    cell = get_cell("RNN_TANH" if mode == "RNN" else mode)
    return fn(cell, gx, state, p, lengths=lengths, reverse=reverse, options=opts)


def assert_same(mode, name, lengths, reverse, seed=0):
    _, gx, state, p, opts = make_problem(mode, name, seed)
    out_f, st_f = run(dispatch.scan, mode, gx, state, p, opts, lengths, reverse)
    out_r, st_r = run(reference.scan, mode, gx, state, p, opts, lengths, reverse)
    torch.testing.assert_close(out_f, out_r, atol=1e-9, rtol=0)
    assert len(st_f) == len(st_r)
    for a, b in zip(st_f, st_r):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)
    if lengths is not None:
        pad = torch.arange(T)[:, None] >= lengths
        assert (out_f[pad] == 0).all()
    gen = torch.Generator().manual_seed(seed + 1)
    w_out = torch.randn(out_r.shape, generator=gen, dtype=DT)
    w_st = [torch.randn(s.shape, generator=gen, dtype=DT) for s in st_r]
    xs = leaves(gx, state, p, opts)

    def loss(out, st):
        return (out * w_out).sum() + sum((s * w).sum() for s, w in zip(st, w_st))

    g_f = torch.autograd.grad(loss(out_f, st_f), xs, allow_unused=True)
    g_r = torch.autograd.grad(loss(out_r, st_r), xs, allow_unused=True)
    for x, a, b in zip(xs, g_f, g_r):
        if b is None:
            assert a is None or (a == 0).all(), f"unexpected gradient for {tuple(x.shape)}"
            continue
        assert a is not None, f"missing gradient for a tensor of shape {tuple(x.shape)}"
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)
    # forward-only path (no saving for backward) gives the same numbers
    with torch.no_grad():
        out_n, st_n = run(dispatch.scan, mode, gx, state, p, opts, lengths, reverse)
    torch.testing.assert_close(out_n, out_r.detach(), atol=1e-9, rtol=0)
    for a, b in zip(st_n, st_r):
        torch.testing.assert_close(a, b.detach(), atol=1e-9, rtol=0)


@pytest.fixture(params=["c-kernels", "torch-ops"])
def step_kernels(request, monkeypatch):
    """Run a test on the C step kernels (rnnkit.backends.cpu_kernels) and on the torch-op kernels
    (rnnkit.backends.torch_ops: what CUDA and machines without a C compiler run), switched as a
    user would, by RNNKIT_CPU_KERNELS."""
    monkeypatch.setenv("RNNKIT_CPU_KERNELS", "1" if request.param == "c-kernels" else "0")
    return request.param


@pytest.mark.parametrize("mode,name", CASES)
@pytest.mark.parametrize("lengths,reverse", [(None, False), (None, True), (LENGTHS, False),
                                             (LENGTHS, True)])  # fmt: skip
def test_fused_equals_functional(mode, name, lengths, reverse, step_kernels):
    assert_same(mode, name, lengths, reverse)


def test_variants_run_on_the_c_kernels_where_they_build():
    """On CPU with a C compiler the variants' autograd nodes are the C-kernel ops': in plain eager
    code their autograd formulas as Functions (``EagerLSTMSequence``), the registered
    torch.ops.rnnkit.*_sequence where something traces."""
    if cpu_kernels.library() is None:
        pytest.skip("no C compiler: the torch-op kernels serve")
    _, gx, state, p, opts = make_problem("LSTM", "ln_peephole_zoneout")
    out, _ = dispatch.scan(get_cell("LSTM"), gx, state, p, options=opts)
    assert type(out.grad_fn).__name__ == "EagerLSTMSequenceBackward"
    _, gx, state, p, _ = make_problem("LSTM", "projection")
    out, _ = dispatch.scan(
        get_cell("LSTM"), gx, state, p
    )  # projections run on the torch-op kernels
    assert type(out.grad_fn).__name__ == "LSTMSequenceBackward"
    for mode in ("GRU", "RNN"):
        _, gx, state, p, opts = make_problem(mode, "layer_norm")
        out, _ = dispatch.scan(
            get_cell("RNN_TANH" if mode == "RNN" else mode), gx, state, p, options=opts
        )
        assert type(out.grad_fn).__name__ == "EagerGRUSequenceBackward"


def test_partial_requires_grad_and_retain_graph():
    """Only some inputs need gradients; backward runs twice with retain_graph."""
    _, gx, state, p, opts = make_problem("LSTM", "everything")
    gx = gx.detach()
    state = (state[0].detach(), state[1])
    out_f, st_f = dispatch.scan(get_cell("LSTM"), gx, state, p, options=opts, lengths=LENGTHS)
    out_r, st_r = reference.scan(get_cell("LSTM"), gx, state, p, options=opts, lengths=LENGTHS)
    xs = [state[1], p.w_hr, p.peephole]
    loss_f = out_f.square().sum() + st_f[1].sum()
    g1 = torch.autograd.grad(loss_f, xs, retain_graph=True)
    g2 = torch.autograd.grad(loss_f, xs)
    g_r = torch.autograd.grad(out_r.square().sum() + st_r[1].sum(), xs)
    for a, b, c in zip(g1, g2, g_r):
        torch.testing.assert_close(a, c, atol=1e-9, rtol=0)
        torch.testing.assert_close(b, c, atol=1e-9, rtol=0)


def test_mask_requiring_grad_falls_back_to_the_functional_loop():
    _, gx, state, p, opts = make_problem("GRU", "recurrent_dropout")
    mask = opts.dropout_mask.clone().requires_grad_()
    opts = replace(opts, dropout_mask=mask)
    out_f, _ = dispatch.scan(get_cell("GRU"), gx, state, p, options=opts)
    out_r, _ = reference.scan(get_cell("GRU"), gx, state, p, options=opts)
    (g_f,) = torch.autograd.grad(out_f.sum(), [mask])
    (g_r,) = torch.autograd.grad(out_r.sum(), [mask])
    torch.testing.assert_close(g_f, g_r, atol=1e-9, rtol=0)


def test_no_grad_forward_builds_no_graph_and_float32_runs():
    _, gx, state, p, opts = make_problem("LSTM", "ln_peephole_zoneout")
    with torch.no_grad():
        out, (h, c) = dispatch.scan(get_cell("LSTM"), gx, state, p, options=opts)
    assert not out.requires_grad and out.grad_fn is None
    p32 = CellParams(**{k: None if v is None else v.detach().float()
                        for k, v in vars(p).items()})  # fmt: skip
    opts32 = replace(opts, zoneout_h=opts.zoneout_h.float(), zoneout_c=opts.zoneout_c.float())
    s32 = tuple(s.detach().float() for s in state)
    out32, _ = dispatch.scan(get_cell("LSTM"), gx.detach().float(), s32, p32, options=opts32)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_gru_with_layer_norms_saves_no_gates_and_rebuilds_them_exactly(layer_norm, step_kernels):
    """With both layer norms the GRU op keeps no (T, N, 4H) gate values for its backward (it
    rebuilds them from the projections and each step's recurrent GEMM output); the gradients are
    the reference loop's all the same, lengths and zoneout included."""
    torch.manual_seed(0)
    kw = dict(layer_norm=layer_norm, zoneout=0.2)
    fused = rnnkit.GRU(3, 6, 2, dtype=DT, **kw).train()
    loop = rnnkit.GRU(3, 6, 2, dtype=DT, backend="reference", **kw).train()
    loop.load_state_dict(fused.state_dict())
    x = torch.randn(7, 4, 3, dtype=DT, requires_grad=True)
    lengths = torch.tensor([7, 3, 5, 1])
    grads = []
    for layer in (fused, loop):
        torch.manual_seed(1)  # the same zoneout masks
        out, h = layer(x, lengths=lengths)
        grads.append(torch.autograd.grad(out.square().sum() + h.sum(), [x, *layer.parameters()]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)
    p = fused.cell_params(0, 0)
    outputs = torch.ops.rnnkit.gru_sequence(
        x, p.w_ih, torch.zeros(4, 6, dtype=DT), p.w_hh, p.b_ih, p.b_hh, p.ln_ih, p.ln_hh, None,
        None, 0.0, None, False, "gru", True,
    )  # fmt: skip
    acts = outputs[3]  # (out, h_n, hs, acts, stats)
    assert acts.shape == ((0,) if layer_norm else (7, 4, 24))


def test_bad_cell_or_backend_is_a_value_error():
    _, gx, state, p, _ = make_problem("RNN_TANH", "plain")
    with pytest.raises(ValueError, match="cell must be one of"):
        dispatch.scan("LSTMX", gx, state, p)
    with pytest.raises(ValueError, match="backend must be one of"):
        dispatch.scan("rnn", gx, state, p, backend="gpu")


def test_an_explicit_fused_backend_that_cannot_serve_raises(monkeypatch):
    """Asked for by name, a backend that cannot run the call fails loudly (under 'fused' the
    choice falls back quietly)."""
    _, gx, state, p, _ = make_problem("LSTM", "projection")
    with pytest.raises(ValueError, match="cpu_kernels.*projections"):
        dispatch.scan("lstm", gx, state, p, backend="cpu_kernels")
    monkeypatch.setenv("RNNKIT_CPU_KERNELS", "off")
    _, gx, state, p, _ = make_problem("GRU", "plain")
    with pytest.raises(ValueError, match="RNNKIT_CPU_KERNELS"):
        dispatch.scan("gru", gx, state, p, backend="cpu_kernels")
    out, _ = dispatch.scan("gru", gx, state, p, backend="fused")
    assert type(out.grad_fn).__name__ == "GRUSequenceBackward"


LAYER_KW = {
    "GRU_torch_ops": {"layer_norm": True, "recurrent_dropout": 0.3, "weight_drop": 0.2,
                      "zoneout": 0.2},
    "LSTM": {"layer_norm": True, "peephole": True, "recurrent_dropout": 0.3, "weight_drop": 0.2,
             "zoneout": (0.2, 0.1), "proj_size": 3},
    # no projection: the C step kernels, with the input layer norm and biases folded in
    "LSTM_c_kernels": {"layer_norm": True, "peephole": True, "recurrent_dropout": 0.3,
                       "weight_drop": 0.2, "zoneout": (0.2, 0.1)},
    "GRU": {"layer_norm": True, "recurrent_dropout": 0.3, "weight_drop": 0.2, "zoneout": 0.2},
    "RNN": {"layer_norm": True, "recurrent_dropout": 0.3, "weight_drop": 0.2, "zoneout": 0.2},
}  # fmt: skip


@pytest.mark.parametrize("chunks", ["one chunk", "2-step chunks"])
@pytest.mark.parametrize("mode,training", list(itertools.product(LAYER_KW, (True, False))))
def test_fused_layer_equals_reference_layer(mode, training, chunks, monkeypatch,
                                            outputs_and_gradients):  # fmt: skip
    """2-layer bidirectional layer, every variant: backend 'fused' == 'reference' (same masks),
    with the input projections in one GEMM or in chunks of 2 steps
    (rnnkit.backends.cpu_kernels.lstm), with and without gradients."""
    if mode == "GRU_torch_ops":
        monkeypatch.setenv("RNNKIT_CPU_KERNELS", "0")
    if chunks == "2-step chunks":
        monkeypatch.setattr(kernel_lstm, "CHUNK_BYTES", 1)
        monkeypatch.setattr(kernel_lstm, "MIN_CHUNK_ROWS", 2 * N)
    cls = getattr(rnnkit, mode.split("_")[0])
    layers = []
    for backend in ("fused", "reference"):
        torch.manual_seed(0)
        layers.append(cls(2, H, num_layers=2, bidirectional=True, dropout=0.2, dtype=DT,
                          backend=backend, **LAYER_KW[mode]).train(training))  # fmt: skip
    x = torch.randn(T, N, 2, dtype=DT)
    (o1, s1, g1), (o2, s2, g2) = (outputs_and_gradients(layer, x, LENGTHS) for layer in layers)
    torch.testing.assert_close(o1, o2, atol=1e-9, rtol=0)
    for a, b in zip((*s1, *g1), (*s2, *g2)):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)
    with torch.no_grad():  # the paths that save nothing for backward
        outs = []
        for layer in layers:
            torch.manual_seed(1)
            outs.append(layer(x, lengths=LENGTHS))
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=1e-9, rtol=0)


@pytest.fixture(params=["auto", "onednn", "mkl"])
def cpu_gemm(request, monkeypatch):
    """The CPU GEMM backend of rnnkit.backends.gemm.Gemm: the per-CPU choice, oneDNN's prepacked
    GEMM (AMD CPUs) and torch.mm / MKL (Intel CPUs), chosen as a user would, by RNNKIT_CPU_GEMM."""
    if request.param == "onednn":
        if gemm._linear is None or not torch.backends.mkldnn.is_available():
            pytest.skip("this torch build has no oneDNN linear")
        monkeypatch.setenv("RNNKIT_CPU_GEMM", "onednn")
        assert gemm.onednn_gemms()
    elif request.param == "mkl":
        monkeypatch.setenv("RNNKIT_CPU_GEMM", "mkl")
        assert not gemm.onednn_gemms()
    return request.param


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_float32_cpu_path_matches_float64(mode, cpu_gemm, step_kernels):
    """float32 on CPU (C or torch-op step kernels, oneDNN or MKL GEMMs): the same numbers as the
    float64 loop to float32 accuracy, forward and gradients."""
    _, gx, state, p, opts = make_problem(mode, "everything")
    xs = leaves(gx, state, p, opts)

    def f32(t):
        return None if t is None else t.detach().float().requires_grad_(t.requires_grad)

    gx32, st32 = f32(gx), tuple(f32(s) for s in state)
    p32 = CellParams(**{k: f32(v) for k, v in vars(p).items()})
    o32 = StepOptions(
        dropout_mask=f32(opts.dropout_mask), w_hh=f32(opts.w_hh),
        zoneout_h=f32(opts.zoneout_h), zoneout_c=opts.zoneout_c if isinstance(opts.zoneout_c, float)
        else f32(opts.zoneout_c),
    )  # fmt: skip
    xs32 = leaves(gx32, st32, p32, o32)
    out64, _ = run(reference.scan, mode, gx, state, p, opts, LENGTHS, False)
    out32, _ = run(dispatch.scan, mode, gx32, st32, p32, o32, LENGTHS, False)
    torch.testing.assert_close(out32.double(), out64, atol=1e-4, rtol=1e-4)
    g64 = torch.autograd.grad(out64.square().sum(), xs, allow_unused=True)
    g32 = torch.autograd.grad(out32.square().sum(), xs32, allow_unused=True)
    assert sum(g is not None for g in g64) >= 5
    for a, b in zip(g32, g64):
        if b is not None:
            torch.testing.assert_close(a.double(), b, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ln", [False, True])
def test_input_projection_equals_functional(dtype, ln, cpu_gemm):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(T, N, 5, generator=gen, dtype=dtype, requires_grad=True)
    p = CellParams(
        w_ih=torch.randn(8, 5, generator=gen, dtype=dtype).requires_grad_(),
        w_hh=torch.randn(8, 2, dtype=dtype),
        b_ih=torch.randn(8, generator=gen, dtype=dtype).requires_grad_(),
        ln_ih=torch.rand(8, generator=gen, dtype=dtype).add(0.5).requires_grad_() if ln else None,
    )
    ours, ref = gemm.input_projection(x, p), input_projection(x, p)
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(ours, ref, atol=tol, rtol=tol)
    xs = [x, p.w_ih, p.b_ih] + ([p.ln_ih] if ln else [])
    w = torch.randn(ref.shape, generator=gen, dtype=dtype)
    for a, b in zip(
        torch.autograd.grad((ours * w).sum(), xs), torch.autograd.grad((ref * w).sum(), xs)
    ):
        torch.testing.assert_close(a, b, atol=tol * 10, rtol=tol * 10)
