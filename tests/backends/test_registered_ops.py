"""Issue #10, "registered ops": the C-kernel sequences are torch.library custom ops
(``torch.ops.rnnkit.lstm_sequence``, ``gru_sequence`` and their ``*_backward``) that
``torch.library.opcheck``, ``torch.compile`` (inductor) and ``torch.export`` accept, giving the
eager results. The torch.func, double-backward and NaN/Inf halves are in
``test_registered_ops_autograd.py``.

Compile times: inductor's first compile in a process costs a few seconds with its on-disk cache
(``/tmp/torchinductor_$USER``) warm, and about 40 s on a loaded 2-core machine with it cold (a
trivial ``torch.compile(lambda x: x.sin())`` costs the same there: inductor's own start-up).
"""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.backends.cpu_kernels import ops  # noqa: F401 - registers torch.ops.rnnkit

T, N, D, H = 5, 3, 4, 6
DT = torch.float64
LENGTHS = torch.tensor([5, 2, 4])
LSTM_OP = torch.ops.rnnkit.lstm_sequence.default
GRU_OP = torch.ops.rnnkit.gru_sequence.default
UTILS = ("test_schema", "test_autograd_registration", "test_faketensor",
         "test_aot_dispatch_static", "test_aot_dispatch_dynamic")  # fmt: skip


# ------------------------------------------------------------------------- op arguments
def _maker(seed: int, grad: bool):
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return (0.5 * torch.randn(*shape, dtype=DT, generator=gen)).requires_grad_(grad)

    def keep(*shape, p):
        return torch.bernoulli(torch.full(shape, p, dtype=DT), generator=gen)

    return rand, keep


def lstm_args(*, ln=False, peephole=False, mask=False, zoneout=None, lengths=False,
              projected=False, reverse=False, save=True, grad=True, seed=0):  # fmt: skip
    """The arguments of ``rnnkit::lstm_sequence``: ``zoneout`` None, "mask" (training) or "rate"
    (evaluation); ``projected``: ``x`` is the projections ``(T, N, 4H)`` and ``w_ih`` None."""
    r, keep = _maker(seed, grad)
    x, w_ih = (r(T, N, 4 * H), None) if projected else (r(T, N, D), r(4 * H, D))
    zh, zc = (keep(T, N, H, p=0.2), keep(T, N, H, p=0.1)) if zoneout == "mask" else (None, None)
    rh, rc = (0.2, 0.1) if zoneout == "rate" else (0.0, 0.0)
    return (x, w_ih, r(N, H), r(N, H), r(4 * H, H), r(4 * H),
            r(4 * H) if ln and not projected else None, r(4 * H) if ln else None,
            r(H) if ln else None, r(H) if ln else None, r(3, H) if peephole else None,
            keep(N, H, p=0.8) / 0.8 if mask else None, zh, rh, zc, rc,
            LENGTHS.clone() if lengths else None, reverse, save)  # fmt: skip


def gru_args(cell="gru", *, ln=False, mask=False, zoneout=None, lengths=False, projected=False,
             reverse=False, save=True, grad=True, seed=0):  # fmt: skip
    """The arguments of ``rnnkit::gru_sequence`` for ``cell`` "gru", "rnn" or "rnn_relu"."""
    r, keep = _maker(seed, grad)
    g = 3 * H if cell == "gru" else H
    x, w_ih = (r(T, N, g), None) if projected else (r(T, N, D), r(g, D))
    return (x, w_ih, r(N, H), r(g, H), None if projected else r(g), r(g),
            r(g) if ln and not projected else None, r(g) if ln else None,
            keep(N, H, p=0.8) / 0.8 if mask else None,
            keep(T, N, H, p=0.2) if zoneout == "mask" else None,
            0.2 if zoneout == "rate" else 0.0, LENGTHS.clone() if lengths else None, reverse,
            cell, save)  # fmt: skip


def _detached(args):
    return [a.detach() if isinstance(a, torch.Tensor) else a for a in args]


def lstm_backward_args(fwd):
    """The arguments of ``rnnkit::lstm_sequence_backward`` after ``lstm_sequence(*fwd)``."""
    fwd = _detached(fwd)
    outs = LSTM_OP(*fwd[:-1], True)
    gen = torch.Generator().manual_seed(1)
    d = [torch.randn(t.shape, dtype=DT, generator=gen) for t in outs[:3]]
    return (*d, *fwd[:18], outs[0], *outs[3:], [t is not None for t in fwd[:11]])


def gru_backward_args(fwd):
    fwd = _detached(fwd)
    outs = GRU_OP(*fwd[:-1], True)
    gen = torch.Generator().manual_seed(1)
    d = [torch.randn(t.shape, dtype=DT, generator=gen) for t in outs[:2]]
    return (*d, *fwd[:14], outs[0], *outs[2:], [t is not None for t in fwd[:8]])


