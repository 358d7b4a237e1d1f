"""Character- and word-level language models (char-rnn, Zaremba et al. 2014, AWD-LSTM).

Model: embedding -> locked dropout -> rnnkit LSTM/GRU/RNN (any option) -> locked dropout -> linear
softmax, optionally tied to the embedding (Press & Wolf 2017; Inan et al. 2017). Trained with
truncated BPTT over ``batch_size`` parallel columns of the token stream (``rnnkit.data``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import Corpus, TBPTTStream, Vocab, default_corpus, load_corpus, tokenize
from ..data.corpus import corpus_from_text
from ..decode import LayerStepper, sample_logits
from ..layers import GRU, LSTM, RNN
from ..regularization import LockedDropout
from ..train.metrics import bits_per_char, perplexity
from .base import config_from_dict, register

log = logging.getLogger(__name__)

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


@dataclass
class LMConfig:
    """Language-model settings (the trainer's live in :class:`rnnkit.train.TrainerConfig`).

    ``data`` None trains on the embedded default corpus (Python standard-library sources,
    ``default_corpus_chars`` characters; see :func:`rnnkit.data.default_corpus`). A file is split by
    position: the first ``1 - valid_fraction - test_fraction`` train, then validation, then test.
    """

    data: str | None = None
    level: str = "char"
    default_corpus_chars: int = 1_000_000
    valid_fraction: float = 0.1
    test_fraction: float = 0.0
    min_count: int = 1
    max_vocab: int | None = None
    cell: str = "lstm"
    embed_size: int = 64
    hidden_size: int = 512
    num_layers: int = 1
    dropout: float = 0.0
    embed_dropout: float = 0.0
    tie_weights: bool = False
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    weight_drop: float = 0.0
    zoneout: float = 0.0
    peephole: bool = False
    forget_bias: float | None = None
    init_range: float | None = None
    batch_size: int = 32
    bptt: int = 100
    variable_bptt: bool = False
    eval_batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word', got {self.level!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        for name in ("embed_size", "hidden_size", "num_layers", "batch_size", "bptt"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cell != "lstm" and (self.peephole or self.forget_bias is not None):
            raise ValueError(f"peephole and forget_bias are LSTM options, not {self.cell}")


# name -> (LMConfig overrides, TrainerConfig overrides)
# fmt: off
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # Character level (Karpathy's char-rnn sizes, tuned for a 2-core CPU and a few minutes).
    "char-tiny": (
        dict(embed_size=32, hidden_size=128, num_layers=1, batch_size=16, bptt=64),
        dict(optimizer="adam", lr=3e-3, clip_norm=1.0, eval_every=200, eval_max_batches=20),
    ),
    "char": (
        dict(embed_size=64, hidden_size=512, num_layers=1, batch_size=32, bptt=100,
             eval_batch_size=64),
        dict(optimizer="adam", lr=3e-3, clip_norm=1.0, schedule="cosine", warmup_steps=50,
             eval_every=100, eval_max_batches=10),
    ),
    "char-large": (
        dict(embed_size=64, hidden_size=512, num_layers=2, dropout=0.2, batch_size=32, bptt=100,
             eval_batch_size=64),
        dict(optimizer="adam", lr=2e-3, clip_norm=1.0, schedule="cosine", warmup_steps=100,
             eval_every=250, eval_max_batches=10),
    ),
    # Word level: Zaremba, Sutskever & Vinyals 2014, "Recurrent Neural Network Regularization" (PTB).
    "small": (
        dict(level="word", embed_size=200, hidden_size=200, num_layers=2, batch_size=20, bptt=20,
             init_range=0.1),
        dict(optimizer="sgd", lr=1.0, clip_norm=5.0, epochs=13, schedule="plateau",
             decay_factor=2.0),
    ),
    "medium": (
        dict(level="word", embed_size=650, hidden_size=650, num_layers=2, dropout=0.5,
             embed_dropout=0.5, batch_size=20, bptt=35, init_range=0.05),
        dict(optimizer="sgd", lr=1.0, clip_norm=5.0, epochs=39, schedule="plateau",
             decay_factor=1.2),
    ),
    "large": (
        dict(level="word", embed_size=1500, hidden_size=1500, num_layers=2, dropout=0.65,
             embed_dropout=0.65, batch_size=20, bptt=35, init_range=0.04),
        dict(optimizer="sgd", lr=1.0, clip_norm=10.0, epochs=55, schedule="plateau",
             decay_factor=1.15),
    ),
}
# fmt: on


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
            layer_norm=cfg.layer_norm,
            recurrent_dropout=cfg.recurrent_dropout,
            weight_drop=cfg.weight_drop,
            zoneout=cfg.zoneout,
        )
        out_size = cfg.hidden_size
        if cfg.cell == "lstm":
            kwargs.update(peephole=cfg.peephole, forget_bias=cfg.forget_bias)
            if cfg.tie_weights and cfg.embed_size != cfg.hidden_size:
                kwargs["proj_size"] = out_size = cfg.embed_size  # project to the tied size
        elif cfg.tie_weights and cfg.embed_size != cfg.hidden_size:
            raise ValueError(
                f"tie_weights needs embed_size == hidden_size for {cfg.cell} "
                f"(got {cfg.embed_size} and {cfg.hidden_size}); LSTM projects instead"
            )
        self.rnn = CELLS[cfg.cell](cfg.embed_size, cfg.hidden_size, **kwargs)
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


class _Windows:
    """The TBPTT windows of one split and epoch as a list-like of ``(inputs, targets)`` ``(T, N)``."""

    def __init__(self, stream: TBPTTStream, epoch: int) -> None:
        self.stream, self.epoch = stream, epoch
        self.n = stream.num_windows(epoch)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.stream.get(self.epoch, index)


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
        from ..interop import lm_to_onnx

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

    def batches(self, split: str, epoch: int) -> _Windows:
        return _Windows(self.stream(split), epoch)

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
        data = {**state["config"], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(config_from_dict(LMConfig, data), Vocab.from_dict(state["vocab"]))

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
