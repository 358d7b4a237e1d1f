"""Optimizer construction and the learning-rate curves of the schedules."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.train import (
    ConstantSchedule,
    CosineSchedule,
    PlateauSchedule,
    build_optimizer,
    build_schedule,
)


def params():
    return [torch.nn.Parameter(torch.zeros(3))]


def test_build_optimizer_sets_the_hyper_parameters():
    adam = build_optimizer(params(), "adam", lr=0.1, weight_decay=0.01, betas=(0.8, 0.9))
    assert type(adam) is torch.optim.Adam
    assert adam.defaults["betas"] == (0.8, 0.9) and adam.defaults["weight_decay"] == 0.01
    adamw = build_optimizer(params(), "adamw", lr=0.1, weight_decay=0.1)
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["weight_decay"] == 0.1
    sgd = build_optimizer(params(), "sgd", lr=1.0, momentum=0.9)
    assert type(sgd) is torch.optim.SGD and sgd.defaults["momentum"] == 0.9
    with pytest.raises(ValueError, match=r"one of \('adam', 'adamw', 'sgd'\), got 'rmsprop'"):
        build_optimizer(params(), "rmsprop")


def test_cosine_warmup_then_half_cosine_to_min_lr():
    s = CosineSchedule(1.0, total_steps=104, warmup_steps=4, min_lr=0.1)
    assert [s.lr(i) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]  # linear warm-up
    assert s.lr(4) == 1.0  # cosine starts at the base rate
    assert s.lr(54) == pytest.approx(0.55)  # half way: the mean of base and min
    assert s.lr(29) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2)
    assert s.lr(104) == pytest.approx(0.1) and s.lr(500) == pytest.approx(0.1)
    curve = [s.lr(i) for i in range(4, 105)]
    assert all(a >= b for a, b in zip(curve, curve[1:]))


def test_cosine_without_a_known_length_holds_the_base_rate_until_told():
    s = CosineSchedule(2.0, total_steps=None, warmup_steps=2)
    assert [s.lr(i) for i in (0, 1, 50)] == [1.0, 2.0, 2.0]
    s.set_total_steps(12)
    assert s.lr(7) == pytest.approx(1.0)
    t = CosineSchedule(2.0, None, warmup_steps=2)
    t.load_state_dict(s.state_dict())
    assert t.lr(7) == s.lr(7)
    with pytest.raises(ValueError, match="total_steps must be >= 1"):
        s.set_total_steps(0)


def test_plateau_divides_after_each_evaluation_without_improvement():
    s = PlateauSchedule(1.0, factor=4.0, min_lr=0.01)
    lrs = []
    for loss in [3.0, 2.0, 2.5, 1.9, 1.95, 2.0, 1.0, 5.0]:
        s.on_eval(loss)
        lrs.append(s.lr(0))
    assert lrs == [1.0, 1.0, 0.25, 0.25, 0.0625, 0.015625, 0.015625, 0.01]  # floor at min_lr
    t = PlateauSchedule(1.0, factor=4.0)
    t.load_state_dict(s.state_dict())
    assert (t.current, t.best) == (0.01, 1.0)
    fresh = PlateauSchedule(1.0).state_dict()
    assert fresh["best"] is None  # no Infinity in JSON
    with pytest.raises(ValueError, match="factor must be > 1"):
        PlateauSchedule(1.0, factor=1.0)


def test_build_schedule_by_name():
    assert isinstance(build_schedule("constant", 0.3), ConstantSchedule)
    assert build_schedule("constant", 0.3).lr(10**6) == 0.3
    assert isinstance(build_schedule("plateau", 0.3, decay_factor=3), PlateauSchedule)
    cosine = build_schedule("cosine", 0.3, total_steps=10, warmup_steps=2)
    assert isinstance(cosine, CosineSchedule) and cosine.lr(0) == pytest.approx(0.15)
    with pytest.raises(ValueError, match="schedule must be one of"):
        build_schedule("linear", 0.3)
