"""The word-LM benchmarks' pieces on tiny inputs (the measured runs are in docs/lm.md)."""

from __future__ import annotations

import math

import pytest
import torch
from benchmarks import word_lm, word_lm_loop

from rnnkit.data import load_corpus


def test_data_dir_names_the_path_and_the_files_expected(tmp_path, monkeypatch):
    monkeypatch.delenv(word_lm.DATA_ENV, raising=False)
    with pytest.raises(SystemExit, match=f"no corpus at {tmp_path}: expected a directory with "
                                         "train.txt/valid.txt/test.txt"):  # fmt: skip
        word_lm.data_dir(str(tmp_path))
    for name in ("train.txt", "valid.txt", "test.txt"):
        (tmp_path / name).write_text("a b\n", encoding="utf-8")
    monkeypatch.setenv(word_lm.DATA_ENV, str(tmp_path))
    assert word_lm.data_dir(None) == tmp_path


def test_plain_loop_stops_within_a_tiny_budget_and_reports(tmp_path):
    words = "the cat sat on the mat and the dog ate the log".split()
    for split, n in (("train", 60), ("valid", 10), ("test", 10)):
        lines = [" ".join(words[(i + j) % len(words)] for j in range(8)) for i in range(n)]
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = load_corpus(tmp_path, "word")
    cfg = word_lm.PlainConfig(embed=8, hidden=8, batch=4, bptt=5, eval_batch=2)
    result = word_lm.plain_loop(corpus, cfg, budget=1e-9)  # out of time after the first step
    assert result["tokens"] == 4 * 5
    assert math.isfinite(result["test_ppl"]) and result["valid_ppl"] > 1.0
    table = word_lm.report([{**result, "load_before": 0.5}], 1.0)
    assert "| plain torch.nn loop | 0.50 |" in table


def test_loop_benchmark_times_each_model_it_was_given():
    torch.manual_seed(0)
    times = word_lm_loop.interleaved(["torch.nn.LSTM", "weight_drop=0.5"], 50, batches=2, block=1)
    assert set(times) == {"torch.nn.LSTM", "weight_drop=0.5"}
    assert all(ms > 0 for ms in times.values())
    table = word_lm_loop.report({"1 thread": {n: 2.0 for n in word_lm_loop.VARIANTS}}, 2, 50)
    assert "| layer_norm=True | 2.0 | 1.00x |" in table
