"""The seq2seq task's pairs: their splits, vocabulary and batches.

Data: :mod:`rnnkit.data.dates` (date normalisation, digit reversal) or a ``source<TAB>target`` file.
Token ids: ``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, ``<unk>`` 3, then the sorted tokens of the training
pairs (characters or words).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...data.dates import date_pairs, read_pairs, reversal_pairs
from ...data.sequences import pad_sequences
from ...data.text import Vocab
from ..batches import Batches
from ..splits import split_by_position
from .config import Seq2SeqConfig

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = [PAD, BOS, EOS, UNK]
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)


@dataclass
class PairSet:
    """Token id lists of one split: ``sources[i]``, ``targets[i]`` (no specials) and the texts."""

    sources: list[list[int]]
    targets: list[list[int]]
    pairs: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.pairs)


def raw_splits(cfg: Seq2SeqConfig) -> dict[str, list[tuple[str, str]]]:
    """The ``(source, target)`` texts of 'train', 'valid' and 'test': the file's, split by
    position, or the built-in ``dataset``'s, drawn so that no source is in two splits."""
    if cfg.data is not None:
        size = len if cfg.level == "char" else (lambda s: len(s.split()))
        pairs = read_pairs(cfg.data, cfg.max_source_len, cfg.max_target_len, size)
        return split_by_position(pairs, cfg.valid_fraction, cfg.test_fraction, cfg.data, "pairs")
    # test first, then valid, then train: each excludes the sources drawn before it
    out: dict[str, list[tuple[str, str]]] = {}
    seen: set[str] = set()
    for i, (name, n) in enumerate((("test", cfg.num_test), ("valid", cfg.num_valid),
                                   ("train", cfg.num_train))):  # fmt: skip
        seed = cfg.seed * 10 + i
        if cfg.dataset == "dates":
            out[name] = date_pairs(n, seed, exclude=seen)
        else:
            out[name] = reversal_pairs(n, cfg.min_len, cfg.max_len, seed, exclude=seen)
        seen.update(s for s, _ in out[name])
    for pairs in out.values():
        for s, t in pairs:
            if len(s) > cfg.max_source_len or len(t) > cfg.max_target_len:
                raise ValueError(f"built-in {cfg.dataset} pair {(s, t)} is longer than "
                                 f"max_source_len/max_target_len")  # fmt: skip
    return out


def build_vocab(pairs: list[tuple[str, str]], level: str) -> Vocab:
    """Specials (``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, ``<unk>`` 3), then the sorted tokens."""
    split = list if level == "char" else str.split
    tokens = sorted({t for s, g in pairs for t in (*split(s), *split(g))} - set(SPECIALS))
    return Vocab(SPECIALS + tokens, level=level)


def pair_batches(
    data: PairSet, index_batches: list[list[int]]
) -> Batches[list[int], tuple[Tensor, Tensor, Tensor, Tensor]]:
    """``(src (S, N), src_len (N,), tgt_in (T, N), tgt_out (T, N))`` per batch of pair indices;
    ``tgt_in`` starts with ``<s>``, ``tgt_out`` ends with ``</s>``, padding is ``<pad>`` (id 0)."""

    def build(idx: list[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        src, src_len = pad_sequences([torch.tensor(data.sources[j]) for j in idx], PAD_ID)
        tgt = [data.targets[j] for j in idx]
        tgt_in, _ = pad_sequences([torch.tensor([BOS_ID, *t]) for t in tgt], PAD_ID)
        tgt_out, _ = pad_sequences([torch.tensor([*t, EOS_ID]) for t in tgt], PAD_ID)
        return src, src_len, tgt_in, tgt_out

    return Batches(index_batches, build)
