"""TrainerConfig validation and its JSON round trip (as stored in checkpoints)."""

from __future__ import annotations

import json

import pytest

from rnnkit.train import TrainerConfig


def test_round_trip_through_json():
    cfg = TrainerConfig(epochs=3, betas=(0.8, 0.95), clip_norm=0.25, schedule="cosine")
    back = TrainerConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.betas == (0.8, 0.95)


@pytest.mark.parametrize(
    "kw, error, match",
    [
        ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of"),
        ({"schedule": "step"}, ValueError, "schedule must be one of"),
        ({"epochs": -1}, ValueError, "epochs must be >= 0, got -1"),
        ({"max_steps": 0}, ValueError, "max_steps must be >= 1 or None, got 0"),
        ({"log_every": 2.5}, TypeError, "log_every must be an int, got float"),
        ({"time_budget": 0}, ValueError, "time_budget must be > 0"),
        ({"lr": 0}, ValueError, "lr must be > 0"),
        ({"clip_norm": -1.0}, ValueError, "clip_norm must be >= 0"),
        ({"betas": (0.9,)}, ValueError, "betas must be two floats"),
        ({"schedule": "plateau", "decay_factor": 1.0}, ValueError, "decay_factor must be > 1"),
    ],
)
def test_invalid_values_are_named(kw, error, match):
    with pytest.raises(error, match=match):
        TrainerConfig(**kw)


def test_unknown_fields_are_named():
    with pytest.raises(ValueError, match=r"unknown TrainerConfig fields \['epoch'\]"):
        TrainerConfig.from_dict({"epoch": 3})


def test_changed_fields_compares_with_a_saved_config():
    saved = json.loads(json.dumps(TrainerConfig(lr=0.1, epochs=2).to_dict()))
    cfg = TrainerConfig(lr=0.2, epochs=5, betas=(0.9, 0.999))
    assert cfg.changed_fields(saved) == ["epochs", "lr"]
    assert cfg.changed_fields(saved, ignore={"epochs"}) == ["lr"]
