"""Sequence-to-sequence learning with an encoder-decoder (:mod:`.model`): the task.

Training uses teacher forcing (optionally scheduled sampling); decoding is greedy or beam search
(:mod:`rnnkit.tasks.beam`). Data and batches: :mod:`.data`; attention figures: :mod:`.plots`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...data.sequences import BucketSampler, pad_sequences
from ...data.text import Vocab
from ...train.metrics import perplexity
from ..base import config_from_state, register
from ..batches import Batches
from ..beam import beam_search, greedy_search
from .config import PRESETS, Seq2SeqConfig
from .data import (
    BOS_ID,
    EOS,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    PairSet,
    build_vocab,
    pair_batches,
    raw_splits,
)
from .model import Seq2Seq
from .plots import plot_attention_weights

log = logging.getLogger(__name__)


@register("seq2seq")
class Seq2SeqTask:
    """Map source strings to target strings with an encoder-decoder (dates -> ISO by default)."""

    Config = Seq2SeqConfig
    PRESETS = PRESETS

    def __init__(self, cfg: Seq2SeqConfig, vocab: Vocab | None = None) -> None:
        self.cfg = cfg
        raw = raw_splits(cfg)
        self.vocab = vocab if vocab is not None else build_vocab(raw["train"], cfg.level)
        self.sets = {name: self.encode_pairs(p) for name, p in raw.items()}
        self._cache: dict[tuple[str, int], Batches] = {}
        sizes = [len(self.sets[s]) for s in ("train", "valid", "test")]
        log.info("seq2seq %s: %d/%d/%d train/valid/test pairs, %d tokens",
                 cfg.data or cfg.dataset, *sizes, len(self.vocab))  # fmt: skip

    def tokens(self, text: str) -> list[str]:
        return list(text) if self.cfg.level == "char" else text.split()

    def encode_pairs(self, pairs: list[tuple[str, str]]) -> PairSet:
        enc = self.vocab.encode
        return PairSet([enc(self.tokens(s)) for s, _ in pairs],
                       [enc(self.tokens(t)) for _, t in pairs], list(pairs))  # fmt: skip

    def decode_ids(self, ids: list[int]) -> str:
        words = [self.vocab.tokens[i] for i in ids if i >= len(SPECIALS) or i == UNK_ID]
        return ("" if self.cfg.level == "char" else " ").join(words)

    # ---- TrainableTask protocol
    def build_model(self) -> Seq2Seq:
        return Seq2Seq(self.cfg, len(self.vocab))

    def batches(self, split: str, epoch: int) -> Batches:
        train = split == "train"
        key = (split, epoch if train else 0)
        if key not in self._cache:
            if split not in self.sets:
                raise ValueError(f"unknown split {split!r}; expected one of {sorted(self.sets)}")
            data = self.sets[split]
            if len(data) == 0:
                return pair_batches(data, [])
            if train:
                self._cache = {k: v for k, v in self._cache.items() if k[0] != "train"}
            sampler = BucketSampler([len(s) for s in data.sources],
                                    self.cfg.batch_size if train else self.cfg.eval_batch_size,
                                    num_buckets=self.cfg.num_buckets, shuffle=train,
                                    seed=self.cfg.seed)  # fmt: skip
            sampler.set_epoch(epoch)
            self._cache[key] = pair_batches(data, list(sampler))
        return self._cache[key]

    def initial_state(self, batch: Any, device: torch.device) -> None:
        return None

    def loss(self, model: Seq2Seq, batch: tuple[Tensor, ...], state: Any):
        src, src_len, tgt_in, tgt_out = batch
        sampling = self.cfg.scheduled_sampling if model.training else 0.0
        logits = model(src, src_len, tgt_in, sampling)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD_ID)
        return loss, None, int((tgt_out != PAD_ID).sum())

    def metrics(self, mean_loss: float) -> dict[str, float]:
        return {"ppl": perplexity(mean_loss)}

    def state_dict(self) -> dict[str, Any]:
        return {"config": dataclasses.asdict(self.cfg), "vocab": self.vocab.to_dict()}

    @classmethod
    def from_state(cls, state: dict[str, Any], **overrides: Any) -> Seq2SeqTask:
        return cls(config_from_state(Seq2SeqConfig, state, overrides),
                   Vocab.from_dict(state["vocab"]))  # fmt: skip

    # ---- decoding, evaluation, prediction
    @torch.no_grad()
    def translate(
        self, model: Seq2Seq, sources: list[str], beam_size: int | None = None
    ) -> list[str]:
        """The model's output string for each source (greedy, or beam search with ``beam_size``
        > 1; default ``cfg.beam_size``)."""
        beam = beam_size or self.cfg.beam_size
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        out: list[str] = []
        try:
            for i in range(0, len(sources), self.cfg.eval_batch_size):
                chunk = sources[i : i + self.cfg.eval_batch_size]
                out.extend(self._decode_batch(model, chunk, beam, device))
        finally:
            model.train(was_training)
        return out

    def _decode_batch(
        self, model: Seq2Seq, sources: list[str], beam: int, device: torch.device
    ) -> list[str]:
        ids = [self.vocab.encode(self.tokens(s)) or [UNK_ID] for s in sources]
        src, src_len = pad_sequences([torch.tensor(x) for x in ids], PAD_ID)
        memory, mask, state = model.encode(src.to(device), src_len.to(device))
        if beam > 1:  # the per-example constants, repeated once per beam
            memory, mask = memory.repeat_interleave(beam, 1), mask.repeat_interleave(beam, 1)

        def step(token: Tensor, s: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
            logits, s, _ = model.step(token, s, memory, mask)
            return logits, s

        max_len = self.cfg.max_target_len + 1
        if beam > 1:
            found = beam_search(step, state, BOS_ID, EOS_ID, beam, max_len, state_batch_dim=1,
                                length_penalty=self.cfg.length_penalty)  # fmt: skip
            hyps = [h[0] for h in found]
        else:
            hyps = greedy_search(step, state, BOS_ID, EOS_ID, max_len, state_batch_dim=1)
        return [self.decode_ids(h.tokens) for h in hyps]

    @torch.no_grad()
    def evaluate(self, model: Seq2Seq, split: str) -> dict[str, float]:
        """Teacher-forced ``loss``/``ppl``, and ``exact_match`` of the decoded outputs (greedy or
        ``beam_size``); word level adds corpus ``bleu4`` (sacrebleu)."""
        batches = self.batches(split, 0)
        device = next(model.parameters()).device
        total = count = 0.0
        for i in range(len(batches)):
            batch = tuple(t.to(device) for t in batches[i])
            loss, _, n = self.loss(model, batch, None)
            total, count = total + float(loss) * n, count + n
        mean = total / count if count else float("nan")
        data = self.sets[split]
        hyps = self.translate(model, [s for s, _ in data.pairs])
        refs = [t for _, t in data.pairs]
        out = {"loss": mean, "tokens": int(count), **self.metrics(mean)}
        out["exact_match"] = sum(h == r for h, r in zip(hyps, refs)) / max(len(refs), 1)
        if self.cfg.level == "word" and refs:
            from ..text_metrics import bleu

            out["bleu4"] = bleu([h.split() for h in hyps], [[r.split()] for r in refs])["bleu4"]
        return out

    def predict(self, model: Seq2Seq, inputs: list[str], out_dir: Path | None = None) -> list[str]:
        """``source -> output`` for each input; with attention and ``out_dir``, a PNG of each
        input's attention weights (``attention_<i>.png``)."""
        if not inputs:
            raise ValueError("nothing to translate: give source strings, e.g. 'May 3, 1998'")
        outputs = self.translate(model, inputs)
        if out_dir is not None and self.cfg.attention != "none":
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            for i, src in enumerate(inputs):
                self.plot_attention(model, src, Path(out_dir) / f"attention_{i}.png")
        return [f"{s} -> {o}" for s, o in zip(inputs, outputs)]

    @torch.no_grad()
    def attention_map(self, model: Seq2Seq, source: str) -> tuple[list[str], list[str], Tensor]:
        """Greedy decoding of one source with its attention: ``(source tokens, output tokens,
        weights (T_out, S))``."""
        if self.cfg.attention == "none":
            raise ValueError("this model has no attention (attention='none')")
        model.eval()
        device = next(model.parameters()).device
        ids = self.vocab.encode(self.tokens(source)) or [UNK_ID]
        src = torch.tensor(ids, device=device).view(-1, 1)
        memory, mask, state = model.encode(src, torch.tensor([len(ids)], device=device))
        token, out, rows = torch.tensor([BOS_ID], device=device), [], []
        for _ in range(self.cfg.max_target_len + 1):
            logits, state, weights = model.step(token, state, memory, mask)
            token = logits.argmax(-1)
            rows.append(weights[0].cpu())
            if int(token) == EOS_ID:
                break
            out.append(int(token))
        names = [self.vocab.tokens[i] for i in out] + [EOS]
        return [self.vocab.tokens[i] for i in ids], names, torch.stack(rows)

    def plot_attention(self, model: Seq2Seq, source: str, path: str | Path) -> Path:
        """A PNG heat map of the attention weights of one decoded source."""
        src, out, weights = self.attention_map(model, source)
        title = f"{source!r} -> {self.decode_ids(self.vocab.encode(out[:-1]))!r}"
        return plot_attention_weights(src, out, weights, title, path)
