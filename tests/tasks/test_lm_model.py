"""The language-model task: model shapes, tying, step-wise decoding, sampling, presets."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.data import build_char_vocab
from rnnkit.decode import LayerStepper, sample_logits
from rnnkit.tasks.lm import PRESETS, LanguageModelTask, LMConfig, RNNLanguageModel

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40


@pytest.fixture
def char_file(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    "cell,kw",
    [
        ("lstm", {}),
        ("gru", dict(layer_norm=True)),
        ("rnn", dict(zoneout=0.1)),
        ("lstm", dict(layer_norm=True, peephole=True, zoneout=0.1, num_layers=2)),
    ],
)
def test_step_decoding_equals_the_full_forward(cell, kw):
    """Feeding tokens one by one through model.step gives the logits of one full forward pass."""
    cfg = LMConfig(cell=cell, embed_size=8, hidden_size=12, **kw)
    model = RNNLanguageModel(cfg, vocab_size=11).double().eval()
    tokens = torch.randint(0, 11, (6, 3))
    logits, _ = model(tokens)
    state = None
    with torch.no_grad():
        _, state = model(tokens[:1])
        for t in range(1, 6):
            step_logits, state = model.step(tokens[t], state)
            if t < 5:
                torch.testing.assert_close(step_logits, logits[t], atol=1e-10, rtol=0)


def test_tied_weights_share_storage_and_project_when_sizes_differ():
    model = RNNLanguageModel(LMConfig(embed_size=8, hidden_size=16, tie_weights=True), 20)
    assert model.head.weight is model.embed.weight
    assert model.rnn.proj_size == 8
    logits, _ = model(torch.randint(0, 20, (4, 2)))
    assert logits.shape == (4, 2, 20)
    with pytest.raises(ValueError, match="tie_weights needs embed_size == hidden_size"):
        RNNLanguageModel(LMConfig(cell="gru", embed_size=8, hidden_size=16, tie_weights=True), 20)


def test_layer_stepper_rejects_bidirectional():
    with pytest.raises(ValueError, match="unidirectional"):
        LayerStepper(torch.nn.LSTM(3, 4, bidirectional=True))


def test_sample_logits_modes():
    logits = torch.tensor([[0.0, 5.0, 1.0, -2.0]])
    assert sample_logits(logits, temperature=0).item() == 1
    gen = torch.Generator().manual_seed(0)
    draws = {sample_logits(logits, 1.0, top_k=2, generator=gen).item() for _ in range(200)}
    assert draws <= {1, 2} and draws == {1, 2}
    # top_p: p(1) = 0.97 > 0.9, so only token 1 survives
    draws = {sample_logits(logits, 1.0, top_p=0.9, generator=gen).item() for _ in range(50)}
    assert draws == {1}
    with pytest.raises(ValueError, match="top_p"):
        sample_logits(logits, 1.0, top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        sample_logits(logits, -1.0)


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


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_valid_configs(name):
    from rnnkit.train import TrainerConfig

    task_over, trainer_over = PRESETS[name]
    cfg = LMConfig(**task_over)
    TrainerConfig(**trainer_over)
    model = RNNLanguageModel(cfg, vocab_size=50)
    assert model.rnn.hidden_size == cfg.hidden_size


def test_zaremba_small_preset_matches_the_paper():
    task_over, trainer_over = PRESETS["small"]
    assert (task_over["hidden_size"], task_over["num_layers"], task_over["bptt"]) == (200, 2, 20)
    assert trainer_over["lr"] == 1.0 and trainer_over["clip_norm"] == 5.0


def test_char_vocab_helper_used_by_the_task():
    v = build_char_vocab("ba\n")
    assert v.tokens == ["\n", "a", "b"]
