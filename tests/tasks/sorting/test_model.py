"""The sorting model: padding leaves every valid output alone."""

from __future__ import annotations

import torch

from rnnkit.tasks.sorting import SortConfig, SortNet


def test_padding_does_not_change_any_valid_output():
    """A batch of mixed lengths gives, at each valid position, what each sequence gives alone."""
    torch.manual_seed(0)
    model = SortNet(SortConfig(vocab_size=12, embed_size=5, hidden_size=7)).double().eval()
    seqs = [torch.tensor(s) for s in ([3, 1, 4, 1, 5], [9, 2], [6, 5, 3, 5])]
    x = torch.full((5, 3), 12, dtype=torch.long)
    for j, s in enumerate(seqs):
        x[: len(s), j] = s
    batched = model(x, torch.tensor([5, 2, 4]))
    for j, s in enumerate(seqs):
        alone = model(s.view(-1, 1))
        torch.testing.assert_close(batched[: len(s), j], alone[:, 0])
