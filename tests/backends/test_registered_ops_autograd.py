"""Issue #10, "registered ops", continued (test_registered_ops.py has opcheck, compile, export):
torch.func and vmap over every variant layer, second-order gradients through the ops' registered
autograd (create_graph=True) against the reference backend in float64, and NaN/Inf as in the
reference and torch.nn."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, grad, jacrev, vmap
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit

T, N, D, H = 5, 3, 4, 6
DT = torch.float64
LENGTHS = torch.tensor([5, 2, 4])

# every variant option alone and combined, per cell (weight_drop alone runs on torch.nn's kernels)
VARIANTS = [
    (rnnkit.LSTM, {"layer_norm": True}),
    (rnnkit.LSTM, {"zoneout": 0.1}),
    (rnnkit.LSTM, {"recurrent_dropout": 0.2}),
    (rnnkit.LSTM, {"weight_drop": 0.3}),
    (rnnkit.LSTM, {"peephole": True}),
    (rnnkit.LSTM, {"layer_norm": True, "peephole": True, "zoneout": (0.1, 0.2),
                   "recurrent_dropout": 0.2, "weight_drop": 0.3}),
    (rnnkit.GRU, {"layer_norm": True}),
    (rnnkit.GRU, {"zoneout": 0.1}),
    (rnnkit.GRU, {"recurrent_dropout": 0.2}),
    (rnnkit.GRU, {"weight_drop": 0.3}),
    (rnnkit.GRU, {"layer_norm": True, "zoneout": 0.1, "recurrent_dropout": 0.2,
                  "weight_drop": 0.3}),
    (rnnkit.RNN, {"layer_norm": True}),
    (rnnkit.RNN, {"zoneout": 0.1}),
    (rnnkit.RNN, {"nonlinearity": "relu", "recurrent_dropout": 0.2}),
    (rnnkit.RNN, {"nonlinearity": "relu", "layer_norm": True, "zoneout": 0.1,
                  "recurrent_dropout": 0.2, "weight_drop": 0.3}),
]  # fmt: skip
COMBOS = [v for v in VARIANTS if len(v[1]) > 2]
FUNC_CASES = [COMBOS[0], COMBOS[1], (rnnkit.RNN, {"layer_norm": True}), COMBOS[2]]


def case_id(v):
    if isinstance(v, dict):
        return "-".join(k if v[k] is True else f"{k}={v[k]}" for k in v).replace(" ", "")
    return getattr(v, "__name__", None)


def pair(cls, kw, dtype=DT, layers=2, bidirectional=True, training=False, d=D, h=H):
    """The layer on the default backend and its twin on backend="reference", same weights."""
    made = []
    for backend in ("auto", "reference"):
        torch.manual_seed(0)
        made.append(cls(d, h, num_layers=layers, bidirectional=bidirectional, dtype=dtype,
                        backend=backend, **kw).train(training))  # fmt: skip
    made[1].load_state_dict(made[0].state_dict())
    return made


def states(s):
    return s if isinstance(s, tuple) else (s,)


def loss_of(out, st):
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    return (out * w).sum() + out.square().sum() + sum(s.sin().sum() for s in states(st))


def graph_names(t: torch.Tensor) -> set[str]:
    """The autograd node names reachable from ``t``."""
    seen, todo, names = set(), [t.grad_fn], set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        todo.extend(f for f, _ in fn.next_functions)
    return names


KERNEL_NODES = (
    "rnnkit_lstm_sequence",
    "rnnkit_gru_sequence",
    "EagerLSTMSequence",
    "EagerGRUSequence",
)  # the registered ops' nodes, and the plain-eager Functions'


def on_kernels(t: torch.Tensor) -> bool:
    return any(k in n for n in graph_names(t) for k in KERNEL_NODES)


def close(a, b, tol):
    """``a == b`` to ``tol`` relative to the largest entry of ``b`` (and at least ``tol``)."""
    scale = float(b.abs().max()) if b.numel() else 0.0
    torch.testing.assert_close(a, b, rtol=tol, atol=tol * max(1.0, scale))


# ------------------------------------------------------------------------------ torch.func
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("cls,kw", FUNC_CASES, ids=case_id)
def test_func_grad_equals_autograd(cls, kw, lengths):
    """torch.func.grad over functional_call (which takes the reference loop) equals
    torch.autograd.grad through the C-kernel ops, float64."""
    layer, _ = pair(cls, kw)
    params = {k: v.detach() for k, v in layer.named_parameters()}
    x = torch.randn(T, N, D, dtype=DT)

    def loss(p, x):
        return loss_of(*functional_call(layer, p, (x,), {"lengths": lengths}))

    g = grad(loss, argnums=(0, 1))(params, x)
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    xi = x.clone().requires_grad_()
    out = functional_call(layer, leaves, (xi,), {"lengths": lengths})
    assert on_kernels(out[0])
    want = torch.autograd.grad(loss_of(*out), [*leaves.values(), xi])
    for got, w in zip([*g[0].values(), g[1]], want):
        close(got, w, 1e-10)


@pytest.mark.parametrize("cls,kw", FUNC_CASES, ids=case_id)
def test_vmap_over_a_batch_of_sequences_equals_a_loop(cls, kw):
    layer, _ = pair(cls, kw)
    xs = torch.randn(3, T, N, D, dtype=DT)
    h0 = torch.randn(3, 4, N, H, dtype=DT)

    def run(x, h):
        hx = (h, torch.tanh(h)) if cls is rnnkit.LSTM else h
        out, st = layer(x, hx, lengths=LENGTHS)
        return out, *states(st)

    batched = vmap(run)(xs, h0)
    for b in range(3):
        for got, want in zip(batched, run(xs[b], h0[b])):
            close(got[b], want, 1e-12)


@pytest.mark.parametrize("cls,kw", [(rnnkit.LSTM, {"layer_norm": True, "peephole": True,
                                                    "zoneout": 0.1}),
                                     (rnnkit.GRU, {"layer_norm": True, "zoneout": 0.1}),
                                     (rnnkit.RNN, {"nonlinearity": "relu", "zoneout": 0.1})],
                         ids=["LSTM", "GRU", "RNN_relu"])  # fmt: skip
def test_jacrev_equals_the_reference_backend_and_the_kernels_jacobian(cls, kw):
    layer, ref = pair(cls, kw, layers=1, bidirectional=False, d=2, h=3)
    x = torch.randn(3, 2, 2, dtype=DT)
    jac = jacrev(lambda v: layer(v, lengths=torch.tensor([3, 2]))[0])(x)
    jac_ref = jacrev(lambda v: ref(v, lengths=torch.tensor([3, 2]))[0])(x)
    # the C-kernel ops, no transform: torch.autograd.functional's jacobian row by row
    assert on_kernels(layer(x.clone().requires_grad_())[0])
    jac_kernels = torch.autograd.functional.jacobian(
        lambda v: layer(v, lengths=torch.tensor([3, 2]))[0], x
    )
    assert jac.shape == (3, 2, 3, 3, 2, 2) and jac.abs().sum() > 0
    close(jac, jac_ref, 1e-12)
    close(jac, jac_kernels, 1e-12)


def test_an_explicit_fused_backend_under_torch_func_is_a_clear_error():
    layer = rnnkit.GRU(D, H, layer_norm=True, dtype=DT, backend="cpu_kernels").eval()
    params = {k: v.detach() for k, v in layer.named_parameters()}
    x = torch.randn(T, N, D, dtype=DT)

    def loss(p):
        return functional_call(layer, p, (x,))[0].sum()

    with pytest.raises(ValueError, match="backend='cpu_kernels' cannot run under a torch.func"):
        grad(loss)(params)
    with pytest.raises(ValueError, match="backend='cpu_kernels' cannot run under a torch.func"):
        vmap(lambda v: layer(v)[0])(x.unsqueeze(0))
    layer.backend = "auto"  # the same layer on the default backend: the reference loop
    g = grad(loss)(params)
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    want = torch.autograd.grad(loss(leaves), list(leaves.values()))
    for got, w in zip(g.values(), want):
        close(got, w, 1e-10)


def test_func_grad_in_training_mode(monkeypatch):
    """Under a transform the masks come from torch's generator (a C call cannot be traced); the
    eager side here draws them there too (RNNKIT_CPU_KERNELS=0), so both see the same masks."""
    torch.manual_seed(0)
    layer = rnnkit.GRU(D, H, recurrent_dropout=0.2, dtype=DT).train()
    params = {k: v.detach() for k, v in layer.named_parameters()}
    x = torch.randn(T, N, D, dtype=DT)

    def loss(p):
        return functional_call(layer, p, (x,))[0].square().sum()

    torch.manual_seed(1)
    g = grad(loss)(params)
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    monkeypatch.setenv("RNNKIT_CPU_KERNELS", "0")
    torch.manual_seed(1)
    want = torch.autograd.grad(loss(leaves), list(leaves.values()))
    for got, w in zip(g.values(), want):
        close(got, w, 1e-10)


# ------------------------------------------------------------------------ double backward
def gradient_penalty(layer, x, lengths, seed=1):
    """``sum(grad(loss)^2)`` over the input and every parameter (create_graph=True), and its
    gradients; the masks drawn from ``seed``."""
    torch.manual_seed(seed)
    xi = x.clone().requires_grad_()
    out, st = layer(xi, lengths=lengths)
    leaves = [xi, *layer.parameters()]
    first = torch.autograd.grad(loss_of(out, st), leaves, create_graph=True)
    penalty = sum(g.square().sum() for g in first)
    return out, penalty, torch.autograd.grad(penalty, leaves)


# every variant in eval; in training (the same masks from the same seed) the combinations and
# DropConnect alone (in eval it changes nothing)
TRAIN_TOO = [v for v in VARIANTS if v in COMBOS or v[1] == {"weight_drop": 0.3}]
PENALTY_CASES = [
    *(pytest.param(c, kw, False, id=f"{c.__name__}-{case_id(kw)}-eval") for c, kw in VARIANTS),
    *(pytest.param(c, kw, True, id=f"{c.__name__}-{case_id(kw)}-train") for c, kw in TRAIN_TOO),
]


@pytest.mark.parametrize("cls,kw,training", PENALTY_CASES)
def test_gradient_penalty_equals_the_reference(cls, kw, training):
    """create_graph=True through the ops' autograd: the penalty and its gradients equal
    backend="reference" in float64 (2 layers, both directions, lengths)."""
    layer, ref = pair(cls, kw, training=training)
    x = torch.randn(T, N, D, dtype=DT)
    out, penalty, grads = gradient_penalty(layer, x, LENGTHS)
    _, penalty_ref, grads_ref = gradient_penalty(ref, x, LENGTHS)
    if set(kw) != {"weight_drop"}:  # DropConnect alone runs on torch.nn's kernels
        assert on_kernels(out)
    assert penalty_ref > 0
    close(penalty, penalty_ref, 1e-9)
    for g, g_ref in zip(grads, grads_ref):
        assert g_ref.abs().sum() > 0
        close(g, g_ref, 1e-9)


def test_gradgradcheck_on_a_tiny_layer():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(2, 2, layer_norm=True, peephole=True, zoneout=0.1, dtype=DT).eval()
    lengths = torch.tensor([3, 2])

    def f(x, w_hh, peephole):
        p = {**dict(layer.named_parameters()), "weight_hh_l0": w_hh, "peephole_l0": peephole}
        out, (h, c) = functional_call(layer, p, (x,), {"lengths": lengths})
        return out, c

    inputs = (torch.randn(3, 2, 2, dtype=DT, requires_grad=True),
              layer.weight_hh_l0.detach().clone().requires_grad_(),
              layer.peephole_l0.detach().clone().requires_grad_())  # fmt: skip
    assert on_kernels(f(*inputs)[0])
    assert torch.autograd.gradgradcheck(f, inputs)


# ---------------------------------------------------------------------------- NaN and Inf
NONFINITE_CASES = [
    (rnnkit.LSTM, {"layer_norm": True, "peephole": True, "zoneout": (0.1, 0.2),
                   "recurrent_dropout": 0.2, "weight_drop": 0.3}),
    (rnnkit.GRU, {"layer_norm": True, "zoneout": 0.1, "recurrent_dropout": 0.2}),
    (rnnkit.RNN, {"layer_norm": True, "zoneout": 0.1}),
    (rnnkit.RNN, {"nonlinearity": "relu", "zoneout": 0.1, "recurrent_dropout": 0.2}),
]  # fmt: skip
WHERE = ["input-nan", "input-inf", "weight_hh-nan", "weight_hh-inf", "h0-nan", "h0-inf",
         "padding-nan", "padding-inf"]  # fmt: skip


def _nonfinite_params():
    for cls, kw in NONFINITE_CASES:
        for where in WHERE:
            yield pytest.param(cls, kw, where,
                               id=f"{cls.__name__}-{case_id(kw)}-{where}")  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cls,kw,where", _nonfinite_params())
def test_nonfinite_pattern_equals_the_reference(cls, kw, where, dtype):
    """The isnan/isinf masks of the output and every final state equal the reference's; a NaN or
    Inf in padded steps (beyond lengths) reaches neither (outputs there are 0)."""
    layer, ref = pair(cls, kw, dtype=dtype)
    bad = float("nan") if where.endswith("nan") else float("inf")
    x = torch.randn(T, N, D, dtype=dtype)
    h0 = torch.randn(4, N, H, dtype=dtype)
    lengths = None
    if where.startswith("input"):
        x[2, 0, 1] = bad
    elif where.startswith("weight_hh"):
        with torch.no_grad():
            layer.weight_hh_l0[1, 0] = bad
        ref.load_state_dict(layer.state_dict())
    elif where.startswith("h0"):
        h0[1, 2, 3] = bad
    else:
        x[2:, 1], x[4, 2], lengths = bad, bad, LENGTHS
    hx = (h0, torch.randn_like(h0)) if cls is rnnkit.LSTM else h0
    out, st = layer(x, hx, lengths=lengths)
    out_ref, st_ref = ref(x, hx, lengths=lengths)
    assert on_kernels(out) or not out.requires_grad
    for a, b in zip((out, *states(st)), (out_ref, *states(st_ref))):
        assert torch.equal(a.isnan(), b.isnan())
        assert torch.equal(a.isinf(), b.isinf())
        fin = b.isfinite()
        close(a[fin], b[fin], 1e-5 if dtype == torch.float32 else 1e-12)
    if lengths is None:
        assert not out.isfinite().all()  # the value reached the output
    else:
        assert all(t.isfinite().all() for t in (out, *states(st)))
        assert (out[2:, 1] == 0).all() and (out[4, 2] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cls,nn_cls", [(rnnkit.LSTM, torch.nn.LSTM), (rnnkit.GRU, torch.nn.GRU)],
                         ids=["LSTM", "GRU"])  # fmt: skip
def test_nan_in_padding_as_torch_nn_with_packed_sequences(cls, nn_cls, dtype):
    """recurrent_dropout in eval changes nothing, so the variant layer (on the C-kernel ops)
    computes what torch.nn computes on the packed sequence, NaN padding included."""
    torch.manual_seed(0)
    layer = cls(D, H, num_layers=2, bidirectional=True, recurrent_dropout=0.2, dtype=dtype).eval()
    twin = nn_cls(D, H, num_layers=2, bidirectional=True, dtype=dtype)
    twin.load_state_dict(layer.state_dict())
    x = torch.randn(T, N, D, dtype=dtype)
    x[2:, 1], x[4, 2] = float("nan"), float("nan")
    out, st = layer(x, lengths=LENGTHS)
    assert on_kernels(out)
    packed, st_nn = twin(pack_padded_sequence(x, LENGTHS, enforce_sorted=False))
    out_nn, _ = pad_packed_sequence(packed, total_length=T)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for a, b in zip((out, *states(st)), (out_nn, *states(st_nn))):
        assert a.isfinite().all() and b.isfinite().all()
        close(a, b, tol)


def test_nan_in_padding_stays_out_of_the_gradients():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(D, H, recurrent_dropout=0.2, dtype=DT).eval()
    x = torch.randn(T, N, D, dtype=DT)
    x[2:, 1] = float("nan")
    out, (h, _) = layer(x, lengths=LENGTHS)
    assert out.isfinite().all()
    for g in torch.autograd.grad(out.sum() + h.sum(), list(layer.parameters())):
        assert g.isfinite().all()


# ------------------------------------------------------------------ plain eager against the op
@pytest.mark.parametrize("cls,kw", VARIANTS, ids=case_id)
def test_plain_eager_training_equals_the_registered_op(cls, kw, monkeypatch):
    """In plain eager training the layers run the kernels through ``torch.autograd.Function``s
    (``dispatch._training_op``) instead of the registered ops: outputs, final states and every
    gradient are the op's, to the bit, in float64 (training masks from the same seed)."""
    from rnnkit.backends import dispatch

    def run():
        torch.manual_seed(0)
        layer = cls(D, H, num_layers=2, bidirectional=True, dtype=DT, **kw).train()
        x = torch.randn(T, N, D, dtype=DT, requires_grad=True)
        out, st = layer(x, lengths=LENGTHS)
        loss_of(out, st).backward()
        return out, states(st), [x.grad, *(q.grad for q in layer.parameters())], graph_names(out)

    eager = run()
    monkeypatch.setattr(dispatch, "_plain_eager", lambda tensors: False)
    op = run()
    if set(kw) != {"weight_drop"}:  # DropConnect alone runs on torch.nn's kernels
        assert any("EagerLSTMSequence" in n or "EagerGRUSequence" in n for n in eager[3])
        assert any("rnnkit_lstm_sequence" in n or "rnnkit_gru_sequence" in n for n in op[3])
    torch.testing.assert_close(eager[0], op[0], rtol=0, atol=0)
    for a, b in zip(eager[1], op[1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(eager[2], op[2]):
        assert b is not None and b.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=0, atol=0)