# ------------------------------------------------------------------------------ opcheck
FORWARD_CASES = {
    "lstm-plain-lengths": (LSTM_OP, lambda: lstm_args(lengths=True), UTILS),
    "lstm-all-masks-lengths-reverse": (LSTM_OP, lambda: lstm_args(
        ln=True, peephole=True, mask=True, zoneout="mask", lengths=True, reverse=True), UTILS),
    "lstm-projected-rates": (LSTM_OP, lambda: lstm_args(projected=True, zoneout="rate"), UTILS),
    # save=False is the no-grad call: its inputs do not require grad (differentiating it is an
    # error, test_save_false_cannot_be_differentiated)
    "lstm-ln-projected-nosave": (LSTM_OP, lambda: lstm_args(
        ln=True, projected=True, lengths=True, save=False, grad=False), UTILS),
    "gru-masks-lengths": (GRU_OP, lambda: gru_args(
        mask=True, zoneout="mask", lengths=True), UTILS),
    "gru-ln-lengths-reverse": (GRU_OP, lambda: gru_args(
        ln=True, lengths=True, reverse=True), UTILS),
    "rnn_relu-projected-rate-reverse": (GRU_OP, lambda: gru_args(
        "rnn_relu", projected=True, zoneout="rate", reverse=True), UTILS),
    "rnn-ln-nosave": (GRU_OP, lambda: gru_args(
        "rnn", ln=True, mask=True, lengths=True, save=False, grad=False), UTILS),
}  # fmt: skip
BACKWARD_CASES = {
    "lstm-all-lengths": (torch.ops.rnnkit.lstm_sequence_backward.default, lambda: lstm_backward_args(
        lstm_args(ln=True, peephole=True, mask=True, zoneout="mask", lengths=True))),
    "lstm-projected-reverse": (torch.ops.rnnkit.lstm_sequence_backward.default,
                               lambda: lstm_backward_args(lstm_args(
                                   projected=True, zoneout="rate", reverse=True))),
    "gru-masks-lengths": (torch.ops.rnnkit.gru_sequence_backward.default, lambda: gru_backward_args(
        gru_args(mask=True, zoneout="mask", lengths=True))),
    "rnn_relu-ln-projected": (torch.ops.rnnkit.gru_sequence_backward.default,
                              lambda: gru_backward_args(gru_args(
                                  "rnn_relu", ln=True, projected=True, reverse=True))),
}  # fmt: skip


@pytest.mark.parametrize("case", FORWARD_CASES)
def test_opcheck_forward_ops(case):
    op, make, utils = FORWARD_CASES[case]
    results = torch.library.opcheck(op, make(), test_utils=utils)
    assert results == {u: "SUCCESS" for u in utils}


@pytest.mark.parametrize("case", BACKWARD_CASES)
def test_opcheck_backward_ops(case):
    """The backward ops have no autograd of their own (the double backward goes through the
    reference loop), so their inputs do not require grad."""
    op, make = BACKWARD_CASES[case]
    results = torch.library.opcheck(op, make(), test_utils=UTILS)
    assert results == {u: "SUCCESS" for u in UTILS}


@pytest.mark.parametrize("op,make", [(LSTM_OP, lstm_args), (GRU_OP, gru_args)], ids=["lstm", "gru"])
def test_save_false_cannot_be_differentiated(op, make):
    """A save=False call keeps nothing for backward: differentiating it once crashed the process
    (the GRU kernel read the empty buffers: SIGSEGV; LSTM: AttributeError); it is a clear error."""
    args = make(lengths=True, save=False)
    out = op(*args)[0]
    with pytest.raises(RuntimeError, match="save=False"):
        out.sum().backward()


def _nan_filled(self, *size, **kw):
    """Tensor.new_empty, but NaN-filled: memory a kernel leaves unwritten shows."""
    shape = size[0] if len(size) == 1 and not isinstance(size[0], int) else size
    return torch.Tensor.new_full(self, shape, float("nan"), **kw)


def test_saved_stats_are_fully_written(monkeypatch):
    monkeypatch.setattr(torch.Tensor, "new_empty", _nan_filled)
    stats = GRU_OP(*gru_args(ln=True, grad=False))[4]
    assert stats.shape == (T, N, 6)
    assert not stats.isnan().any(), stats.isnan().any(0).any(0).nonzero().flatten().tolist()


