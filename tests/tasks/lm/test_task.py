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
