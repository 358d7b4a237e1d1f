"""Shared set-up for the whole suite."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The models here are tiny: one intra-op thread is as fast when the machine is idle and up to
    20x faster when other processes keep its cores busy (OpenMP workers wait on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
