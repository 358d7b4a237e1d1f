"""The batches of one split and epoch, built on demand (what ``task.batches(split, epoch)`` returns).

A task decides what each batch is made of -- a list of example indices, the number of a TBPTT
window -- and how one batch is built from it; :class:`Batches` is the list-like (``len()`` and
``[i]``) the trainer reads, building batch ``i`` only when it is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K")
B = TypeVar("B")


class Batches(Generic[K, B]):
    """``batches[i] == build(index_batches[i])``; ``len(batches) == len(index_batches)``.

    ``index_batches``: what each batch is built from, in order (e.g. lists of example indices from
    a :class:`rnnkit.data.BucketSampler`, or ``range(num_windows)``); ``build``: one batch from one
    of them (tensors, a tuple or a dict of them).
    """

    def __init__(self, index_batches: Sequence[K], build: Callable[[K], B]) -> None:
        self.index_batches = index_batches
        self.build = build

    def __len__(self) -> int:
        return len(self.index_batches)

    def __getitem__(self, i: int) -> B:
        return self.build(self.index_batches[i])
