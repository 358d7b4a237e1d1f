"""The full softmax's ``log p(target)`` node (:func:`rnnkit.tasks.lm.softmax.target_log_softmax`)
against ``-F.cross_entropy(F.linear(...))``: values and every gradient, NaN and Inf, the errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnkit.tasks.lm.softmax import TargetLogSoftmax, target_log_softmax


def reference(x, w, b, t):
    logits = F.linear(x, w, b)
    return -F.cross_entropy(logits.flatten(0, -2), t.reshape(-1), reduction="none").view(t.shape)


def inputs(shape=(5, 3), out=6, vocab=11, dtype=torch.float64, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, out, generator=g, dtype=dtype, requires_grad=True)
    w = torch.randn(vocab, out, generator=g, dtype=dtype).mul_(0.7).requires_grad_()
    b = torch.randn(vocab, generator=g, dtype=dtype, requires_grad=True) if bias else None
    t = torch.randint(0, vocab, shape, generator=g)
    return x, w, b, t


def grads(fn, x, w, b, t, upstream):
    out = fn(x, w, b, t)
    wrt = [v for v in (x, w, b) if v is not None]
    return out, torch.autograd.grad(out, wrt, upstream)


def assert_matches_reference(x, w, b, t, upstream, rtol=1e-10, atol=1e-12, out_tol=1e-12):
    """The values (to ``out_tol``) and every gradient of the node equal the reference's."""
    out, got = grads(target_log_softmax, x, w, b, t, upstream)
    ref_out, want = grads(reference, x, w, b, t, upstream)
    torch.testing.assert_close(out, ref_out, rtol=out_tol, atol=out_tol)
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e, rtol=rtol, atol=atol)


@pytest.mark.parametrize("bias", [True, False])
def test_values_and_gradients_equal_cross_entropy_float64(bias):
    x, w, b, t = inputs(bias=bias)
    upstream = torch.randn(t.shape, dtype=torch.float64)  # per-token weights, not a plain mean
    assert_matches_reference(x, w, b, t, upstream)


def test_gradcheck_against_numeric_gradients():
    x, w, b, t = inputs(shape=(4,), out=3, vocab=5)
    assert torch.autograd.gradcheck(
        lambda x, w, b: TargetLogSoftmax.apply(x, w, b, t), (x, w, b), eps=1e-6, atol=1e-8
    )


def test_repeated_targets_accumulate_in_the_weight_gradient():
    x, w, b, _ = inputs(shape=(6,), vocab=4)
    t = torch.tensor([2, 2, 2, 0, 2, 0])  # index_add must sum the repeated rows
    upstream = torch.linspace(-1.0, 2.0, 6, dtype=torch.float64)
    assert_matches_reference(x, w, b, t, upstream)


def test_float32_large_vocabulary_matches_within_float32_rounding():
    x, w, b, t = inputs(shape=(70, 2), out=48, vocab=3000, dtype=torch.float32)
    upstream = torch.full(t.shape, -1.0 / t.numel())  # the training loss: a mean
    assert_matches_reference(x, w, b, t, upstream, rtol=1e-3, atol=1e-6, out_tol=1e-4)


def test_a_weight_shared_with_an_embedding_gets_both_gradients():
    x, w, b, t = inputs()
    tokens = torch.randint(0, w.shape[0], (5,))
    for fn in (target_log_softmax, reference):
        w.grad = None
        loss = fn(F.embedding(tokens, w)[:, None].expand(5, 3, -1) + x, w, b, t).sum()
        loss.backward()
        if fn is target_log_softmax:
            got = w.grad.clone()
    torch.testing.assert_close(got, w.grad, rtol=1e-10, atol=1e-12)


def test_only_some_inputs_need_gradients():
    x, w, b, t = inputs()
    w.requires_grad_(False)
    upstream = torch.randn(t.shape, dtype=torch.float64)
    got = torch.autograd.grad(target_log_softmax(x, w, b, t), (x, b), upstream)
    want = torch.autograd.grad(reference(x, w, b, t), (x, b), upstream)
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("where", ["input", "weight", "inf_input"])
def test_nan_and_inf_propagate_as_in_cross_entropy(dtype, where):
    x, w, b, t = inputs(dtype=dtype)
    with torch.no_grad():
        if where == "input":
            x[1, 2, 0] = float("nan")
        elif where == "weight":
            w[3, 1] = float("nan")
        else:
            x[0, 1, 2] = float("inf")
    upstream = torch.ones(t.shape, dtype=dtype)
    out, got = grads(target_log_softmax, x, w, b, t, upstream)
    ref_out, want = grads(reference, x, w, b, t, upstream)
    assert not torch.isfinite(ref_out).all()  # the case poisons something
    torch.testing.assert_close(out, ref_out, equal_nan=True, rtol=1e-4, atol=1e-5)
    for a, e in zip(got, want, strict=True):
        assert torch.equal(torch.isnan(a), torch.isnan(e))


def test_a_second_backward_through_a_retained_graph_gives_the_same_gradients():
    x, w, b, t = inputs()
    out = target_log_softmax(x, w, b, t).sum()
    first = torch.autograd.grad(out, (x, w, b), retain_graph=True)
    second = torch.autograd.grad(out, (x, w, b))
    for a, e in zip(first, second, strict=True):
        assert torch.equal(a, e)


def test_second_order_gradients_equal_the_reference():
    x, w, b, t = inputs()
    upstream = torch.randn(t.shape, dtype=torch.float64)
    penalties = []
    for fn in (target_log_softmax, reference):
        dx, dw = torch.autograd.grad(fn(x, w, b, t), (x, w), upstream, create_graph=True)
        penalty = dx.square().sum() + dw.square().sum()  # a gradient penalty
        penalties.append(torch.autograd.grad(penalty, (x, w, b)))
    for a, e in zip(*penalties, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


def test_targets_of_the_wrong_shape_are_refused():
    x, w, b, t = inputs()
    with pytest.raises(ValueError, match=r"need targets of shape \(5, 3\), got \(15,\)"):
        target_log_softmax(x, w, b, t.reshape(-1))


def test_torch_func_grad_traces_the_plain_expression():
    x, w, b, t = inputs()

    def loss(w, fn):
        return fn(x.detach(), w, b.detach(), t).sum()

    got = torch.func.grad(lambda w: loss(w, target_log_softmax))(w.detach())
    want = torch.func.grad(lambda w: loss(w, reference))(w.detach())
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_no_gradient_mode_gives_the_values():
    x, w, b, t = inputs()
    with torch.no_grad():
        out = target_log_softmax(x, w, b, t)
    assert not out.requires_grad
    torch.testing.assert_close(out, reference(x, w, b, t).detach(), rtol=1e-12, atol=1e-12)
