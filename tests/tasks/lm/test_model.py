"""The language model: step-wise decoding, tying, sampling."""

from __future__ import annotations

import pytest
import torch

from rnnkit.decode import LayerStepper, sample_logits
from rnnkit.tasks.lm import LMConfig, RNNLanguageModel


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
