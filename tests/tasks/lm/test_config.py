"""The language-model presets."""

from __future__ import annotations

import pytest

from rnnkit.tasks.lm import PRESETS, LMConfig, RNNLanguageModel


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
