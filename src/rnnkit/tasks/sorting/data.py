"""The sorting task's examples: number sequences, their encodings and their batches.

Encodings (:mod:`rnnkit.data.synthetic`): ``tokens`` (one token per number) and ``chars`` (the
numbers written as one string over digits and space, padded to ``char_pad`` characters, sorted
number-wise and predicted character by character). Built-in splits are random sequences drawn with
fixed seeds; the probe sets test what training did not show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ...data.sequences import pad_sequences
from ...data.synthetic import encode_chars, numbers_to_text, random_sequences
from ..batches import Batches
from .config import SortConfig

IGNORE = -100  # target value of padded positions


@dataclass
class SortSet:
    """Inputs and targets of one split: id arrays of shape ``(T_i,)`` (same length per pair)."""

    inputs: list[np.ndarray]
    targets: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.inputs)


def sorted_targets(seqs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.sort(s) for s in seqs]


def encode_sequences(seqs: list[np.ndarray], cfg: SortConfig) -> SortSet:
    """Input and target ids of number sequences (the targets are the sorted sequences)."""
    if cfg.encoding == "tokens":
        return SortSet(list(seqs), sorted_targets(seqs))
    pad = cfg.char_pad
    xs = [encode_chars(numbers_to_text(s, pad)) for s in seqs]
    ys = [encode_chars(numbers_to_text(np.sort(s), pad)) for s in seqs]
    return SortSet(xs, ys)


def generate(
    cfg: SortConfig, n: int, min_len: int, max_len: int, seed: list[int], high: int | None = None
) -> list[np.ndarray]:
    """``n`` random sequences of numbers in ``[0, high or vocab_size)``, lengths in
    ``[min_len, max_len]``."""
    return random_sequences(n, 0, high or cfg.vocab_size, min_len, max_len, seed)


def builtin_split(cfg: SortConfig, split: str) -> list[np.ndarray]:
    """The sequences of a built-in split ('train', 'valid', 'test') or probe set ('gen': longer
    sequences; 'one_digit': numbers below 10; 'six_numbers': one number more than trained on)."""
    counts = {"train": cfg.num_train, "valid": cfg.num_valid, "test": cfg.num_test}
    if split in counts:
        seed = [cfg.seed, 1 + list(counts).index(split)]
        return generate(cfg, counts[split], cfg.min_len, cfg.max_len, seed)
    n = cfg.num_probe
    if split == "gen":
        return generate(cfg, n, cfg.gen_min_len, cfg.gen_max_len, [cfg.seed, 10])
    if split == "one_digit":
        return generate(cfg, n, cfg.min_len, cfg.max_len, [cfg.seed, 11], high=10)
    if split == "six_numbers":
        return generate(cfg, n, cfg.max_len + 1, cfg.max_len + 1, [cfg.seed, 12])
    raise ValueError(f"unknown split {split!r}; expected train, valid, test or a probe set")


def sort_batches(
    data: SortSet, index_batches: list[list[int]], pad: int
) -> Batches[list[int], tuple[Tensor, Tensor, Tensor]]:
    """The batches of ``data``: ``(inputs (T, N), targets (T, N), lengths (N,))``, inputs padded
    with ``pad``, targets with :data:`IGNORE`."""

    def build(idx: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        x, lengths = pad_sequences([torch.from_numpy(data.inputs[j]) for j in idx], pad)
        y, _ = pad_sequences([torch.from_numpy(data.targets[j]) for j in idx], IGNORE)
        return x, y, lengths

    return Batches(index_batches, build)
