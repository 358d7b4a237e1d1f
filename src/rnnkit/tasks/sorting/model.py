"""The sorting model: embedding -> bidirectional recurrent layers -> linear, one class per position."""

from __future__ import annotations

from torch import Tensor, nn

from ..cells import recurrent_layer
from .config import SortConfig


class SortNet(nn.Module):
    """Embedding -> bidirectional LSTM/GRU -> linear, one prediction per position.

    ``forward(tokens (T, N), lengths (N,)) -> logits (T, N, num_classes)``; outputs past each
    sequence's length are computed from zeros (rnnkit's ``lengths=`` contract) and must be ignored.
    """

    def __init__(self, cfg: SortConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.num_inputs, cfg.embed_size)
        self.rnn = recurrent_layer(
            cfg.cell,
            cfg.embed_size,
            cfg.hidden_size,
            num_layers=cfg.num_layers,
            bidirectional=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(2 * cfg.hidden_size, cfg.num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        out, _ = self.rnn(self.embed(tokens), lengths=lengths)  # (T, N, 2H)
        return self.head(out)  # (T, N, C)
