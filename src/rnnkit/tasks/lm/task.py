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
from torch import Tensor, nn

from ...data import Corpus, TBPTTStream, Vocab, default_corpus, load_corpus, tokenize
from ...data.corpus import corpus_from_text
from ...data.text import EOS, UNK
from ...data.wordtext import detokenize as detokenize_text
from ...data.wordtext import retokenize
from ...decode import sample_logits
from ...train.metrics import bits_per_char, perplexity
from ..base import config_from_state, register
from ..batches import Batches
from .cache import CacheConfig
from .config import PRESETS, LMConfig
from .dynamic import DynamicEvalConfig
from .model import RNNLanguageModel
from .ngram import DEFAULT_NGRAM_ORDER, KneserNey
from .online_eval import evaluate_online, tune_cache, tune_ngram

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
        self._ngram: KneserNey | None = None
        self._ngram_log_probs: dict[str, Tensor] = {}
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
        """The preset used when none is named: ``char`` for character level, ``word`` for words
        (Zaremba et al.'s ``small``, ``medium`` and ``large`` by name)."""
        return "word" if flags.get("level") == "word" else "char"

    def export_onnx(self, model: RNNLanguageModel, path: str) -> None:
        """Embedding -> recurrent layers -> softmax as one ONNX graph with state inputs/outputs
        (an adaptive softmax's output is its log-probabilities)."""
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
        """Mean negative log-likelihood (nats per token) of ``batch = (inputs, targets)``, both
        ``(T, N)``; the state carried to the next window; the number of targets."""
        inputs, targets = batch
        target_log_probs, state = model(inputs, state, targets=targets)  # (T, N)
        return -target_log_probs.mean(), state, targets.numel()

    def lr_scale(self, batch: tuple[Tensor, Tensor]) -> float:
        """AWD-LSTM's learning rate for a variable window: ``length / bptt`` (Merity et al. 2017,
        section 4.1), so that short windows do not get the weight of long ones; 1 for fixed
        windows."""
        return batch[0].shape[0] / self.cfg.bptt if self.cfg.variable_bptt else 1.0

    def metrics(self, mean_loss: float) -> dict[str, float]:
        out = {"ppl": perplexity(mean_loss)}
        if self.cfg.level == "char":
            out["bpc"] = bits_per_char(mean_loss)
        return out

    def evaluate_online(
        self,
        model: RNNLanguageModel,
        split: str,
        dynamic: DynamicEvalConfig | None = None,
        cache: CacheConfig | None = None,
        ngram_weight: float | None = None,
    ) -> dict[str, Any]:
        """``split`` read with dynamic evaluation and/or the continuous cache, mixed with the
        n-gram at ``ngram_weight`` unless None (:func:`.online_eval.evaluate_online`); ``model``
        is left unchanged."""
        return evaluate_online(self, model, split, dynamic, cache, ngram_weight)

    # ---- the n-gram mixed into the evaluation (cfg.ngram_order > 0)
    @property
    def ngram_order(self) -> int:
        """The order of the n-gram evaluation mixes in: ``cfg.ngram_order``, or
        :data:`.ngram.DEFAULT_NGRAM_ORDER` when the run has none."""
        return self.cfg.ngram_order or DEFAULT_NGRAM_ORDER

    def ngram_log_probs(self, split: str) -> Tensor:
        """``log p_ngram`` of each token of ``split`` given the ones before it ``(L,)`` float64,
        from the interpolated Kneser-Ney model of the training split (:mod:`.ngram`) of order
        :attr:`ngram_order`."""
        if self._ngram is None:
            train = self.corpus.split("train").numpy()
            self._ngram = KneserNey(train, len(self.vocab), self.ngram_order)
        if split not in self._ngram_log_probs:
            tokens = self.corpus.split(split).numpy()
            self._ngram_log_probs[split] = torch.from_numpy(self._ngram.log_probs(tokens))
        return self._ngram_log_probs[split]

    def tune_ngram(
        self,
        model: RNNLanguageModel,
        split: str = "valid",
        dynamic: DynamicEvalConfig | None = None,
        cache: CacheConfig | None = None,
    ) -> float:
        """The n-gram's weight that scores ``split`` best with ``model`` read this way
        (:func:`.online_eval.tune_ngram`)."""
        return tune_ngram(self, model, split, dynamic, cache)

    def tune_cache(
        self, model: RNNLanguageModel, split: str = "valid", size: int = CacheConfig.size
    ) -> tuple[CacheConfig, list[dict[str, float]]]:
        """The cache settings that read ``split`` best (:func:`.online_eval.tune_cache`)."""
        return tune_cache(self, model, split, size=size)

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
        allow_unk: bool = False,
        detokenize: bool = True,
    ) -> str:
        """Sample ``length`` tokens after ``prime`` (which is included in the returned text).

        ``<unk>`` is never drawn unless ``allow_unk``. At word level the text is detokenised
        (:func:`rnnkit.data.wordtext.detokenize`: WikiText's ``@-@`` joiners and the spaces around
        punctuation undone, ``<eos>`` as a newline) unless ``detokenize=False``.
        """
        model.eval()
        device = next(model.parameters()).device
        gen = torch.Generator(device=device)
        gen.manual_seed(seed if seed is not None else torch.seed() % (2**63))
        prime_ids = self.encode_prime(prime)
        unk = None if allow_unk else self.vocab.unk_index
        with torch.no_grad():
            logits, state = model(torch.tensor(prime_ids, device=device).view(-1, 1))
            logits = logits[-1]
            out = list(prime_ids)
            for _ in range(length):
                if unk is not None:
                    logits[..., unk] = float("-inf")
                token = sample_logits(logits, temperature, top_k, top_p, gen)
                out.append(int(token))
                logits, state = model.step(token, state)
        text = self.vocab.decode(out, self.cfg.level)
        return detokenize_text(text) if detokenize and self.cfg.level == "word" else text

    def encode_prime(self, prime: str) -> list[int]:
        """The ids of ``prime``: its characters, or its words line by line (a newline inside it is
        ``<eos>``). A word not in the vocabulary is split WikiText-style
        (:func:`rnnkit.data.wordtext.retokenize`: ``film's`` -> ``film 's``); what is still
        unknown reads as ``<unk>`` with a logged warning (a ValueError when the vocabulary has no
        ``<unk>``). An empty prime starts from a newline (or ``<eos>``)."""
        if self.cfg.level == "char" and prime:
            return self.vocab.encode(tokenize(prime, "char"))
        tokens: list[str] = []
        for k, line in enumerate(prime.split("\n")):
            if k:
                tokens.append(EOS)
            for word in line.split():
                tokens.extend([word] if word in self.vocab else retokenize(word) or [word])
        if not tokens:
            eos = self.vocab.eos_index
            start = "\n" if "\n" in self.vocab else None
            if start is not None:
                return [self.vocab.stoi[start]]
            return [eos if eos is not None else 0]
        unknown = sorted({t for t in tokens if t not in self.vocab})
        if unknown:
            if self.vocab.unk_index is None:
                raise ValueError(
                    f"prime words {unknown} are not in the vocabulary ({len(self.vocab)} words, "
                    f"no {UNK}): expected words of the training text"
                )
            log.warning("prime words not in the vocabulary, read as %s: %s", UNK, unknown)
        return self.vocab.encode(tokens)
