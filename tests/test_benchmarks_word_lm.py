"""The word-LM benchmarks' pieces on tiny inputs (the measured runs are in docs/lm.md)."""

from __future__ import annotations

import math

import pytest
import torch
from benchmarks import word_lm, word_lm_loop, word_lm_step

from rnnkit.data import load_corpus
from rnnkit.tasks.lm import LanguageModelTask, LMConfig, softmax


def test_data_dir_names_the_path_and_the_files_expected(tmp_path, monkeypatch):
    monkeypatch.delenv(word_lm.DATA_ENV, raising=False)
    with pytest.raises(SystemExit, match=f"no corpus at {tmp_path}: expected a directory with "
                                         "train.txt/valid.txt/test.txt"):  # fmt: skip
        word_lm.data_dir(str(tmp_path))
    for name in ("train.txt", "valid.txt", "test.txt"):
        (tmp_path / name).write_text("a b\n", encoding="utf-8")
    monkeypatch.setenv(word_lm.DATA_ENV, str(tmp_path))
    assert word_lm.data_dir(None) == tmp_path


def write_tiny_corpus(directory):
    words = "the cat sat on the mat and the dog ate the log".split()
    for split, n in (("train", 60), ("valid", 10), ("test", 10)):
        lines = [" ".join(words[(i + j) % len(words)] for j in range(8)) for i in range(n)]
        (directory / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_plain_loop_stops_within_a_tiny_budget_and_reports(tmp_path):
    write_tiny_corpus(tmp_path)
    corpus = load_corpus(tmp_path, "word")
    cfg = word_lm.PlainConfig(embed=8, hidden=8, batch=4, bptt=5, eval_batch=2)
    result = word_lm.plain_loop(corpus, cfg, budget=1e-9)  # out of time after the first step
    assert result["tokens"] == 4 * 5
    assert [v["steps"] for v in result["validations"]] == [1]  # the epoch cut short, validated
    assert result["validations"][0]["lr"] == cfg.lr
    assert math.isfinite(result["test_ppl"]) and result["valid_ppl"] > 1.0
    table = word_lm.report([{**result, "load_before": 0.5}], 1.0)
    assert "| plain torch.nn loop | 0.50 |" in table


def test_rnnkit_recipe_reports_the_test_perplexity_with_and_without_the_cache(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_tiny_corpus(data)
    result = word_lm.rnnkit_recipe(data, 1.0, "small", tmp_path / "run")
    assert result["system"] == "rnnkit (small preset)" and result["tokens"] > 0
    assert 1.0 < result["test_ppl_cache"] < math.inf and result["cache"]["size"] == 2000
    plain = {"system": "plain torch.nn loop", "load_before": 0.5, "epochs": 1.0,
             "train_tok_s": 1.0, "valid_ppl": 2.0, "test_ppl": 2 * result["test_ppl"],
             "wall_s": 1.0}  # fmt: skip
    table = word_lm.report([plain, {**result, "load_before": 0.5}], 1.0)
    assert "rnnkit's test perplexity is 50.0% below the plain loop's; with the cache" in table
    assert f"| {result['test_ppl_cache']:.1f} |" in table
    assert result["ngram"] is None and result["test_ppl_network"] == result["test_ppl"]
    mixed = {**result, "load_before": 0.5, "ngram": {"order": 4, "weight": 0.2},
             "test_ppl_network": 1.6 * result["test_ppl"]}  # fmt: skip
    table = word_lm.report([plain, mixed], 1.0)
    assert ("50.0% below the plain loop's (the network mixed with its 4-gram at weight 0.200, "
            "chosen on valid; the network alone 20.0%)") in table  # fmt: skip


def test_loop_benchmark_times_each_model_it_was_given():
    torch.manual_seed(0)
    times = word_lm_loop.interleaved(["torch.nn.LSTM", "weight_drop=0.5"], 50, batches=2, block=1)
    assert set(times) == {"torch.nn.LSTM", "weight_drop=0.5"}
    assert all(ms > 0 for ms in times.values())
    table = word_lm_loop.report({"1 thread": {n: 2.0 for n in word_lm_loop.VARIANTS}}, 2, 50)
    assert "| layer_norm=True | 2.0 | 1.00x |" in table


def test_step_benchmark_times_the_same_model_with_and_without_the_padding(tmp_path):
    write_tiny_corpus(tmp_path)
    cfg = LMConfig(data=str(tmp_path), level="word", embed_size=8, hidden_size=8, batch_size=4,
                   bptt=5, softmax="adaptive", adaptive_cutoffs=(3, 6), adaptive_div=1.0,
                   tie_weights=True, init_range=0.1)  # fmt: skip
    task = LanguageModelTask(cfg)
    trainer = dict(lr=1.0, weight_decay=1e-5, clip_norm=0.25, precision="float32")
    runners = [word_lm_step.Runner(name, task, trainer) for name in word_lm_step.MODELS]
    buckets = []
    padded, unpadded, full = runners
    linear = softmax.F.linear
    softmax.F.linear = lambda *a: buckets.append(softmax.ROW_BUCKET) or linear(*a)
    try:
        for r in runners:
            assert all(r.step() > 0 for _ in range(3))
    finally:
        softmax.F.linear = linear
    assert softmax.ROW_BUCKET == 16 and 1 in buckets and 16 in buckets  # set for one runner only
    assert isinstance(full.model.head, torch.nn.Linear)
    for a, b in zip(padded.model.parameters(), unpadded.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # the same steps, the same model
    times = word_lm_step.interleaved(task, trainer, steps=2, block=1)
    assert set(times) == set(word_lm_step.MODELS) and all(ms > 0 for ms in times.values())
