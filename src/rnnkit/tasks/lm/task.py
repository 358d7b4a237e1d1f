"""Character- and word-level language models (char-rnn, Zaremba et al. 2014, AWD-LSTM): the task.

Trained with truncated BPTT over ``batch_size`` parallel columns of the token stream
(:class:`rnnkit.data.TBPTTStream`); the model is :mod:`.model`'s, the settings :mod:`.config`'s.
"""

from __future__ import annotations

import dataclasses
import logging
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...data import Corpus, TBPTTStream, Vocab, default_corpus, load_corpus, tokenize
from ...data.corpus import corpus_from_text
from ...decode import sample_logits
from ...train.metrics import bits_per_char, perplexity
from ..base import config_from_state, register
from ..batches import Batches
from .config import PRESETS, LMConfig
from .model import RNNLanguageModel

log = logging.getLogger(__name__)


@register("lm")
class LanguageModelTask:
    """Character- or word-level language model on a corpus (default: the Python stdlib sources)."""

    Config = LMConfig
    PRESETS = PRESETS

    def __init__(self, cfg: LMConfig, vocab: Vocab | None = None) -> None:
        self.cfg = cfg
        self.corpus = self._load(cfg, vocab)
        self.vocab = self.corpus.vocab
        self._streams: dict[str, TBPTTStream] = {}
        log.info("corpus: %s", self.corpus.summary())

    @staticmethod
    def _load(cfg: LMConfig, vocab: Vocab | None) -> Corpus:
        kwargs = dict(
            valid_fraction=cfg.valid_fraction,
            test_fraction=cfg.test_fraction,
            min_count=cfg.min_count,
            max_size=cfg.max_vocab,
            vocab=vocab,
        )
        if cfg.data is None:
            text = default_corpus(cfg.default_corpus_chars)
            return corpus_from_text(text, cfg.level, source="python-stdlib", **kwargs)
        return load_corpus(cfg.data, cfg.level, **kwargs)

    @staticmethod
    def default_preset(flags: dict[str, Any]) -> str:
        """The preset used when none is named: ``char`` for character level, ``small`` for words."""
        return "small" if flags.get("level") == "word" else "char"

    def export_onnx(self, model: RNNLanguageModel, path: str) -> None:
        """Embedding -> recurrent layers -> softmax as one ONNX graph with state inputs/outputs."""
        from ...interop import lm_to_onnx

        lm_to_onnx(model.embed, model.rnn, model.head, path)

    # ---- TrainableTask protocol
    def build_model(self) -> RNNLanguageModel:
        return RNNLanguageModel(self.cfg, len(self.vocab))

    def stream(self, split: str) -> TBPTTStream:
        if split not in self._streams:
            train = split == "train"
            batch = self.cfg.batch_size if train else self.cfg.eval_batch_size
            tokens = self.corpus.split(split)
            batch = max(1, min(batch, (len(tokens) - 1) // 2))
            self._streams[split] = TBPTTStream.from_tokens(
                tokens,
                batch,
                self.cfg.bptt,
                variable=self.cfg.variable_bptt and train,
                seed=self.cfg.seed,
            )
        return self._streams[split]

    def batches(self, split: str, epoch: int) -> Batches[int, tuple[Tensor, Tensor]]:
        """The TBPTT windows of ``split`` and ``epoch``: ``(inputs (T, N), targets (T, N))``."""
        stream = self.stream(split)
        return Batches(range(stream.num_windows(epoch)), partial(stream.get, epoch))

    def initial_state(self, batch: Any, device: torch.device) -> Any:
        return None  # the layer starts from zeros

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor], state: Any):
        inputs, targets = batch
        logits, state = model(inputs, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return loss, state, targets.numel()

    def metrics(self, mean_loss: float) -> dict[str, float]:
        out = {"ppl": perplexity(mean_loss)}
        if self.cfg.level == "char":
            out["bpc"] = bits_per_char(mean_loss)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"config": dataclasses.asdict(self.cfg), "vocab": self.vocab.to_dict()}

    @classmethod
    def from_state(cls, state: dict[str, Any], **overrides: Any) -> LanguageModelTask:
        return cls(config_from_state(LMConfig, state, overrides), Vocab.from_dict(state["vocab"]))

    # ---- generation
    def generate(
        self,
        model: RNNLanguageModel,
        length: int = 200,
        prime: str = "",
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> str:
        """Sample ``length`` tokens after ``prime`` (which is included in the returned text)."""
        model.eval()
        device = next(model.parameters()).device
        gen = torch.Generator(device=device)
        gen.manual_seed(seed if seed is not None else torch.seed() % (2**63))
        prime_ids = self.encode_prime(prime)
        with torch.no_grad():
            logits, state = model(torch.tensor(prime_ids, device=device).view(-1, 1))
            logits = logits[-1]
            out = list(prime_ids)
            for _ in range(length):
                token = sample_logits(logits, temperature, top_k, top_p, gen)
                out.append(int(token))
                logits, state = model.step(token, state)
        return self.vocab.decode(out, self.cfg.level)

    def encode_prime(self, prime: str) -> list[int]:
        if not prime:
            eos = self.vocab.eos_index
            start = "\n" if "\n" in self.vocab else None
            if start is not None:
                return [self.vocab.stoi[start]]
            return [eos if eos is not None else 0]
        tokens = tokenize(prime, self.cfg.level)
        if (
            self.cfg.level == "word"
            and tokens
            and tokens[-1] == "<eos>"
            and not prime.endswith("\n")
        ):
            tokens = tokens[:-1]
        return self.vocab.encode(tokens)
