"""The language model: embedding -> locked dropout -> rnnkit LSTM/GRU/RNN (any option) -> locked
dropout -> linear softmax, optionally tied to the embedding (Press & Wolf 2017; Inan et al. 2017).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...decode import LayerStepper
from ...regularization import LockedDropout
from ..cells import projects, recurrent_layer
from .config import LMConfig


class RNNLanguageModel(nn.Module):
    """Embedding -> recurrent layers -> softmax over the vocabulary.

    ``forward(tokens (T, N), state) -> (logits (T, N, V), state)``; ``state`` in torch.nn's layout.
    """

    def __init__(self, cfg: LMConfig, vocab_size: int) -> None:
        super().__init__()
        self.cell = cfg.cell
        self.embed = nn.Embedding(vocab_size, cfg.embed_size)
        self.embed_drop = LockedDropout(cfg.embed_dropout)
        kwargs: dict[str, Any] = dict(
            num_layers=cfg.num_layers,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
            **cfg.layer_options(),
        )
        out_size = cfg.hidden_size
        if cfg.tie_weights and cfg.embed_size != cfg.hidden_size:
            if not projects(cfg.cell):
                raise ValueError(
                    f"tie_weights needs embed_size == hidden_size for {cfg.cell} "
                    f"(got {cfg.embed_size} and {cfg.hidden_size}); LSTM projects instead"
                )
            kwargs["proj_size"] = out_size = cfg.embed_size  # project to the tied size
        self.rnn = recurrent_layer(cfg.cell, cfg.embed_size, cfg.hidden_size, **kwargs)
        self.out_drop = LockedDropout(cfg.dropout)
        self.head = nn.Linear(out_size, vocab_size)
        if cfg.tie_weights:
            self.head.weight = self.embed.weight
        if cfg.init_range is not None:
            for p in self.parameters():
                nn.init.uniform_(p, -cfg.init_range, cfg.init_range)
        self._stepper: LayerStepper | None = None

    def forward(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        x = self.embed_drop(self.embed(tokens))  # (T, N, E)
        out, state = self.rnn(x, state)  # (T, N, R)
        return self.head(self.out_drop(out)), state  # (T, N, V)

    @torch.no_grad()
    def step(self, token: Tensor, state: Any) -> tuple[Tensor, Any]:
        """One decoding step: ``token (N,)`` -> ``(logits (N, V), state)`` (evaluation semantics)."""
        if self._stepper is None or self.training:
            self._stepper = LayerStepper(self.rnn)
        out, state = self._stepper.step(self.embed(token), state)
        return self.head(out), state

    def train(self, mode: bool = True) -> RNNLanguageModel:
        self._stepper = None  # weights may change while training
        return super().train(mode)
