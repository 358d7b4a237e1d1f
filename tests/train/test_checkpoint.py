"""Checkpoint files: round trip, atomicity under a crash, pruning, and clear errors on mismatch."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from torch import nn

import rnnkit.train.checkpoint.write as ckpt_write
from rnnkit.train import (
    CheckpointError,
    best_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from rnnkit.train.tree import decode_tree, encode_tree


class TiedLM(nn.Module):
    """Embedding and softmax share one weight (Press & Wolf 2017), so the state_dict aliases it."""

    def __init__(self, vocab: int = 6, hidden: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = nn.GRU(hidden, hidden)
        self.out = nn.Linear(hidden, vocab)
        self.out.weight = self.embed.weight


def trained(seed: int = 0, hidden: int = 4):
    torch.manual_seed(seed)
    model = TiedLM(hidden=hidden)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x = torch.randint(6, (3, 2))
    y, _ = model.rnn(model.embed(x))
    model.out(y).square().mean().backward()
    opt.step()
    return model, opt


def ranks(value: float = 1.0):
    return [{"carried": (torch.full((1, 2, 4), value), None), "rng": torch.arange(5).byte()}]


def save(run_dir, step, model, opt, **kw):
    return save_checkpoint(run_dir, step, model, opt, {"note": step}, ranks(step), **kw)


def test_round_trip_restores_model_optimizer_and_rank_states(tmp_path):
    model, opt = trained(0)
    path = save(tmp_path, 7, model, opt)
    assert path == tmp_path / "checkpoints" / "step-000007"
    assert json.loads((tmp_path / "checkpoints" / "latest.json").read_text())["step"] == 7

    fresh, fresh_opt = trained(1)
    loaded = load_checkpoint(tmp_path, fresh, fresh_opt)
    assert loaded.path == path and loaded.meta["note"] == 7 and loaded.meta["step"] == 7
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    assert fresh.out.weight is fresh.embed.weight  # still tied after loading
    a, b = opt.state_dict(), fresh_opt.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i, state in a["state"].items():
        for k, v in state.items():
            assert torch.equal(b["state"][i][k], v), (i, k)
    carried, none = loaded.ranks[0]["carried"]
    assert none is None and torch.equal(carried, torch.full((1, 2, 4), 7.0))
    assert loaded.ranks[0]["rng"].dtype == torch.uint8


def test_tied_weights_are_stored_once_and_trainer_json_is_plain_json(tmp_path):
    model, opt = trained()
    path = save(tmp_path, 1, model, opt)
    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert "embed.weight" in keys and "out.weight" not in keys
    meta = json.loads((path / "trainer.json").read_text())
    assert meta["format"] == "rnnkit-checkpoint" and meta["optimizer_class"] == "Adam"


def test_mismatched_model_is_a_clear_error_and_loads_nothing(tmp_path):
    model, opt = trained()
    save(tmp_path, 1, model, opt)
    other = TiedLM(hidden=5)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*'embed\.weight'.*\(6, 4\)"):
        load_checkpoint(tmp_path, other)
    for k, v in other.state_dict().items():
        assert torch.equal(v, before[k])  # no partial load

    bigger = TiedLM()
    bigger.extra = nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match=r"missing key 'extra\.weight'"):
        load_checkpoint(tmp_path, bigger)
    smaller = TiedLM()
    del smaller.rnn
    with pytest.raises(CheckpointError, match=r"unexpected key 'rnn\."):
        load_checkpoint(tmp_path, smaller)


def test_mismatched_optimizer_is_a_clear_error(tmp_path):
    model, opt = trained()
    save(tmp_path, 1, model, opt)
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors.*Adam.*SGD"):
        load_checkpoint(tmp_path, TiedLM(), torch.optim.SGD(TiedLM().parameters(), lr=1))
    fewer = TiedLM()
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors.*parameters"):
        load_checkpoint(tmp_path, None, torch.optim.Adam(fewer.rnn.parameters()))


def test_missing_or_corrupt_files_name_the_file(tmp_path):
    model, opt = trained()
    path = save(tmp_path, 1, model, opt)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        load_checkpoint(path, TiedLM())
    (path / "trainer.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"trainer\.json"):
        load_checkpoint(path)
    (path / "optimizer.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors is missing"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no latest checkpoint"):
        load_checkpoint(tmp_path / "elsewhere")


def test_crash_in_the_middle_of_a_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = trained()
    first = save(tmp_path, 1, model, opt)
    real_save, calls = ckpt_write.safetensors_save, []

    def save_then_crash(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # model.safetensors is written, optimizer.safetensors is not
            raise OSError("disk full")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(ckpt_write, "safetensors_save", save_then_crash)
    torch.nn.init.ones_(model.rnn.weight_hh_l0)
    with pytest.raises(OSError, match="disk full"):
        save(tmp_path, 2, model, opt)
    monkeypatch.undo()

    root = tmp_path / "checkpoints"
    assert json.loads((root / "latest.json").read_text())["path"] == "step-000001"
    assert latest_checkpoint(tmp_path) == first
    assert sorted(p.name for p in root.iterdir()) == ["latest.json", "step-000001"]
    restored = TiedLM()
    load_checkpoint(tmp_path, restored, torch.optim.Adam(restored.parameters()))
    assert not torch.equal(restored.rnn.weight_hh_l0, torch.ones_like(model.rnn.weight_hh_l0))


def test_a_killed_write_is_ignored_and_cleaned_up(tmp_path):
    model, opt = trained()
    first = save(tmp_path, 1, model, opt)
    stale = tmp_path / "checkpoints" / ".tmp-step-000002-abc"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")
    half = tmp_path / "checkpoints" / "step-000003"  # renamed by hand, incomplete
    half.mkdir()
    assert latest_checkpoint(tmp_path) == first
    assert list_checkpoints(tmp_path) == [first]
    save(tmp_path, 4, model, opt)
    assert not stale.exists()


def test_broken_latest_pointer_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    model, opt = trained()
    save(tmp_path, 1, model, opt)
    second = save(tmp_path, 2, model, opt)
    (tmp_path / "checkpoints" / "latest.json").write_text('{"path": "step-000099"}')
    assert latest_checkpoint(tmp_path) == second


def test_keep_last_k_and_the_best(tmp_path):
    model, opt = trained()
    save(tmp_path, 1, model, opt, best={"loss": 0.5}, keep_last=2)
    for step in range(2, 6):
        save(tmp_path, step, model, opt, keep_last=2)
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["step-000001", "step-000004", "step-000005"]
    assert best_checkpoint(tmp_path).name == "step-000001"
    assert json.loads((tmp_path / "checkpoints" / "best.json").read_text())["loss"] == 0.5


def test_saving_the_same_step_again_replaces_it(tmp_path):
    model, opt = trained()
    save(tmp_path, 3, model, opt)
    save_checkpoint(tmp_path, 3, model, opt, {"note": "again"}, ranks())
    assert load_checkpoint(tmp_path).meta["note"] == "again"
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir()] == ["step-000003"]


def test_tree_round_trip_keeps_types_keys_and_tensors():
    t = torch.arange(6.0).view(2, 3)
    obj = {
        "a": (t, [1, 2.5, None, "s", True]),
        0: {"nested": (t[0], ())},
        "a.0": torch.ones(2),  # collides with the name of the first tensor
    }
    skeleton, tensors = encode_tree(obj, "p")
    json.dumps(skeleton)
    assert len(tensors) == 3
    back = decode_tree(json.loads(json.dumps(skeleton)), tensors)
    assert set(back) == {"a", 0, "a.0"}
    assert isinstance(back["a"], tuple) and isinstance(back["a"][1], list)
    assert torch.equal(back["a"][0], t) and back["a"][1] == [1, 2.5, None, "s", True]
    assert torch.equal(back[0]["nested"][0], t[0]) and back[0]["nested"][1] == ()
    assert torch.equal(back["a.0"], torch.ones(2))
    with pytest.raises(TypeError, match="cannot store object"):
        encode_tree({"x": object()}, "p")
    with pytest.raises(ValueError, match="missing"):
        decode_tree({"tensor": "nope"}, {})


def test_shared_tensors_in_a_state_are_stored_as_separate_tensors(tmp_path):
    model, opt = trained()
    zeros = torch.zeros(1, 1, 4)
    buffer = torch.arange(8.0)
    carried = (zeros, zeros, buffer[:4], buffer[4:])  # (h, c) = the same tensor; views of one
    save_checkpoint(tmp_path, 1, model, opt, {}, [{"carried": carried}])
    h, c, lo, hi = load_checkpoint(tmp_path).ranks[0]["carried"]
    assert torch.equal(h, zeros) and torch.equal(c, zeros)
    assert torch.equal(lo, buffer[:4]) and torch.equal(hi, buffer[4:])
