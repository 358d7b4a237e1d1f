"""Perplexity, bits per character, and the token-weighted running mean."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnkit.train import RunningMean, bits_per_char, perplexity


def test_perplexity_is_exp_and_survives_overflow():
    assert perplexity(0.0) == 1.0
    assert perplexity(1.0) == pytest.approx(math.e)
    assert perplexity(math.log(120.5)) == pytest.approx(120.5)
    assert perplexity(1e4) == math.inf  # math.exp would raise OverflowError
    assert math.isnan(perplexity(math.nan))


def test_bits_per_char_is_nats_over_ln2():
    assert bits_per_char(math.log(2.0)) == pytest.approx(1.0)
    assert bits_per_char(1.0) == pytest.approx(1.0 / 0.6931471805599453)
    # a uniform guess over 256 bytes costs 8 bits
    assert bits_per_char(math.log(256)) == pytest.approx(8.0)


def test_running_mean_weights_by_tokens():
    rng = np.random.default_rng(0)
    losses, counts = rng.uniform(0, 5, 20), rng.integers(1, 50, 20)
    mean = RunningMean()
    for i, (loss, n) in enumerate(zip(losses, counts)):
        mean.update(torch.tensor(loss, dtype=torch.float32) if i % 2 else float(loss), int(n))
    expected = np.average(losses.astype(np.float32).astype(np.float64), weights=counts)
    assert mean.value == pytest.approx(expected, rel=1e-7)
    assert mean.weight == counts.sum()
    assert mean.total == pytest.approx(expected * counts.sum(), rel=1e-7)
    mean.reset()
    assert math.isnan(mean.value) and mean.weight == 0
    mean.load(6.0, 4)
    mean.update(3.0, 2)
    assert mean.value == 2.0


def test_running_mean_rejects_bad_input():
    mean = RunningMean()
    with pytest.raises(ValueError, match="weight must be >= 0"):
        mean.update(1.0, -1)
    with pytest.raises(ValueError, match="scalar"):
        mean.update(torch.ones(2), 1)
