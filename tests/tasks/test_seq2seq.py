"""The seq2seq task: handoff and attention variants, decoding paths, end to end on tiny data."""

from __future__ import annotations

import json

import pytest
import torch

from rnnkit.tasks.seq2seq import BOS_ID, EOS_ID, PAD_ID, Seq2Seq, Seq2SeqConfig, Seq2SeqTask
from rnnkit.train import Trainer, TrainerConfig

TINY = dict(dataset="reverse", num_train=2000, num_valid=200, num_test=200, min_len=2, max_len=5,
            embed_size=16, hidden_size=32, batch_size=32)  # fmt: skip


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models: extra intra-op threads only wait on each other on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(**kw) -> tuple[Seq2SeqTask, Seq2Seq]:
    task = Seq2SeqTask(Seq2SeqConfig(**{**TINY, "num_train": 64, **kw}))
    torch.manual_seed(0)
    return task, task.build_model().eval()


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


@pytest.mark.parametrize("attention", ["none", "luong", "bahdanau"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_teacher_forcing_equals_stepping(attention, cell):
    task, model = make(attention=attention, cell=cell, num_layers=2)
    src, src_len, tgt_in, _ = task.batches("valid", 0)[0]
    with torch.no_grad():
        full = model(src, src_len, tgt_in)  # (T, N, V)
        memory, mask, state = model.encode(src, src_len)
        steps = []
        for t in range(tgt_in.shape[0]):
            logits, state, _ = model.step(tgt_in[t], state, memory, mask)
            steps.append(logits)
    torch.testing.assert_close(full, torch.stack(steps), atol=1e-5, rtol=1e-5)


def test_handoff_passes_h_or_h_and_c():
    src = torch.tensor([[5, 6], [7, 8], [9, PAD_ID]])
    src_len = torch.tensor([3, 2])
    for handoff in ("h", "hc"):
        _, model = make(handoff=handoff, bidirectional=False)
        with torch.no_grad():
            _, (h, c) = model.encoder(model.embed(src), lengths=src_len)
            _, _, state = model.encode(src, src_len)
        h0, c0 = state["rnn"]
        torch.testing.assert_close(h0, h)
        torch.testing.assert_close(c0, c if handoff == "hc" else torch.zeros_like(c))
    _, model = make(handoff="none", attention="luong")
    _, _, state = model.encode(src, src_len)
    assert not state["rnn"][0].any() and not state["rnn"][1].any()
    with pytest.raises(ValueError, match="leaves the decoder blind"):
        Seq2SeqConfig(handoff="none", attention="none")


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_padding_does_not_change_a_short_source(attention):
    task, model = make(attention=attention)
    short, long = [4, 5], [6, 7, 8, 9, 10]
    tgt_in = torch.tensor([[BOS_ID], [6], [7]])
    with torch.no_grad():
        alone = model(torch.tensor(short).view(-1, 1), torch.tensor([2]), tgt_in)
        src = torch.tensor([short + [PAD_ID] * 3, long]).T
        batch = model(src, torch.tensor([2, 5]), tgt_in.repeat(1, 2))
    torch.testing.assert_close(batch[:, 0], alone[:, 0], atol=1e-5, rtol=1e-5)


def test_scheduled_sampling_one_feeds_back_the_greedy_tokens():
    task, model = make(attention="luong")
    src, src_len, tgt_in, _ = task.batches("valid", 0)[0]
    sources = [task.sets["valid"].pairs[i][0] for i in task.batches("valid", 0).index_batches[0]]
    with torch.no_grad():
        own = model(src, src_len, tgt_in, sampling=1.0).argmax(-1).T  # (N, T)
    greedy = task.translate(model, sources)
    for row, text in zip(own.tolist(), greedy):
        ids = task.vocab.encode(list(text))
        assert row[: len(ids)] == ids  # the same tokens up to the greedy output's end
        if len(ids) < len(row):
            assert row[len(ids)] == EOS_ID


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_beam_search_decodes_each_example_as_if_alone(attention):
    task, model = make(attention=attention)
    sources = [s for s, _ in task.sets["valid"].pairs[:6]]
    batched = task.translate(model, sources, beam_size=3)
    assert batched == [task.translate(model, [s], beam_size=3)[0] for s in sources]


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
