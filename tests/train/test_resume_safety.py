"""Resuming safely: past a damaged latest checkpoint (exactly), never with another vocabulary or
into another run's directory."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.train import (
    CheckpointError,
    Trainer,
    TrainerConfig,
    latest_checkpoint,
    load_checkpoint,
    read_metrics,
    save_checkpoint,
)


def flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


class VocabTask:
    """A tiny LM whose state holds a vocabulary, like the text tasks' task.json."""

    def __init__(self, tokens="abcde") -> None:
        self.tokens = list(tokens)

    def build_model(self):
        torch.manual_seed(0)
        return nn.ModuleDict({"embed": nn.Embedding(5, 4), "out": nn.Linear(4, 5)})

    def batches(self, split, epoch):
        g = torch.Generator().manual_seed(1 if split == "train" else 2)
        data = torch.randint(5, (6, 3, 2), generator=g)
        return [(d[:-1], d[1:]) for d in data] if split == "train" else []

    def initial_state(self, batch, device):
        return None

    def loss(self, model, batch, state):
        x, y = batch
        logits = model["out"](model["embed"](x))
        return F.cross_entropy(logits.reshape(-1, 5), y.reshape(-1)), None, y.numel()

    def metrics(self, mean_loss):
        return {}

    def state_dict(self):
        return {"config": {"hidden": 4}, "vocab": {"tokens": self.tokens}}


def config(out=None, **kw):
    base = dict(epochs=3, lr=0.05, log_every=1, progress=False, device="cpu", checkpoint_every=2)
    return TrainerConfig(**{**base, **kw, **({"out_dir": str(out)} if out else {})})


def test_resume_falls_back_to_the_newest_intact_checkpoint_and_continues_exactly(tmp_path, caplog):
    Trainer(VocabTask(), config(tmp_path / "straight", max_steps=6)).fit()
    run = tmp_path / "run"
    Trainer(VocabTask(), config(run, max_steps=6)).fit()
    flip_last_byte(run / "checkpoints" / "step-000006" / "model.safetensors")
    with caplog.at_level(logging.WARNING, logger="rnnkit.train.checkpoint"):
        resumed = Trainer(VocabTask(), config(max_steps=6), resume=run)
    assert resumed.step == 4 and resumed.resumed_from.name == "step-000004"
    assert "skipping damaged checkpoint" in caplog.text and "step-000006" in caplog.text
    resumed.fit()

    def losses(r):
        return [(x["step"], x["loss"]) for x in read_metrics(r / "metrics.jsonl")]

    assert losses(run) == losses(tmp_path / "straight")  # steps 5-6 redone, bit for bit
    load_checkpoint(run / "checkpoints" / "step-000006")  # re-saved, intact again


def test_resume_refuses_a_reordered_vocabulary(tmp_path):
    Trainer(VocabTask(), config(tmp_path, max_steps=2)).fit()
    with pytest.raises(CheckpointError, match=r"task's 'vocab' differ.*reordered"):
        Trainer(VocabTask(tokens="bacde"), config(max_steps=4), resume=tmp_path)
    assert not (tmp_path / "run.lock").exists()  # a failed set-up releases the lock
    meta = json.loads((latest_checkpoint(tmp_path) / "trainer.json").read_text())
    assert sorted(meta["task_digest"]) == ["config", "vocab"]
    Trainer(VocabTask(), config(max_steps=4), resume=tmp_path).close()  # the same one is fine


def test_resume_checks_old_checkpoints_by_their_stored_task_state(tmp_path):
    Trainer(VocabTask(), config(tmp_path, max_steps=2)).fit()
    path = latest_checkpoint(tmp_path)
    meta = json.loads((path / "trainer.json").read_text())
    del meta["task_digest"]  # as written before the digest existed
    (path / "trainer.json").write_text(json.dumps(meta))
    (path / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="'vocab'"):
        Trainer(VocabTask(tokens="edcba"), config(max_steps=4), resume=tmp_path)


def test_a_checkpoint_without_the_trainer_position_is_named(tmp_path):
    model = VocabTask().build_model()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    save_checkpoint(tmp_path, 3, model, opt, {"epoch": 0}, [{}])
    with pytest.raises(CheckpointError, match=r"has no \['batch_index', 'tokens'\]"):
        Trainer(VocabTask(), config(), resume=tmp_path)


def test_resuming_into_another_run_with_checkpoints_is_refused(tmp_path):
    Trainer(VocabTask(), config(tmp_path / "a", max_steps=2)).fit()
    Trainer(VocabTask(), config(tmp_path / "b", max_steps=2)).fit()
    with pytest.raises(ValueError, match="holds checkpoints of its own"):
        Trainer(VocabTask(), config(tmp_path / "b", max_steps=4), resume=tmp_path / "a")
    branch = Trainer(VocabTask(), config(tmp_path / "c", max_steps=4), resume=tmp_path / "a")
    assert branch.run_dir == tmp_path / "c" and branch.step == 2
    branch.close()
    shutil.rmtree(tmp_path / "c", ignore_errors=True)
