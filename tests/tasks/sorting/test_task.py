"""The sorting task: encodings, bucketed batches, training, scoring, probe sets, files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rnnkit.tasks.sorting import IGNORE, PRESETS, SortConfig, SortingTask
from rnnkit.train import Trainer, TrainerConfig


def tiny(**kw) -> SortingTask:
    return SortingTask(SortConfig(**{**PRESETS["tiny"][0], **kw}))


def test_token_and_char_encodings():
    t = tiny()
    enc = t.encode([np.array([5, 3, 9, 3])])
    assert enc.inputs[0].tolist() == [5, 3, 9, 3] and enc.targets[0].tolist() == [3, 3, 5, 9]
    c = tiny(encoding="chars", vocab_size=999, char_pad=12)
    enc = c.encode([np.array([548, 30, 7])])
    assert "".join("0123456789 "[i] for i in enc.inputs[0]) == "548 30 7    "
    assert "".join("0123456789 "[i] for i in enc.targets[0]) == "7 30 548    "


def test_batches_are_bucketed_deterministic_and_cover_the_split():
    task = tiny(num_train=300, min_len=2, max_len=9, batch_size=16, num_buckets=8)
    b0, again, b1 = task.batches("train", 0), task.batches("train", 0), task.batches("train", 1)
    assert len(b0) >= 300 // 16
    seen = 0
    for i in range(len(b0)):
        x, y, lengths = b0[i]
        assert x.shape == y.shape and x.shape[1] == len(lengths) <= 16
        assert int(lengths.max() - lengths.min()) <= 2  # one bucket per batch
        assert x.shape[0] == int(lengths.max())
        for j, n in enumerate(lengths.tolist()):
            assert (y[n:, j] == IGNORE).all() and (x[n:, j] == task.cfg.num_classes).all()
            assert y[:n, j].tolist() == sorted(x[:n, j].tolist())
        seen += len(lengths)
        torch.testing.assert_close(b0[i][0], again[i][0])
    assert seen == 300
    # training data is drawn afresh each epoch; valid/test stay fixed
    assert not torch.equal(b0[0][0], b1[0][0]) or len(b0) != len(b1)
    torch.testing.assert_close(task.batches("valid", 0)[0][0], task.batches("valid", 5)[0][0])


def test_trains_to_sort_through_the_trainer():
    task = SortingTask(
        SortConfig(
            vocab_size=10,
            min_len=3,
            max_len=5,
            gen_min_len=6,
            gen_max_len=7,
            num_train=4000,
            num_valid=200,
            num_test=200,
            num_probe=100,
            embed_size=16,
            hidden_size=48,
            num_layers=1,
            batch_size=64,
        )  # fmt: skip
    )
    cfg = TrainerConfig(epochs=3, optimizer="adam", lr=1e-2, clip_norm=1.0, progress=False,
                        device="cpu", log_every=1000)  # fmt: skip
    trainer = Trainer(task, cfg)
    result = trainer.fit()
    assert result["valid"]["token_accuracy"] > 0.9, result["valid"]
    test = task.evaluate(trainer.model, "test")
    assert test["exact_match"] > 0.6, test
    assert 0 <= test["gen_exact_match"] <= 1 and 0 < test["gen_token_accuracy"] <= 1
    lines = task.predict(trainer.model, ["3", "1", "2"])  # single numbers: one sequence
    got = " ".join(map(str, task.sort(trainer.model, [[3, 1, 2]])[0]))
    assert len(lines) == 1 and lines[0].startswith(f"3 1 2 -> {got}  ")
    assert lines[0].endswith("ok") == (got == "1 2 3")


def test_score_counts_exact_matches_and_tokens():
    """A model that copies its input: right exactly on the sequences that are already sorted."""
    task = tiny(vocab_size=5, min_len=1, max_len=3, num_valid=100)

    class Copy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, lengths=None):
            return torch.nn.functional.one_hot(x.clamp(max=4), 5).double() * 10

    data = task.dataset("valid")
    expected_exact = np.mean([np.array_equal(a, b) for a, b in zip(data.inputs, data.targets)])
    hits = sum(int((a == b).sum()) for a, b in zip(data.inputs, data.targets))
    tokens = sum(len(a) for a in data.inputs)
    res = task.score(Copy(), "valid")
    assert res["exact_match"] == pytest.approx(expected_exact)
    assert res["token_accuracy"] == pytest.approx(hits / tokens) and res["tokens"] == tokens


def test_char_preset_reports_mxnet_failure_cases():
    small = dict(num_train=64, num_valid=16, num_test=16, num_probe=16, hidden_size=8)
    task = SortingTask(SortConfig(**{**PRESETS["mxnet"][0], **small}))
    model = task.build_model()
    out = task.evaluate(model, "test")
    assert {"one_digit_exact_match", "six_numbers_exact_match"} <= set(out)
    one = task.dataset("one_digit")
    assert all(len(x) == 19 for x in one.inputs)  # five one-digit numbers, padded like MXNet
    six = task.dataset("six_numbers")
    assert all(len("".join("0123456789 "[i] for i in x).split()) == 6 for x in six.inputs)


def test_user_file_split_and_errors(tmp_path):
    path = tmp_path / "seqs.txt"
    rng = np.random.default_rng(0)
    path.write_text("\n".join(" ".join(map(str, rng.integers(0, 50, 4))) for _ in range(20)))
    task = tiny(data=str(path), vocab_size=50, valid_fraction=0.1, test_fraction=0.2)
    assert [len(task.dataset(s)) for s in ("train", "valid", "test")] == [14, 2, 4]
    assert task.probe_sets() == []
    path.write_text("1 2\n3 60\n")
    with pytest.raises(ValueError, match=r"seqs.txt:2: number 60 is out of range"):
        tiny(data=str(path), vocab_size=50)


def test_state_round_trip_and_config_errors():
    task = tiny(vocab_size=30)
    again = SortingTask.from_state(task.state_dict(), num_test=8)
    assert again.cfg == dataclasses.replace(task.cfg, num_test=8)
    with pytest.raises(ValueError, match="encoding must be 'tokens' or 'chars'"):
        SortConfig(encoding="bytes")
    with pytest.raises(ValueError, match="min_len <= max_len"):
        SortConfig(min_len=5, max_len=3)
    with pytest.raises(ValueError, match=r"expected integers separated by spaces or commas"):
        task.predict(task.build_model(), ["1 2 x"])
    with pytest.raises(ValueError, match=r"numbers must lie in \[0, 30\)"):
        task.sort(task.build_model(), [[1, 30]])
