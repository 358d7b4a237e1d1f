"""The language-model task on a file: the trainer protocol, generation, its saved state."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.data import build_char_vocab
from rnnkit.tasks.lm import LanguageModelTask, LMConfig

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40


@pytest.fixture
def char_file(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def test_task_protocol_on_a_file(char_file):
    task = LanguageModelTask(
        LMConfig(data=char_file, embed_size=8, hidden_size=16, batch_size=4, bptt=10)
    )
    assert len(task.vocab) == len(set(TEXT))
    batches = task.batches("train", 0)
    inputs, targets = batches[0]
    assert inputs.shape == targets.shape == (10, 4)
    assert torch.equal(inputs[1:], targets[:-1])
    model = task.build_model()
    loss, state, n = task.loss(model, batches[0], None)
    assert n == 40 and state[0].shape == (1, 4, 16)
    # an untrained model is close to uniform over the vocabulary
    assert abs(loss.item() - math.log(len(task.vocab))) < 0.5
    m = task.metrics(math.log(2))
    assert m["bpc"] == pytest.approx(1.0) and m["ppl"] == pytest.approx(2.0)


def test_generate_is_seeded_and_starts_with_the_prime(char_file):
    task = LanguageModelTask(LMConfig(data=char_file, embed_size=8, hidden_size=16))
    model = task.build_model()
    a = task.generate(model, length=30, prime="the ", seed=3, top_k=5)
    b = task.generate(model, length=30, prime="the ", seed=3, top_k=5)
    assert a == b and a.startswith("the ") and len(a) == 34
    with pytest.raises(ValueError):
        task.generate(model, length=5, prime="Z")  # not in the vocabulary


def test_task_state_round_trip(char_file):
    task = LanguageModelTask(LMConfig(data=char_file, embed_size=8, hidden_size=16))
    again = LanguageModelTask.from_state(task.state_dict())
    assert again.vocab.tokens == task.vocab.tokens
    assert again.cfg == task.cfg
    assert torch.equal(again.corpus.valid, task.corpus.valid)


def test_char_vocab_helper_used_by_the_task():
    v = build_char_vocab("ba\n")
    assert v.tokens == ["\n", "a", "b"]


WORD_LINES = [
    " the cat 's mat , a two @-@ part <unk> . ",
    ' the dog said " hello " ( twice ) ; <unk> <unk> . ',
]


@pytest.fixture
def word_task(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text("\n".join(WORD_LINES * 10) + "\n", encoding="utf-8")
    cfg = LMConfig(data=str(tmp_path), level="word", embed_size=8, hidden_size=16)
    return LanguageModelTask(cfg)


def test_word_samples_are_detokenised_and_leave_out_unk(word_task):
    model = word_task.build_model()
    text = word_task.generate(model, length=300, temperature=2.0, seed=0)
    assert "<unk>" not in text and "@-@" not in text and " ," not in text and " ." not in text
    raw = word_task.generate(model, length=300, temperature=2.0, seed=0, allow_unk=True,
                             detokenize=False)  # fmt: skip
    assert "<unk>" in raw and " , " in raw


def test_word_prime_is_split_like_the_corpus_and_unknown_words_warn(word_task, caplog):
    model = word_task.build_model()
    text = word_task.generate(model, length=5, prime="the cat's mat,", seed=0)
    assert text.startswith("the cat's mat,")
    assert word_task.encode_prime("the cat's mat,") == word_task.vocab.encode(
        ["the", "cat", "'s", "mat", ","]
    )
    with caplog.at_level("WARNING"):
        ids = word_task.encode_prime("the zebra\nsaid")
    assert ids == word_task.vocab.encode(["the", "<unk>", "<eos>", "said"])
    assert "['zebra']" in caplog.text and "<unk>" in caplog.text


def test_word_prime_without_unk_in_the_vocabulary_is_an_error(tmp_path):
    from rnnkit.data import Vocab

    path = tmp_path / "input.txt"
    path.write_text("the cat said hello .\n" * 20, encoding="utf-8")
    vocab = Vocab(["<eos>", "the", "cat", "said", "hello", "."], level="word")
    cfg = LMConfig(data=str(path), level="word", embed_size=8, hidden_size=16)
    task = LanguageModelTask(cfg, vocab=vocab)
    with pytest.raises(ValueError, match=r"prime words \['zebra'\] are not in the vocabulary"):
        task.encode_prime("the zebra")


def test_variable_windows_scale_the_learning_rate_by_their_length(word_task):
    assert word_task.lr_scale(word_task.batches("train", 0)[0]) == 1.0
    cfg = LMConfig(data=word_task.cfg.data, level="word", batch_size=2, bptt=10, variable_bptt=True)
    task = LanguageModelTask(cfg)
    batches = task.batches("train", 0)
    lengths = [batches[i][0].shape[0] for i in range(len(batches))]
    assert len(set(lengths)) > 1
    assert [task.lr_scale(batches[i]) for i in range(len(batches))] == [n / 10 for n in lengths]


def test_word_level_defaults_to_the_word_preset():
    assert LanguageModelTask.default_preset({"level": "word"}) == "word"
    assert LanguageModelTask.default_preset({}) == "char"
