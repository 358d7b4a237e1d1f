"""Checksums, falling back past damaged checkpoints, pointers kept inside their run, and a full disk
during a write."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os

import pytest
import torch
from torch import nn

import rnnkit.train.checkpoint as ckpt_mod
import rnnkit.train.checkpoint.write as ckpt_write
from rnnkit.train.checkpoint import (
    CheckpointCorrupt,
    CheckpointError,
    CheckpointWriteError,
    best_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model_weights,
    load_newest_intact,
    save_checkpoint,
    verify_checkpoint,
)


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)


def trained():
    torch.manual_seed(0)
    model = Small()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.lin(torch.randn(2, 4)).square().mean().backward()
    opt.step()
    return model, opt


def save(run_dir, step, model, opt, **kw):
    ranks = [{"rng": torch.arange(5).byte(), "carried": torch.full((2, 3), float(step))}]
    return save_checkpoint(run_dir, step, model, opt, {"note": step}, ranks, **kw)


def flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # inside the last tensor's data: the header still parses
    path.write_bytes(bytes(data))


def test_the_manifest_records_the_sha256_of_every_file(tmp_path):
    model, opt = trained()
    path = save(tmp_path, 1, model, opt)
    files = json.loads((path / "manifest.json").read_text())["files"]
    assert sorted(files) == sorted(ckpt_mod.FILES)
    for name, entry in files.items():
        data = (path / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert verify_checkpoint(path) is True


@pytest.mark.parametrize(
    "name", ["model.safetensors", "optimizer.safetensors", "state.safetensors"]
)
def test_a_flipped_bit_is_refused_not_loaded(tmp_path, name):
    model, opt = trained()
    path = save(tmp_path, 1, model, opt)
    flip_last_byte(path / name)
    fresh = Small()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(CheckpointCorrupt, match=rf"{name} is damaged: its sha256 is"):
        load_checkpoint(path, fresh, torch.optim.Adam(fresh.parameters()))
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, before[k])  # nothing loaded
    if name == "model.safetensors":
        with pytest.raises(CheckpointCorrupt, match="model.safetensors is damaged"):
            load_model_weights(path, Small())


def test_an_edited_trainer_json_is_refused(tmp_path):
    model, opt = trained()
    path = save(tmp_path, 120, model, opt)
    meta = path / "trainer.json"
    meta.write_text(meta.read_text().replace('"step": 120', '"step": 130'))
    with pytest.raises(CheckpointCorrupt, match=r"trainer\.json is damaged"):
        load_checkpoint(path)


def test_a_checkpoint_without_manifest_loads_unverified(tmp_path, caplog):
    model, opt = trained()
    path = save(tmp_path, 1, model, opt)
    (path / "manifest.json").unlink()  # as written before manifests existed
    fresh = Small()
    with caplog.at_level(logging.DEBUG, logger="rnnkit.train.checkpoint"):
        loaded = load_checkpoint(path, fresh, torch.optim.Adam(fresh.parameters()))
    assert loaded.meta["note"] == 1
    assert torch.equal(fresh.lin.weight, model.lin.weight)
    assert "unverified" in caplog.text
    assert verify_checkpoint(path) is False
    (path / "manifest.json").write_text("{broken")
    with pytest.raises(CheckpointCorrupt, match=r"manifest\.json"):
        load_checkpoint(path)


def damage(path, how):
    target = path / "model.safetensors"
    data = target.read_bytes()
    if how == "truncated":
        target.write_bytes(data[: len(data) // 2])
    elif how == "header":
        target.write_bytes(b"\xff" * 8 + data[8:])
    elif how == "bit-flip":
        flip_last_byte(target)
    elif how.endswith("-unverified"):  # no manifest (an older checkpoint): the header tells
        (path / "manifest.json").unlink()
        damage(path, how.removesuffix("-unverified"))


@pytest.mark.parametrize(
    "how", ["truncated", "header", "bit-flip", "truncated-unverified", "header-unverified"]
)
def test_load_newest_intact_skips_a_damaged_latest_checkpoint(tmp_path, caplog, how):
    model, opt = trained()
    first = save(tmp_path, 1, model, opt)
    second = save(tmp_path, 2, model, opt)
    damage(second, how)
    with caplog.at_level(logging.WARNING, logger="rnnkit.train.checkpoint"):
        loaded = load_newest_intact(tmp_path, Small(), torch.optim.Adam(Small().parameters()))
    assert loaded.path == first
    assert "skipping damaged checkpoint" in caplog.text and "step-000002" in caplog.text
    assert "model.safetensors" in caplog.text  # and why
    # one checkpoint named on its own: no fallback, the error names the file
    with pytest.raises(CheckpointCorrupt, match="model.safetensors"):
        load_newest_intact(second, Small())


def test_no_intact_checkpoint_lists_each_problem(tmp_path):
    model, opt = trained()
    for step in (1, 2):
        damage(save(tmp_path, step, model, opt), "truncated")
    with pytest.raises(
        CheckpointCorrupt, match=r"no intact checkpoint.*step-000002: .*step-000001"
    ):
        load_newest_intact(tmp_path)
    with pytest.raises(CheckpointError, match="no latest checkpoint"):
        load_newest_intact(tmp_path / "empty")


def test_pointers_cannot_point_outside_their_run(tmp_path, caplog):
    model, opt = trained()
    other = save(tmp_path / "other", 9, model, opt, best={"loss": 0.1})
    mine = save(tmp_path / "run", 1, model, opt, best={"loss": 1.0})
    root = tmp_path / "run" / "checkpoints"
    escapes = ["../../other/checkpoints/step-000009", str(other), "step-000001/../../../other"]
    for target in escapes:
        (root / "latest.json").write_text(json.dumps({"path": target, "step": 9}))
        (root / "best.json").write_text(json.dumps({"path": target, "step": 9, "loss": 0.1}))
        with caplog.at_level(logging.WARNING, logger="rnnkit.train.checkpoint"):
            assert latest_checkpoint(tmp_path / "run") == mine  # the run's own newest
            assert best_checkpoint(tmp_path / "run") is None
        assert "expected a step-NNNNNN folder inside" in caplog.text
    # a step folder that is a symbolic link to another run's is not one of this run's
    os.symlink(other, root / "step-000010")
    assert list_checkpoints(tmp_path / "run") == [mine]
    (root / "latest.json").write_text(json.dumps({"path": "step-000010", "step": 10}))
    assert latest_checkpoint(tmp_path / "run") == mine


def test_a_full_disk_names_the_checkpoint_left_intact(tmp_path, monkeypatch):
    model, opt = trained()
    first = save(tmp_path, 1, model, opt)
    real_write = ckpt_write.write_bytes

    def full_disk(path, data):
        if path.name == "optimizer.safetensors":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(ckpt_write, "write_bytes", full_disk)
    with pytest.raises(CheckpointWriteError) as info:
        save(tmp_path, 2, model, opt)
    message = str(info.value)
    assert "could not write checkpoint" in message and "step-000002" in message
    assert "the disk is full" in message and f"the previous checkpoint {first} is intact" in message
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path) == first and list_checkpoints(tmp_path) == [first]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "latest.json",
        "step-000001",
    ]
    load_checkpoint(tmp_path, Small())


def test_a_failed_re_save_of_a_step_keeps_the_old_one(tmp_path, monkeypatch):
    model, opt = trained()
    first = save(tmp_path, 3, model, opt)
    monkeypatch.setattr(ckpt_write.os, "replace", _fail_second_replace(ckpt_write.os.replace))
    with pytest.raises(CheckpointWriteError):
        save(tmp_path, 3, model, opt)
    monkeypatch.undo()
    assert load_checkpoint(first).meta["note"] == 3


def _fail_second_replace(real):
    calls = []

    def replace(src, dst):
        calls.append(1)
        if len(calls) == 2:  # the old step moved aside; moving the new one in fails
            raise OSError(errno.EIO, "I/O error")
        return real(src, dst)

    return replace
