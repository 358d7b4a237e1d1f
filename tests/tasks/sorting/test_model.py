"""The sorting model: padding leaves every valid output alone."""

from __future__ import annotations

import pytest
import torch

from rnnkit.tasks.sorting import SortConfig, SortNet


@pytest.mark.parametrize("cell", ["lstm", "gru", "mingru", "minlstm", "indrnn", "slstm"])
def test_padding_does_not_change_any_valid_output(cell):
    """A batch of mixed lengths gives, at each valid position, what each sequence gives alone."""
    torch.manual_seed(0)
    cfg = SortConfig(vocab_size=12, embed_size=5, hidden_size=8, cell=cell)
    model = SortNet(cfg).double().eval()
    seqs = [torch.tensor(s) for s in ([3, 1, 4, 1, 5], [9, 2], [6, 5, 3, 5])]
    x = torch.full((5, 3), 12, dtype=torch.long)
    for j, s in enumerate(seqs):
        x[: len(s), j] = s
    batched = model(x, torch.tensor([5, 2, 4]))
    for j, s in enumerate(seqs):
        alone = model(s.view(-1, 1))
        torch.testing.assert_close(batched[: len(s), j], alone[:, 0])
