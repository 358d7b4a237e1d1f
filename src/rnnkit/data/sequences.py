"""Datasets of separate variable-length sequences: padding and length bucketing.

:func:`pad_sequences` stacks sequences into one padded tensor plus their lengths (what
``torch.nn.utils.rnn.pack_padded_sequence`` and rnnkit's layers take). :class:`BucketSampler`
groups sequences of similar length into the same batch, so little compute goes to padding (the
bucketing of TensorFlow's ``bucket_by_sequence_length``); use it as a DataLoader ``batch_sampler``::

    sampler = BucketSampler(lengths, batch_size=32, num_buckets=10, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=my_collate)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)  # a new, reproducible order each epoch
        for batch in loader: ...
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

__all__ = ["BucketSampler", "pad_sequences"]


def pad_sequences(
    seqs: Sequence[torch.Tensor], padding_value: float = 0, batch_first: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad sequences of shape ``(T_i,)`` or ``(T_i, C)`` to a common length.

    Returns ``(padded, lengths)``: ``padded`` is ``(T_max, N)`` / ``(T_max, N, C)``, or
    ``(N, T_max, ...)`` with ``batch_first=True``, filled with ``padding_value`` past each length;
    ``lengths`` is a ``(N,)`` ``torch.long`` tensor of the ``T_i``. Array-likes are converted with
    ``torch.as_tensor``. All sequences must share trailing dimensions and dtype.
    """
    if len(seqs) == 0:
        raise ValueError("pad_sequences needs at least one sequence, got none")
    tensors = [torch.as_tensor(s) for s in seqs]
    first = tensors[0]
    if first.dim() not in (1, 2):
        raise ValueError(
            f"sequences must be 1-D (T,) or 2-D (T, C), got shape {tuple(first.shape)}"
        )
    for i, t in enumerate(tensors):
        if t.dim() != first.dim() or t.shape[1:] != first.shape[1:]:
            raise ValueError(
                f"sequence {i} has shape {tuple(t.shape)}, expected (T, *{tuple(first.shape[1:])})"
            )
        if t.dtype != first.dtype:
            raise TypeError(f"sequence {i} has dtype {t.dtype}, expected {first.dtype}")
    lengths = torch.tensor([t.shape[0] for t in tensors], dtype=torch.long)
    padded = pad_sequence(tensors, batch_first=batch_first, padding_value=padding_value)
    return padded, lengths


class BucketSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of indices whose sequence lengths are close.

    Bucketing: with ``boundaries=None`` the indices, sorted by length (ties in random order when
    shuffling, by index otherwise), are cut into ``num_buckets`` buckets of nearly equal count, so
    the buckets follow the length distribution; with ``boundaries=[b0, b1, ...]`` (increasing) a
    sequence of length ``l`` goes to bucket ``i`` with ``b[i-1] <= l < b[i]`` (``len(b) + 1``
    buckets). Each bucket is cut into batches of ``batch_size`` (its last one smaller unless
    ``drop_last``), so a batch never mixes buckets.

    ``shuffle=True``: indices are shuffled within each bucket before batching (so batches change
    from epoch to epoch) and the batches are shuffled, with ``numpy.random.default_rng([seed,
    epoch])``; call :meth:`set_epoch` each epoch. ``shuffle=False``: within each bucket indices are
    in length order, buckets from shortest to longest, the same every epoch. Each batch is listed by
    decreasing length (what ``pack_padded_sequence(enforce_sorted=True)`` wants).

    Args:
        lengths: ``(num_sequences,)`` lengths (ints, a list, array or tensor).
        batch_size: sequences per batch.
        num_buckets: number of equal-count buckets when ``boundaries`` is ``None``.
        boundaries: explicit increasing length boundaries (overrides ``num_buckets``).
        shuffle, seed, drop_last: as above.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray | torch.Tensor,
        batch_size: int,
        num_buckets: int = 10,
        boundaries: Sequence[int] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        lengths = np.asarray(
            lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths, dtype=np.int64
        )
        if lengths.ndim != 1 or lengths.size == 0:
            raise ValueError(f"lengths must be a non-empty 1-D sequence, got shape {lengths.shape}")
        if (lengths < 0).any():
            raise ValueError(f"lengths must be >= 0, got min {int(lengths.min())}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if boundaries is None and num_buckets < 1:
            raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
        if boundaries is not None:
            b = np.asarray(list(boundaries), dtype=np.int64)
            if b.ndim != 1 or b.size == 0 or (np.diff(b) <= 0).any():
                raise ValueError(f"boundaries must be strictly increasing ints, got {boundaries!r}")
            boundaries = b
        self.lengths = lengths
        self.batch_size = batch_size
        self.num_buckets = num_buckets if boundaries is None else len(boundaries) + 1
        self.boundaries = boundaries
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose (reproducible) order the next iteration yields."""
        self.epoch = epoch

    def _bucket_sizes(self) -> list[int]:
        n = self.lengths.size
        if self.boundaries is None:
            k = min(self.num_buckets, n)
            return [len(c) for c in np.array_split(np.arange(n), k)]
        ids = np.searchsorted(self.boundaries, self.lengths, side="right")
        return np.bincount(ids, minlength=self.num_buckets).tolist()

    def _buckets(self, rng: np.random.Generator | None) -> list[np.ndarray]:
        n = self.lengths.size
        # stable sort by length; a random pre-permutation makes ties random when shuffling
        perm = rng.permutation(n) if rng is not None else np.arange(n)
        order = perm[np.argsort(self.lengths[perm], kind="stable")]
        if self.boundaries is None:
            return np.array_split(order, min(self.num_buckets, n))
        ids = np.searchsorted(self.boundaries, self.lengths[order], side="right")
        return [order[ids == i] for i in range(self.num_buckets)]

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch]) if self.shuffle else None
        batches: list[np.ndarray] = []
        for bucket in self._buckets(rng):
            if rng is not None:
                bucket = rng.permutation(bucket)
            for i in range(0, len(bucket), self.batch_size):
                batch = bucket[i : i + self.batch_size]
                if len(batch) < self.batch_size and self.drop_last:
                    continue
                batches.append(batch)
        if rng is not None:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        for batch in batches:
            # decreasing length, ties by index
            yield batch[np.lexsort((batch, -self.lengths[batch]))].tolist()

    def __len__(self) -> int:
        per = self.batch_size
        if self.drop_last:
            return sum(s // per for s in self._bucket_sizes())
        return sum(math.ceil(s / per) for s in self._bucket_sizes())