def test_unwritten_memory_never_reaches_outputs_or_gradients(monkeypatch):
    """With every new_empty buffer of the kernels NaN-filled, what the ops return that matters
    (outputs, final states, gradients) is the same as with ordinary memory: nothing reads the
    slots test_saved_stats_are_fully_written finds unwritten."""
    cases = [(LSTM_OP, lambda: lstm_args(ln=True, projected=True, peephole=True, lengths=True), 3),
             (GRU_OP, lambda: gru_args(ln=True, lengths=True, mask=True), 2),
             (GRU_OP, lambda: gru_args("rnn", ln=True, lengths=True, zoneout="mask"), 2)]  # fmt: skip

    def run(op, make, k):
        args = make()
        outs = op(*args)[:k]
        leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
        loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=DT).view_as(o)).sum() for o in outs)
        return [o.detach() for o in outs], torch.autograd.grad(loss, leaves)

    plain = [run(*c) for c in cases]
    monkeypatch.setattr(torch.Tensor, "new_empty", _nan_filled)
    for (outs, grads), case in zip(plain, cases):
        outs2, grads2 = run(*case)
        for a, b in zip((*outs, *grads), (*outs2, *grads2)):
            assert b.isfinite().all()
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_vmap_rules_of_the_ops_equal_a_loop():
    """The ops' registered vmap rules (forward and backward ops), called directly: vmap over
    one argument equals a loop over its batch entries (the backward op's list argument `need`
    used to crash the rule: AttributeError 'list' object has no attribute 'select'). Forward
    ops: the outputs and final states (the saved buffers may hold unwritten slots, above)."""
    cases = [
        (torch.ops.rnnkit.lstm_sequence, lstm_args(ln=True, peephole=True, mask=True,
                                                   zoneout="mask", lengths=True, grad=False), 2, 3),
        (torch.ops.rnnkit.gru_sequence, gru_args("rnn_relu", ln=True, zoneout="mask",
                                                 lengths=True, grad=False), 3, 2),
        (torch.ops.rnnkit.lstm_sequence_backward, lstm_backward_args(
            lstm_args(ln=True, peephole=True, lengths=True)), 0, None),
        (torch.ops.rnnkit.gru_sequence_backward, gru_backward_args(
            gru_args(mask=True, zoneout="mask", lengths=True)), 1, None),
    ]  # fmt: skip
    for op, args, at, keep in cases:
        stack = torch.randn(3, *args[at].shape, dtype=DT)

        def call(v, op=op, args=args, at=at, keep=keep):
            return [t for t in op(*args[:at], v, *args[at + 1 :])[:keep] if t.numel()]

        batched = torch.vmap(call)(stack)
        assert len(batched) >= 2
        for b in range(3):
            looped = call(stack[b])
            assert len(looped) == len(batched)
            for got, want in zip(batched, looped):
                torch.testing.assert_close(got[b], want, rtol=0, atol=0)


# ------------------------------------------------------------------------------ compile
def _inductor(graphs: list):
    """torch.compile's default backend ("inductor" is compile_fx), recording the ops of each
    graph dynamo hands it, so the test knows the rnnkit op was compiled and not run eagerly."""
    from torch._inductor.compile_fx import compile_fx

    def backend(gm, example_inputs):
        graphs.append({str(n.target) for n in gm.graph.nodes if n.op == "call_function"})
        return compile_fx(gm, example_inputs)

    return backend


@pytest.fixture
def fresh_dynamo():
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()  # each case its own cache entries (and no recompile limit reached)
    # compile in this process: a pool of compile workers costs more to start than these tiny
    # graphs cost to compile
    with inductor_config.patch(compile_threads=1):
        yield
    torch._dynamo.reset()


def _states(s):
    return s if isinstance(s, tuple) else (s,)


def _loss(out, states):
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    return (out * w).sum() + out.square().sum() + sum(s.sin().sum() for s in states)


