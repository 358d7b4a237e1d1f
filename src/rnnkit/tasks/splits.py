"""Splitting a user's file of examples into train, validation and test parts."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def split_by_position(
    items: list[T], valid_fraction: float, test_fraction: float, source: str, noun: str
) -> dict[str, list[T]]:
    """``{"train", "valid", "test"}``: the first ``1 - valid_fraction - test_fraction`` of
    ``items``, then ``round(n * valid_fraction)`` validation and ``round(n * test_fraction)`` test
    items, in order; a ValueError naming ``source`` when nothing is left for training."""
    n_valid = int(round(len(items) * valid_fraction))
    n_test = int(round(len(items) * test_fraction))
    n_train = len(items) - n_valid - n_test
    if n_train < 1:
        raise ValueError(f"{source}: {len(items)} {noun} leave none for training")
    return {"train": items[:n_train], "valid": items[n_train : n_train + n_valid],
            "test": items[n_train + n_valid :]}  # fmt: skip
