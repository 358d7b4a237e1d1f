"""Sorting with a bidirectional LSTM (MXNet's ``example/bi-lstm-sort``): the task.

Input: a sequence of integers; output at each position ``i``: the element that belongs at ``i`` in
sorted order, a classification over the vocabulary per position (:mod:`.model`), in batches of
similar lengths (:class:`rnnkit.data.BucketSampler`, :mod:`.data`). Evaluation: per-token accuracy
and whole-sequence exact match, on the built-in test split also the probe sets.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...data.sequences import BucketSampler, pad_sequences
from ...data.synthetic import decode_chars, read_number_lines
from ..base import config_from_state, register
from ..batches import Batches
from ..splits import split_by_position
from .config import PRESETS, SortConfig
from .data import IGNORE, SortSet, builtin_split, encode_sequences, generate, sort_batches
from .model import SortNet

log = logging.getLogger(__name__)


@register("sort")
class SortingTask:
    """Sort sequences of integers with a bidirectional LSTM (MXNet bi-lstm-sort)."""

    Config = SortConfig
    PRESETS = PRESETS

    def __init__(self, cfg: SortConfig) -> None:
        self.cfg = cfg
        self._sets: dict[str, SortSet] = {}
        self._cache: dict[tuple[str, int], Batches] = {}
        if cfg.data is not None:
            seqs = read_number_lines(cfg.data, max_value=cfg.vocab_size)
            parts = split_by_position(seqs, cfg.valid_fraction, cfg.test_fraction, cfg.data,
                                      "sequences")  # fmt: skip
            self._sets = {k: self.encode(v) for k, v in parts.items()}
            log.info("%s: %d/%d/%d train/valid/test sequences", cfg.data,
                     *(len(parts[k]) for k in ("train", "valid", "test")))  # fmt: skip

    # ---- data
    def encode(self, seqs: list[np.ndarray]) -> SortSet:
        """Input and target ids of number sequences (the targets are the sorted sequences)."""
        return encode_sequences(seqs, self.cfg)

    def dataset(self, split: str, epoch: int = 0) -> SortSet:
        """The encoded examples of a split ('train', 'valid', 'test' or a probe set name)."""
        cfg = self.cfg
        if cfg.data is None and split == "train" and cfg.resample_train:
            seqs = generate(cfg, cfg.num_train, cfg.min_len, cfg.max_len, [cfg.seed, 0, epoch])
            return self.encode(seqs)
        if split not in self._sets:
            if cfg.data is not None:
                raise ValueError(f"unknown split {split!r} for {cfg.data}")
            self._sets[split] = self.encode(builtin_split(cfg, split))
        return self._sets[split]

    def probe_sets(self) -> list[str]:
        """Extra sets reported with the built-in test split."""
        if self.cfg.data is not None:
            return []
        return ["one_digit", "six_numbers"] if self.cfg.encoding == "chars" else ["gen"]

    # ---- TrainableTask protocol
    def build_model(self) -> SortNet:
        return SortNet(self.cfg)

    def batches(self, split: str, epoch: int) -> Batches:
        train = split == "train"
        key = (split, epoch if train else 0)
        if key not in self._cache:
            if train:  # keep only the current epoch's training batches
                self._cache = {k: v for k, v in self._cache.items() if k[0] != "train"}
            data = self.dataset(split, epoch)
            if len(data) == 0:
                self._cache[key] = sort_batches(data, [], self.cfg.num_classes)
                return self._cache[key]
            sampler = BucketSampler(
                [len(x) for x in data.inputs],
                self.cfg.batch_size if train else self.cfg.eval_batch_size,
                num_buckets=self.cfg.num_buckets,
                shuffle=train,
                seed=self.cfg.seed,
            )
            sampler.set_epoch(epoch)
            self._cache[key] = sort_batches(data, list(sampler), self.cfg.num_classes)
        return self._cache[key]

    def initial_state(self, batch: Any, device: torch.device) -> None:
        return None

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor, Tensor], state: Any):
        x, y, lengths = batch
        logits = model(x, lengths)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                               ignore_index=IGNORE)  # fmt: skip
        return loss, None, int(lengths.sum())

    def metrics(self, mean_loss: float) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"config": dataclasses.asdict(self.cfg)}

    @classmethod
    def from_state(cls, state: dict[str, Any], **overrides: Any) -> SortingTask:
        return cls(config_from_state(SortConfig, state, overrides))

    # ---- evaluation and prediction
    @torch.no_grad()
    def score(self, model: nn.Module, split: str) -> dict[str, float]:
        """``loss``, ``tokens``, ``token_accuracy`` and ``exact_match`` of ``model`` on a split."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total_loss = correct = tokens = exact = seqs = 0.0
        batches = self.batches(split, 0)
        try:
            for i in range(len(batches)):
                x, y, lengths = (t.to(device) for t in batches[i])
                logits = model(x, lengths)
                flat = F.cross_entropy(
                    logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="sum"
                )
                total_loss += float(flat)
                valid = y != IGNORE
                hit = (logits.argmax(-1) == y) & valid
                correct += float(hit.sum())
                tokens += float(valid.sum())
                exact += float((hit | ~valid).all(dim=0).sum())
                seqs += y.shape[1]
        finally:
            model.train(was_training)
        if not seqs:
            return {"loss": float("nan"), "tokens": 0, "token_accuracy": 0.0, "exact_match": 0.0}
        return {"loss": total_loss / tokens, "tokens": int(tokens),
                "token_accuracy": correct / tokens, "exact_match": exact / seqs}  # fmt: skip

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Loss, per-token accuracy, exact match on ``split``; with 'test', the probe sets too."""
        out: dict[str, Any] = self.score(model, split)
        if split == "test":
            for probe in self.probe_sets():
                res = self.score(model, probe)
                out[f"{probe}_exact_match"] = res["exact_match"]
                out[f"{probe}_token_accuracy"] = res["token_accuracy"]
        return out

    @torch.no_grad()
    def sort(self, model: nn.Module, seqs: list[list[int]]) -> list[list[int]]:
        """The model's sorted version of each sequence of numbers."""
        for s in seqs:
            if not s:
                raise ValueError("cannot sort an empty sequence")
            if min(s) < 0 or max(s) >= self.cfg.vocab_size:
                raise ValueError(f"numbers must lie in [0, {self.cfg.vocab_size}), got {s}")
        data = self.encode([np.asarray(s, dtype=np.int64) for s in seqs])
        model.eval()
        device = next(model.parameters()).device
        x, lengths = pad_sequences([torch.from_numpy(a) for a in data.inputs], self.cfg.num_classes)
        pred = model(x.to(device), lengths.to(device)).argmax(-1).T.cpu()  # (N, T)
        out = []
        for row, n in zip(pred.tolist(), lengths.tolist()):
            if self.cfg.encoding == "tokens":
                out.append(row[:n])
            else:
                text = decode_chars(row[:n])
                out.append([int(t) for t in text.split() if t.isdigit()])
        return out

    def predict(
        self, model: nn.Module, inputs: list[str], out_dir: Path | None = None
    ) -> list[str]:
        """Sort each input line of numbers (``"5 3 9 1"``); single-number inputs form one sequence
        (``rnnkit predict RUN 5 3 9 1``). Lines: ``input -> output`` and whether it is right."""
        parts = [s.replace(",", " ").split() for s in inputs]
        if parts and all(len(p) == 1 for p in parts):
            parts = [[p[0] for p in parts]]
        seqs = []
        for text, p in zip(inputs, parts):
            if not p or not all(x.isdigit() for x in p):
                raise ValueError(f"expected integers separated by spaces or commas, got {text!r}")
            seqs.append([int(x) for x in p])
        if not seqs:
            raise ValueError("nothing to sort: give numbers, e.g. 'rnnkit predict RUN 5 3 9 1'")
        lines = []
        for s, got in zip(seqs, self.sort(model, seqs)):
            ok = "ok" if got == sorted(s) else f"wrong (expected {' '.join(map(str, sorted(s)))})"
            lines.append(f"{' '.join(map(str, s))} -> {' '.join(map(str, got))}  {ok}")
        return lines

    @torch.no_grad()
    def accuracy_by_length(
        self, model: nn.Module, lengths: range, n: int = 500
    ) -> dict[int, float]:
        """Exact match of fresh built-in sequences of each length (token encoding)."""
        cfg = self.cfg
        out = {}
        for length in lengths:
            seqs = generate(cfg, n, length, length, [cfg.seed, 20, length])
            got = self.sort(model, [s.tolist() for s in seqs])
            out[length] = float(np.mean([g == sorted(s.tolist()) for g, s in zip(got, seqs)]))
        return out
