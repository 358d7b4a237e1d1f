"""The language model: embedding (with word dropout) -> locked dropout -> rnnkit LSTM/GRU/RNN (any
option) -> locked dropout -> a full or adaptive softmax (:mod:`.softmax`), optionally tied to the
embedding (Press & Wolf 2017; Inan et al. 2017).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...decode import LayerStepper
from ...regularization import LockedDropout, embedding_dropout
from ..cells import projects, recurrent_layer
from .config import LMConfig
from .softmax import adaptive_cutoffs, adaptive_softmax, target_log_softmax

log = logging.getLogger(__name__)


class RNNLanguageModel(nn.Module):
    """Embedding -> recurrent layers -> softmax over the vocabulary.

    ``forward(tokens (T, N), state) -> (logits (T, N, V), state)``; ``state`` in torch.nn's layout.
    With the adaptive softmax the "logits" are the log-probabilities (the same distribution).
    Training and evaluation call ``forward(tokens, state, targets=targets)``, which gives
    ``log p(targets) (T, N)`` without building the ``(T, N, V)`` scores of an adaptive softmax.
    """

    def __init__(self, cfg: LMConfig, vocab_size: int) -> None:
        super().__init__()
        self.cell = cfg.cell
        self.softmax = cfg.softmax
        if cfg.softmax == "adaptive" and not adaptive_cutoffs(cfg.adaptive_cutoffs, vocab_size):
            log.warning("adaptive softmax: no cutoff of %s is below the vocabulary's %d words; "
                        "using a full softmax", list(cfg.adaptive_cutoffs), vocab_size)  # fmt: skip
            self.softmax = "full"
        self.word_dropout = cfg.word_dropout
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
        out_p = cfg.dropout if cfg.output_dropout is None else cfg.output_dropout
        self.out_drop = LockedDropout(out_p)
        self.head: nn.Module
        if self.softmax == "adaptive":
            tie = self.embed.weight if cfg.tie_weights else None
            self.head = adaptive_softmax(out_size, vocab_size, cfg.adaptive_cutoffs,
                                         cfg.adaptive_div, tie_to=tie)  # fmt: skip
        else:
            self.head = nn.Linear(out_size, vocab_size)
            if cfg.tie_weights:
                self.head.weight = self.embed.weight
        if cfg.init_range is not None:
            for p in self.parameters():
                nn.init.uniform_(p, -cfg.init_range, cfg.init_range)
            if getattr(self.rnn, "variants", None) is not None:  # its options' own init stays:
                self.rnn.reset_variant_parameters()  # layer-norm gains, the forget-gate bias...
        self._stepper: LayerStepper | None = None

    def features(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """``tokens (T, N)`` -> (the last layer's output after its dropout ``(T, N, O)``, state)."""
        x = embedding_dropout(self.embed.weight, tokens, self.word_dropout, self.training)
        out, state = self.rnn(self.embed_drop(x), state)  # (T, N, E) -> (T, N, O)
        return self.out_drop(out), state

    def log_probs(self, features: Tensor) -> Tensor:
        """``(..., O)`` -> log-probabilities over the vocabulary ``(..., V)``."""
        if self.softmax == "adaptive":
            flat = self.head.log_prob(features.reshape(-1, features.shape[-1]))
            return flat.view(*features.shape[:-1], -1)
        return F.log_softmax(self.head(features), dim=-1)

    def target_log_probs(self, features: Tensor, targets: Tensor) -> Tensor:
        """``log p(targets)`` of ``features (T, N, O)`` and ``targets (T, N)``: ``(T, N)``."""
        if self.softmax == "adaptive":
            flat = self.head(features.reshape(-1, features.shape[-1]), targets.reshape(-1))
            return flat.output.view(targets.shape)
        if type(self.head) is nn.Linear:  # not a quantized or otherwise swapped-in head
            return target_log_softmax(features, self.head.weight, self.head.bias, targets)
        logits = self.head(features)  # (T, N, V)
        return -F.cross_entropy(logits.flatten(0, -2), targets.reshape(-1), reduction="none").view(
            targets.shape
        )

    def forward(
        self, tokens: Tensor, state: Any = None, targets: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        """``(logits (T, N, V), state)``; with ``targets (T, N)``: ``(log p(targets) (T, N),
        state)`` (the training path: through ``forward``, so a DistributedDataParallel wrapper
        sees it)."""
        out, state = self.features(tokens, state)
        if targets is not None:
            return self.target_log_probs(out, targets), state
        if self.softmax == "adaptive":
            return self.log_probs(out), state
        return self.head(out), state  # (T, N, V)

    @torch.no_grad()
    def step(self, token: Tensor, state: Any) -> tuple[Tensor, Any]:
        """One decoding step: ``token (N,)`` -> ``(logits (N, V), state)`` (evaluation semantics)."""
        if self._stepper is None or self.training:
            self._stepper = LayerStepper(self.rnn)
        out, state = self._stepper.step(self.embed(token), state)
        if self.softmax == "adaptive":
            return self.log_probs(out), state
        return self.head(out), state

    def train(self, mode: bool = True) -> RNNLanguageModel:
        self._stepper = None  # weights may change while training
        return super().train(mode)
