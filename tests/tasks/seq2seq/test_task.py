"""The seq2seq task end to end on tiny data: training, state, dates, word-level files, errors."""

from __future__ import annotations

import json

import pytest

from rnnkit.tasks.seq2seq import Seq2SeqConfig, Seq2SeqTask
from rnnkit.train import Trainer, TrainerConfig

TINY = dict(dataset="reverse", num_train=2000, num_valid=200, num_test=200, min_len=2, max_len=5,
            embed_size=16, hidden_size=32, batch_size=32)  # fmt: skip


def test_attention_model_learns_reversal_through_the_trainer():
    task = Seq2SeqTask(Seq2SeqConfig(**TINY))
    cfg = TrainerConfig(optimizer="adam", lr=1e-2, epochs=3, clip_norm=1.0, progress=False)
    trainer = Trainer(task, cfg)
    summary = trainer.fit()
    assert summary["valid"]["exact_match"] >= 0.9
    test = task.evaluate(trainer.model, "test")
    assert test["exact_match"] >= 0.9 and test["ppl"] < 1.5
    assert task.predict(trainer.model, ["1234"]) == ["1234 -> 4321"]
    pairs = task.sets["test"].pairs[:100]
    beams = task.translate(trainer.model, [s for s, _ in pairs], beam_size=3)
    assert sum(b == t for b, (_, t) in zip(beams, pairs)) >= 90
    # the saved task state rebuilds the same vocabulary and splits
    again = Seq2SeqTask.from_state(json.loads(json.dumps(task.state_dict())))
    assert again.vocab.tokens == task.vocab.tokens
    assert again.sets["test"].pairs == task.sets["test"].pairs


def test_dates_task_and_word_level_file(tmp_path):
    task = Seq2SeqTask(Seq2SeqConfig(num_train=300, num_valid=50, num_test=50))
    train_src = {s for s, _ in task.sets["train"].pairs}
    assert not train_src & {s for s, _ in task.sets["test"].pairs}
    assert all(len(t) == 10 and t[4] == "-" for _, t in task.sets["test"].pairs)
    path = tmp_path / "pairs.tsv"
    lines = [f"the {w} cat\tle chat {w}" for w in ["big", "small", "red", "old", "fat"] * 4]
    path.write_text("\n".join(lines) + "\n")
    cfg = Seq2SeqConfig(data=str(path), level="word", embed_size=8, hidden_size=16)
    task = Seq2SeqTask(cfg)
    assert {"le", "chat", "big"} <= set(task.vocab.tokens)
    trainer = Trainer(task, TrainerConfig(lr=1e-2, epochs=2, progress=False))
    result = trainer.fit()["valid"]
    assert 0.0 <= result["bleu4"] <= 1.0 and "exact_match" in result
    out = task.predict(trainer.model, ["the red cat"], tmp_path / "pred")
    assert out[0].startswith("the red cat -> ")
    assert (tmp_path / "pred" / "attention_0.png").stat().st_size > 0


def test_bad_pair_files_name_the_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("ab\tcd\n" + "x\t" + "y" * 40 + "\n")
    with pytest.raises(
        ValueError, match=r"bad\.tsv:2: target of length 40 is longer than the maximum 32"
    ):
        Seq2SeqTask(Seq2SeqConfig(data=str(path)))
    with pytest.raises(ValueError, match=r"attention must be one of"):
        Seq2SeqConfig(attention="dot")
