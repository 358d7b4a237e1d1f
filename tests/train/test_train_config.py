"""TrainerConfig validation and its JSON round trip (as stored in checkpoints)."""

from __future__ import annotations

import json

import pytest
import torch

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
        ({"lr": float("inf")}, ValueError, r"lr must be > 0 and finite, got inf"),
        ({"lr": float("nan")}, ValueError, r"lr must be > 0 and finite, got nan"),
        ({"lr": "0.1"}, TypeError, "lr must be a number, got str"),
        ({"clip_norm": float("nan")}, ValueError, r"clip_norm must be >= 0 .*got nan"),
        ({"clip_norm": float("inf")}, ValueError, r"clip_norm must be >= 0 .*got inf"),
        ({"min_lr": 0.1, "lr": 0.01}, ValueError, r"min_lr must be <= lr, got min_lr 0.1 > lr"),
        ({"min_lr": -1e-3}, ValueError, "min_lr must be >= 0"),
        ({"weight_decay": float("nan")}, ValueError, "weight_decay must be >= 0 and finite"),
        ({"momentum": 1.5}, ValueError, r"momentum must be >= 0 and < 1"),
        ({"betas": (0.9, 1.0)}, ValueError, r"betas\[1\] must be >= 0 and < 1"),
        ({"time_budget": float("inf")}, ValueError, "time_budget must be > 0 and finite"),
        ({"checkpoint_minutes": 0}, ValueError, "checkpoint_minutes must be > 0"),
        ({"on_nonfinite": "ignore"}, ValueError, r"on_nonfinite must be one of \('stop'"),
        ({"max_nonfinite": 0}, ValueError, "max_nonfinite must be >= 1"),
        ({"reload_decay_factor": 1.0}, ValueError, "reload_decay_factor must be > 1"),
        ({"divergence_factor": 0.5}, ValueError, "divergence_factor must be > 1"),
        ({"device": "gpu0"}, ValueError, r"device must be 'auto', 'cpu', 'cuda', 'cuda:N'"),
        ({"device": "meta"}, ValueError, r"device must be 'auto'.*got 'meta'"),
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


def test_valid_edge_values_are_accepted():
    cfg = TrainerConfig(lr=0.1, min_lr=0.1, clip_norm=0, momentum=0.0, checkpoint_minutes=None,
                        divergence_factor=None, device="cpu:0")  # fmt: skip
    assert cfg.min_lr == cfg.lr and cfg.clip_norm == 0


def test_a_device_that_does_not_exist_is_named():
    from rnnkit.train.distributed import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda:0' was asked for but CUDA is not available"):
            resolve_device("cuda:0")
    else:
        n = torch.cuda.device_count()
        with pytest.raises(ValueError, match=rf"'cuda:{n}' does not exist.*{n} CUDA device"):
            resolve_device(f"cuda:{n}")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("gpu0")