# (layer, options, its op, the lengths to call it with): each call signature compiles graphs of
# its own (~5 s a case here), so only the LSTM runs both, and the RNN (the GRU's op, with "rnn",
# "rnn_relu") is left to opcheck's aot_dispatch utilities and the export tests
COMPILE_CASES = [
    (rnnkit.LSTM, {"layer_norm": True, "peephole": True, "zoneout": 0.1}, "rnnkit.lstm_sequence",
     (None, LENGTHS)),
    (rnnkit.GRU, {"layer_norm": True, "zoneout": 0.1, "recurrent_dropout": 0.2},
     "rnnkit.gru_sequence", (LENGTHS,)),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("cls,kw,op,calls", COMPILE_CASES, ids=["LSTM", "GRU"])
def test_compiled_layer_equals_eager(cls, kw, op, calls, fresh_dynamo):
    """torch.compile(layer) (inductor), with and without lengths: output, final states and every
    gradient equal eager at float32 tolerance, and the rnnkit op is in a compiled graph."""
    torch.manual_seed(0)
    layer = cls(D, H, **kw).eval()
    graphs: list = []
    compiled = torch.compile(layer, backend=_inductor(graphs))
    x = torch.randn(T, N, D)
    for lengths in calls:
        graphs.clear()
        results = []
        for fn in (compiled, layer):
            xi = x.clone().requires_grad_()
            out, st = fn(xi, lengths=lengths)
            grads = torch.autograd.grad(_loss(out, _states(st)), [xi, *layer.parameters()])
            results.append((out, *_states(st), *grads))
        assert any(op in g for g in graphs), graphs
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        if lengths is not None:
            assert (results[0][0][2:, 1] == 0).all()  # padded steps


# ------------------------------------------------------------------------------- export
EXPORT_CASES = [
    (rnnkit.LSTM, {"layer_norm": True, "peephole": True, "zoneout": (0.1, 0.2),
                   "recurrent_dropout": 0.2, "weight_drop": 0.3}, "rnnkit.lstm_sequence.default"),
    (rnnkit.LSTM, {"peephole": True}, "rnnkit.lstm_sequence.default"),
    (rnnkit.GRU, {"layer_norm": True, "zoneout": 0.1}, "rnnkit.gru_sequence.default"),
    (rnnkit.GRU, {"recurrent_dropout": 0.2, "weight_drop": 0.3}, "rnnkit.gru_sequence.default"),
    (rnnkit.RNN, {"layer_norm": True}, "rnnkit.gru_sequence.default"),
    (rnnkit.RNN, {"nonlinearity": "relu", "zoneout": 0.1}, "rnnkit.gru_sequence.default"),
]  # fmt: skip


def _exported(layer, args, kwargs=None):
    ep = torch.export.export(layer, args, kwargs)
    return ep, {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}


@pytest.mark.parametrize("cls,kw,op", EXPORT_CASES,
                         ids=lambda v: getattr(v, "__name__", None) or (
                             "-".join(v) if isinstance(v, dict) else None))  # fmt: skip
def test_exported_layer_equals_eager(cls, kw, op):
    """torch.export.export(layer, (x, hx)).module() on new inputs equals eager, float64; the
    graph holds the rnnkit op."""
    torch.manual_seed(0)
    layer = cls(D, H, num_layers=2, bidirectional=True, dtype=DT, **kw).eval()
    hx = torch.randn(4, N, H, dtype=DT)
    hx = (hx, torch.randn(4, N, H, dtype=DT)) if cls is rnnkit.LSTM else hx
    ep, targets = _exported(layer, (torch.randn(T, N, D, dtype=DT), hx))
    assert op in targets
    x2 = torch.randn(T, N, D, dtype=DT)
    hx2 = tuple(h * 0.5 for h in _states(hx))
    hx2 = hx2 if cls is rnnkit.LSTM else hx2[0]
    got, want = ep.module()(x2, hx2), layer(x2, hx2)
    torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(_states(got[1]), _states(want[1])):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_export_with_lengths_kwarg():
    torch.manual_seed(0)
    layer = rnnkit.GRU(D, H, layer_norm=True, dtype=DT).eval()
    x = torch.randn(T, N, D, dtype=DT)
    ep, _ = _exported(layer, (x,), {"lengths": LENGTHS})
    torch.testing.assert_close(ep.module()(x, lengths=LENGTHS)[0], layer(x, lengths=LENGTHS)[0])


def test_strict_export():
    torch.manual_seed(0)
    layer = rnnkit.GRU(D, H, layer_norm=True, dtype=DT).eval()
    x = torch.randn(T, N, D, dtype=DT)
    ep = torch.export.export(layer, (x,), strict=True)
    torch.testing.assert_close(ep.module()(x)[0], layer(x)[0])


@pytest.mark.xfail(
    strict=True,
    raises=RuntimeError,
    reason="backend='torch_ops' (CUDA, no compiler, LSTM projections) is autograd.Functions whose "
    "forward writes with out= ops, which export's tracing refuses ('functions with out=... "
    "arguments don't support automatic differentiation'); the C-kernel ops serve CPU export",
)
def test_export_torch_ops_backend():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(D, H, layer_norm=True, dtype=DT, backend="torch_ops").eval()
    x = torch.randn(T, N, D, dtype=DT)
    ep, _ = _exported(layer, (x,))
    torch.testing.assert_close(ep.module()(x)[0], layer(x)[0])


def test_the_kernel_check_is_a_constant_for_dynamo_without_importing_it():
    """dispatch marks its environment check as torch.compiler.assume_constant_result does (the
    same attribute), without importing torch._dynamo when rnnkit is imported."""
    import subprocess
    import sys

    from rnnkit.backends import dispatch

    marked = torch.compiler.assume_constant_result(lambda: "")
    assert vars(marked) == vars(dispatch._kernels_unavailable) == {"_dynamo_marked_constant": True}
    code = "import sys, rnnkit; print('torch._dynamo' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "False", run.stderr
