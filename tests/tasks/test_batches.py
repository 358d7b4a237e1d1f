"""The batches of one split and epoch: built on demand from what each batch is made of."""

from __future__ import annotations

import pytest
import torch

from rnnkit.tasks.batches import Batches


def test_batch_i_is_built_from_index_batch_i_when_asked_for():
    built = []

    def build(idx: list[int]) -> torch.Tensor:
        built.append(idx)
        return torch.tensor(idx) * 10

    batches = Batches([[0, 1], [2], [3, 4, 5]], build)
    assert len(batches) == 3 and built == []
    assert batches[2].tolist() == [30, 40, 50] and built == [[3, 4, 5]]
    assert batches[-1].tolist() == [30, 40, 50]
    assert [b.tolist() for b in batches] == [[0, 10], [20], [30, 40, 50]]
    with pytest.raises(IndexError):
        batches[3]
    assert batches.index_batches == [[0, 1], [2], [3, 4, 5]]


def test_a_range_of_window_numbers_and_no_batches():
    windows = Batches(range(4), lambda i: (i, i + 1))
    assert len(windows) == 4 and windows[3] == (3, 4)
    empty = Batches([], lambda idx: idx)
    assert len(empty) == 0 and list(empty) == []
