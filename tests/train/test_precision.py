"""Mixed-precision training steps (``TrainerConfig.precision``, :mod:`rnnkit.train.precision`):
the choice of dtype, and the language model's softmax node under autocast against float32 (the
trainer's bfloat16 steps are tested in test_trainer.py)."""

from __future__ import annotations

import pytest
import torch

from rnnkit.tasks.lm import LMConfig, RNNLanguageModel
from rnnkit.tasks.lm.softmax import target_log_softmax
from rnnkit.train import TrainerConfig, precision

CPU = torch.device("cpu")


def test_the_dtype_of_each_precision(monkeypatch):
    assert precision.training_dtype("float32", CPU) is None
    assert precision.training_dtype("bfloat16", CPU) is torch.bfloat16
    monkeypatch.setattr(precision, "_cpu_has_bfloat16", lambda: True)
    assert precision.training_dtype("auto", CPU) is torch.bfloat16
    monkeypatch.setattr(precision, "_cpu_has_bfloat16", lambda: False)
    assert precision.training_dtype("auto", CPU) is None  # emulated bfloat16 is slower
    with pytest.raises(ValueError, match=r"precision must be one of .*got 'half'"):
        precision.training_dtype("half", CPU)


def test_the_config_refuses_an_unknown_precision():
    with pytest.raises(ValueError, match=r"precision must be one of \('float32', 'bfloat16', "
                       r"'auto'\), got 'fp16'"):  # fmt: skip
        TrainerConfig(precision="fp16")


def test_the_softmax_node_under_autocast_is_float32_to_bfloat16_rounding():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, 32, generator=g, requires_grad=True)
    w = (torch.randn(500, 32, generator=g) * 0.2).requires_grad_()
    b = torch.zeros(500, requires_grad=True)
    t = torch.randint(0, 500, (40, 3), generator=g)
    want = target_log_softmax(x, w, b, t)
    want_grads = torch.autograd.grad(want.mean(), (x, w, b))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = target_log_softmax(x, w, b, t)
    got_grads = torch.autograd.grad(got.mean(), (x, w, b))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0.02, atol=0.05)
    assert not torch.equal(got, want)  # the GEMM did run in bfloat16
    for a, e in zip(got_grads, want_grads, strict=True):
        assert a.dtype == e.dtype == torch.float32
        torch.testing.assert_close(a, e, rtol=0.05, atol=0.05 * e.abs().max().item())


def test_a_language_model_step_under_autocast_keeps_its_gradients_float32():
    model = RNNLanguageModel(LMConfig(level="word", embed_size=16, hidden_size=16,
                                      num_layers=2), 50)  # fmt: skip
    tokens, targets = torch.randint(0, 50, (6, 4)), torch.randint(0, 50, (6, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_p, _ = model(tokens, targets=targets)
    (-log_p.mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32, name
        assert torch.isfinite(p.grad).all(), name


def test_a_state_carried_out_of_an_autocast_step_feeds_the_next_one():
    model = RNNLanguageModel(LMConfig(level="word", embed_size=16, hidden_size=16,
                                      num_layers=2), 50)  # fmt: skip
    tokens, targets = torch.randint(0, 50, (6, 4)), torch.randint(0, 50, (6, 4))
    state = None
    for _ in range(2):  # truncated BPTT: the second window starts from the first one's state
        with torch.autocast("cpu", dtype=torch.bfloat16):
            log_p, state = model(tokens, state, targets=targets)
        assert torch.isfinite(log_p).all()
    with pytest.raises(TypeError, match="h_0 must have the input's dtype torch.float32"):
        model(tokens, tuple(s.bfloat16() for s in state), targets=targets)  # outside autocast
