"""Truncated-BPTT batching of one long token stream.

The stream of ``L`` tokens is cut into ``N`` parallel columns (:func:`batchify`, as in PyTorch's
``word_language_model`` and Chainer's ``ParallelSequentialIterator``): column ``j`` holds the
contiguous slice ``data[j*S:(j+1)*S]`` with ``S = L // N``, so a hidden state carried from one
window to the next continues the same text. Windows of ``bptt`` time steps (:func:`bptt_windows`)
walk down the columns; the targets of a window are its inputs shifted by one step
(:func:`get_window`). :class:`TBPTTStream` bundles the three for a trainer.

Example::

    >>> stream = TBPTTStream.from_tokens(torch.arange(1000), batch_size=4, bptt=35)
    >>> for index, inputs, targets in stream.iter_epoch(epoch=0):
    ...     pass  # inputs, targets: (T, 4) with T <= 35
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["TBPTTStream", "batchify", "bptt_windows", "get_window", "shard_columns"]


def batchify(data: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a stream ``(L,)`` into ``batch_size`` columns: ``(L // N, N)``, time-major.

    Column ``j`` is ``data[j * S:(j + 1) * S]`` with ``S = L // N``; the last ``L % N`` tokens are
    dropped (PyTorch's ``word_language_model.batchify``). The result is contiguous.
    """
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"data must be a torch.Tensor, got {type(data).__name__}")
    if data.dim() != 1:
        raise ValueError(f"data must be 1-D (L,), got shape {tuple(data.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    steps = data.numel() // batch_size
    if steps < 2:
        raise ValueError(
            f"{data.numel()} tokens are too few for batch_size={batch_size}: each column needs at "
            "least 2 tokens (one input and its target)"
        )
    return data[: steps * batch_size].view(batch_size, steps).t().contiguous()


def shard_columns(columns: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Columns ``(S, N)`` of process ``rank`` out of ``world_size``: ``(S, N // world_size)``.

    Rank ``r`` gets the contiguous block of columns ``r * n:(r + 1) * n``, so the ranks together
    see exactly the global batch (data-parallel training on the same global batch).
    """
    if columns.dim() != 2:
        raise ValueError(f"columns must be 2-D (S, N), got shape {tuple(columns.shape)}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    n = columns.shape[1]
    if n % world_size:
        raise ValueError(f"batch size {n} is not divisible by world_size={world_size}")
    per = n // world_size
    return columns[:, rank * per : (rank + 1) * per]


def bptt_windows(
    n_steps: int,
    bptt: int,
    variable: bool = False,
    seed: int = 0,
    epoch: int = 0,
    min_len: int = 5,
) -> list[tuple[int, int]]:
    """Windows ``(start, length)`` over the rows ``0 .. n_steps - 2`` of a column matrix.

    The windows are consecutive and cover each input step exactly once; row ``n_steps - 1`` is
    only a target. Fixed length: ``bptt`` steps each (the last one shorter).

    ``variable=True`` uses AWD-LSTM's rule (Merity et al. 2017, "Regularizing and Optimizing LSTM
    Language Models", section 4.1): each window's base is ``bptt`` with probability 0.95 else
    ``bptt / 2``, its length ``max(min_len, int(Normal(base, 5)))``, cut at the end of the data.
    Draws come from ``numpy.random.default_rng([seed, epoch])``, so a resumed run gets the same
    windows. (AWD-LSTM also scales the learning rate by ``length / bptt``; that is the trainer's
    job.)
    """
    if n_steps < 2:
        raise ValueError(f"n_steps must be >= 2 (inputs and shifted targets), got {n_steps}")
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    if min_len < 1:
        raise ValueError(f"min_len must be >= 1, got {min_len}")
    last = n_steps - 1  # number of input steps
    if not variable:
        return [(s, min(bptt, last - s)) for s in range(0, last, bptt)]
    rng = np.random.default_rng([seed, epoch])
    windows: list[tuple[int, int]] = []
    start = 0
    while start < last:
        base = bptt if rng.random() < 0.95 else bptt / 2.0
        length = max(min_len, int(rng.normal(base, 5)))
        length = min(length, last - start)
        windows.append((start, length))
        start += length
    return windows


def get_window(columns: torch.Tensor, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``columns[start:start+length]`` and targets one step later, both ``(T, N)``."""
    if columns.dim() < 1:
        raise ValueError("columns must have a time dimension, got a 0-d tensor")
    if start < 0 or length < 1 or start + length > columns.shape[0] - 1:
        raise ValueError(
            f"window (start={start}, length={length}) does not fit {columns.shape[0]} steps "
            f"(needs start >= 0, length >= 1, start + length <= {columns.shape[0] - 1})"
        )
    return columns[start : start + length], columns[start + 1 : start + 1 + length]


@dataclass
class TBPTTStream:
    """Columns plus the window rule: what a truncated-BPTT trainer iterates over.

    Attributes:
        columns: ``(S, N)`` token ids from :func:`batchify` (or a shard of them).
        bptt: window length in steps.
        variable: AWD-LSTM's random window lengths (see :func:`bptt_windows`).
        seed: seed of the variable lengths, combined with the epoch number.
        min_len: shortest variable window.

    The position in an epoch is the window index, so a checkpoint stores ``(epoch, index)`` and
    resumes with ``iter_epoch(epoch, start=index)``.
    """

    columns: torch.Tensor
    bptt: int
    variable: bool = False
    seed: int = 0
    min_len: int = 5
    _cache: dict[int, list[tuple[int, int]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.columns.dim() != 2:
            raise ValueError(f"columns must be 2-D (S, N), got shape {tuple(self.columns.shape)}")
        bptt_windows(self.columns.shape[0], self.bptt, min_len=self.min_len)  # validate

    @classmethod
    def from_tokens(cls, data: torch.Tensor, batch_size: int, bptt: int, **kwargs) -> TBPTTStream:
        """``TBPTTStream(batchify(data, batch_size), bptt, **kwargs)``."""
        return cls(batchify(data, batch_size), bptt, **kwargs)

    @property
    def batch_size(self) -> int:
        return self.columns.shape[1]

    @property
    def tokens_per_epoch(self) -> int:
        """Number of predicted tokens in one epoch: ``(S - 1) * N``."""
        return (self.columns.shape[0] - 1) * self.columns.shape[1]

    def windows(self, epoch: int = 0) -> list[tuple[int, int]]:
        """The ``(start, length)`` windows of ``epoch`` (the same for every epoch if fixed)."""
        key = epoch if self.variable else 0
        if key not in self._cache:
            if len(self._cache) > 4:
                self._cache.clear()
            self._cache[key] = bptt_windows(
                self.columns.shape[0], self.bptt, self.variable, self.seed, key, self.min_len
            )
        return self._cache[key]

    def num_windows(self, epoch: int = 0) -> int:
        return len(self.windows(epoch))

    def get(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets ``(T, N)`` of window ``index`` of ``epoch``."""
        windows = self.windows(epoch)
        if not 0 <= index < len(windows):
            raise IndexError(f"window index {index} out of range for {len(windows)} windows")
        return get_window(self.columns, *windows[index])

    def iter_epoch(
        self, epoch: int = 0, start: int = 0
    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Yield ``(index, inputs (T, N), targets (T, N))`` from window ``start`` to the end."""
        windows = self.windows(epoch)
        if not 0 <= start <= len(windows):
            raise ValueError(f"start must be in [0, {len(windows)}], got {start}")
        for index in range(start, len(windows)):
            yield (index, *get_window(self.columns, *windows[index]))
