"""The captioning task's images and captions: splits, vocabulary and batches.

Data (:mod:`rnnkit.data.images`): the built-in digit strips, a COCO/Karpathy captions JSON or a
Flickr8k token file with an image folder (``images``), or precomputed features (``features``:
``.npy`` rows in the order of the captions file's images, or ``.npz``/HDF5 with ``ids``).
Karpathy's files carry their split; other files are split by image with ``valid_fraction`` /
``test_fraction``. Word ids: ``<pad>`` 0, ``<start>``, ``<end>``, ``<unk>``, then the words.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import numpy as np
from torch import Tensor

from ...data.captions import read_captions
from ...data.images import CaptionSet, digit_strips, make_batch, read_features
from ...data.text import UNK, Vocab
from ..batches import Batches
from .config import CaptionConfig

log = logging.getLogger(__name__)

PAD, START, END = "<pad>", "<start>", "<end>"
SPECIALS = [PAD, START, END, UNK]


def build_vocab(captions: list[list[str]], min_count: int) -> Vocab:
    """``<pad> <start> <end> <unk>``, then words seen ``>= min_count`` times by count, ties A-Z."""
    counts = Counter(w for c in captions for w in c)
    for s in SPECIALS:
        counts.pop(s, None)
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return Vocab(SPECIALS + words, level="word")


def digit_split(
    cfg: CaptionConfig, pool: tuple[np.ndarray, np.ndarray], split: str, seed: list[int]
) -> CaptionSet:
    """``num_<split>`` built-in digit strips drawn from the split's digit ``pool``, keyed
    ``'<split>-<i>'``, one reference caption each."""
    n = {"train": cfg.num_train, "valid": cfg.num_valid, "test": cfg.num_test}[split]
    strips, caps = digit_strips(pool, n, cfg.min_digits, cfg.max_digits, seed=seed)
    keys = [f"{split}-{i}" for i in range(n)]
    return CaptionSet.from_arrays(strips, [[c] for c in caps], keys)


def load_user_splits(cfg: CaptionConfig) -> dict[str, CaptionSet]:
    """The train, valid and test images (or features) and captions of the user's data."""
    records = read_captions(cfg.data, cfg.images, check_images=cfg.features is None)
    for r in records:
        for cap, where in zip(r.captions, r.lines):
            if len(cap) > cfg.max_caption_len:
                raise ValueError(
                    f"{where}: caption of {len(cap)} words is longer than max_caption_len="
                    f"{cfg.max_caption_len} (raise --max-caption-len)"
                )
    feats = None
    if cfg.features is not None:
        feats = align_features(cfg.features, records)
    if any(r.split for r in records):
        splits = [r.split or "train" for r in records]
    else:
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(len(records))
        n_valid = int(round(len(records) * cfg.valid_fraction))
        n_test = int(round(len(records) * cfg.test_fraction))
        splits = ["train"] * len(records)
        for j, i in enumerate(order):
            splits[i] = "valid" if j < n_valid else "test" if j < n_valid + n_test else "train"
    out = {}
    for split in ("train", "valid", "test"):
        idx = [i for i, s in enumerate(splits) if s == split]
        recs = [records[i] for i in idx]
        if feats is not None:
            out[split] = CaptionSet.from_arrays(
                feats[idx], [r.captions for r in recs], [r.key for r in recs]
            )
        else:
            out[split] = CaptionSet.from_files(recs, cfg.image_size, channels=3)
    if len(out["train"]) == 0:
        raise ValueError(f"{cfg.data}: no training images after the split")
    log.info("%s: %d/%d/%d train/valid/test images", cfg.data,
             *(len(out[s]) for s in ("train", "valid", "test")))  # fmt: skip
    return out


def align_features(path: str, records: list) -> np.ndarray:
    """The feature rows of ``records``' images, matched by id/name or, without ids, by order."""
    feats, ids = read_features(path)
    if ids is None:
        if len(feats) != len(records):
            raise ValueError(
                f"{path}: {len(feats)} feature rows for {len(records)} images; without 'ids' the "
                "rows must follow the images of the captions file one to one"
            )
        return feats
    row = {k: i for i, k in enumerate(ids)}
    missing = [r for r in records if r.key not in row]
    if missing:
        where = missing[0].where or "the captions file"
        raise ValueError(
            f"{path}: no features for {len(missing)} images of the captions file, e.g. "
            f"{missing[0].key!r} (referred to at {where})"
        )
    return feats[[row[r.key] for r in records]]


def caption_batches(
    data: CaptionSet,
    batch_size: int,
    encode: Callable[[list[str]], list[int]],
    shuffle_seed: list[int] | None = None,
) -> Batches[list[tuple[int, int]], dict[str, Tensor]]:
    """Batches of ``(image, caption)`` pairs, every reference caption of every image once (in
    order, or shuffled by ``shuffle_seed``): dicts with ``images``, ``inputs``/``targets (T, N)``
    (``<start> w..`` / ``w.. <end>`` by ``encode``, padded with 0) and ``lengths (N,)``."""
    pairs = [(i, j) for i, refs in enumerate(data.captions) for j in range(len(refs))]
    if shuffle_seed is not None:
        rng = np.random.default_rng(shuffle_seed)
        pairs = [pairs[k] for k in rng.permutation(len(pairs))]

    def build(chunk: list[tuple[int, int]]) -> dict[str, Tensor]:
        ids = [encode(data.captions[a][b]) for a, b in chunk]
        return make_batch(data.inputs([a for a, _ in chunk]), ids)

    return Batches([pairs[k : k + batch_size] for k in range(0, len(pairs), batch_size)], build)
