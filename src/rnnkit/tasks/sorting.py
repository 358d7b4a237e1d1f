"""Sorting with a bidirectional LSTM (MXNet's ``example/bi-lstm-sort``).

Input: a sequence of integers; output at each position ``i``: the element that belongs at ``i`` in
sorted order, a classification over the vocabulary per position. The model is an embedding, a
bidirectional rnnkit LSTM/GRU over the whole sequence (variable lengths through ``lengths=``,
batches of similar lengths through :class:`rnnkit.data.BucketSampler`), and a linear layer per
position.

Encodings (:mod:`rnnkit.data.synthetic`): ``tokens`` (one token per number, the issue's vocabulary
100, lengths 5-10 setting) and ``chars`` (MXNet's notebook: five numbers in 0-998 written as one
string over digits and space, padded to 19 characters, sorted number-wise and predicted character
by character).

Evaluation: per-token accuracy and whole-sequence exact match; on the built-in test split also the
probe sets: longer sequences (``gen_*``, lengths ``gen_min_len``-``gen_max_len``) for tokens, and
for chars the two cases MXNet's model failed on (``one_digit_*``: five numbers below 10;
``six_numbers_*``: six numbers).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.sequences import BucketSampler, pad_sequences
from ..data.synthetic import (
    CHAR_VOCAB,
    decode_chars,
    encode_chars,
    numbers_to_text,
    random_sequences,
    read_number_lines,
)
from ..layers import GRU, LSTM
from .base import config_from_dict, register

log = logging.getLogger(__name__)

CELLS = {"lstm": LSTM, "gru": GRU}
IGNORE = -100  # target value of padded positions


@dataclass
class SortConfig:
    """Sorting-task settings (the trainer's live in :class:`rnnkit.train.TrainerConfig`).

    ``data`` None generates sequences (``num_*`` of them; the training set is drawn afresh each
    epoch when ``resample_train``); a text file of one sequence per line is split by position:
    the first ``1 - valid_fraction - test_fraction`` train, then validation, then test.
    Numbers lie in ``[0, vocab_size)``; ``chars`` writes them as characters (MXNet: ``999``).
    """

    data: str | None = None
    encoding: str = "tokens"
    vocab_size: int = 100
    min_len: int = 5
    max_len: int = 10
    gen_min_len: int = 11
    gen_max_len: int = 20
    char_pad: int = 0
    num_train: int = 50_000
    num_valid: int = 2_000
    num_test: int = 5_000
    num_probe: int = 2_000
    resample_train: bool = True
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    cell: str = "lstm"
    embed_size: int = 64
    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.0
    batch_size: int = 128
    eval_batch_size: int = 512
    num_buckets: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.encoding not in ("tokens", "chars"):
            raise ValueError(f"encoding must be 'tokens' or 'chars', got {self.encoding!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        for name in ("vocab_size", "min_len", "embed_size", "hidden_size", "num_layers",
                     "batch_size", "eval_batch_size", "num_buckets", "num_train"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.min_len > self.max_len or self.gen_min_len > self.gen_max_len:
            raise ValueError(
                f"need min_len <= max_len and gen_min_len <= gen_max_len, got "
                f"{self.min_len}-{self.max_len} and {self.gen_min_len}-{self.gen_max_len}"
            )
        if not 0 <= self.valid_fraction + self.test_fraction < 1:
            raise ValueError(
                f"valid_fraction + test_fraction must be in [0, 1), got "
                f"{self.valid_fraction} + {self.test_fraction}"
            )

    @property
    def num_inputs(self) -> int:
        """Input ids: the numbers or characters, plus one padding id."""
        return self.num_classes + 1

    @property
    def num_classes(self) -> int:
        return len(CHAR_VOCAB) if self.encoding == "chars" else self.vocab_size


# fmt: off
# name -> (SortConfig overrides, TrainerConfig overrides)
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # The setting: vocabulary 100, lengths 5-10 (generalisation probed on 11-20).
    "default": (
        dict(hidden_size=128, num_layers=2, batch_size=128),
        dict(optimizer="adam", lr=3e-3, clip_norm=1.0, schedule="cosine", warmup_steps=200,
             epochs=20, eval_every=1000),
    ),
    # MXNet's notebook: 5 numbers in 0-999 as characters padded to 19, bi-LSTM 2 x 128, Adam 0.01
    # (its schedule: x0.75 every 10 epochs of 94 batches of 512; cosine here), batch 512.
    "mxnet": (
        dict(encoding="chars", vocab_size=1000, min_len=5, max_len=5, char_pad=19,
             num_train=48_000, num_valid=2_000, num_test=12_000, resample_train=False,
             hidden_size=128, num_layers=2, batch_size=512, num_buckets=1),
        dict(optimizer="adam", lr=1e-2, clip_norm=1.0, schedule="cosine", epochs=100,
             eval_every=940),
    ),
    "tiny": (
        dict(num_train=512, num_valid=64, num_test=64, num_probe=64, hidden_size=16,
             embed_size=8, num_layers=1, batch_size=32, eval_batch_size=64),
        dict(optimizer="adam", lr=1e-2, epochs=1),
    ),
}
# fmt: on


class SortNet(nn.Module):
    """Embedding -> bidirectional LSTM/GRU -> linear, one prediction per position.

    ``forward(tokens (T, N), lengths (N,)) -> logits (T, N, num_classes)``; outputs past each
    sequence's length are computed from zeros (rnnkit's ``lengths=`` contract) and must be ignored.
    """

    def __init__(self, cfg: SortConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.num_inputs, cfg.embed_size)
        self.rnn = CELLS[cfg.cell](
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


@dataclass
class SortSet:
    """Inputs and targets of one split: id arrays of shape ``(T_i,)`` (same length per pair)."""

    inputs: list[np.ndarray]
    targets: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.inputs)


class _Batches:
    """The batches of one split and epoch: ``(inputs (T, N), targets (T, N), lengths (N,))``."""

    def __init__(self, data: SortSet, index_batches: list[list[int]], pad: int) -> None:
        self.data, self.index_batches, self.pad = data, index_batches, pad

    def __len__(self) -> int:
        return len(self.index_batches)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        idx = self.index_batches[i]
        x, lengths = pad_sequences([torch.from_numpy(self.data.inputs[j]) for j in idx], self.pad)
        y, _ = pad_sequences([torch.from_numpy(self.data.targets[j]) for j in idx], IGNORE)
        return x, y, lengths


def sorted_targets(seqs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.sort(s) for s in seqs]


@register("sort")
class SortingTask:
    """Sort sequences of integers with a bidirectional LSTM (MXNet bi-lstm-sort)."""

    Config = SortConfig
    PRESETS = PRESETS

    def __init__(self, cfg: SortConfig) -> None:
        self.cfg = cfg
        self._sets: dict[str, SortSet] = {}
        self._cache: dict[tuple[str, int], _Batches] = {}
        if cfg.data is not None:
            seqs = read_number_lines(cfg.data, max_value=cfg.vocab_size)
            n_valid = int(round(len(seqs) * cfg.valid_fraction))
            n_test = int(round(len(seqs) * cfg.test_fraction))
            n_train = len(seqs) - n_valid - n_test
            if n_train < 1:
                raise ValueError(f"{cfg.data}: {len(seqs)} sequences leave none for training")
            parts = {"train": seqs[:n_train], "valid": seqs[n_train : n_train + n_valid],
                     "test": seqs[n_train + n_valid :]}  # fmt: skip
            self._sets = {k: self.encode(v) for k, v in parts.items()}
            log.info("%s: %d/%d/%d train/valid/test sequences", cfg.data, n_train, n_valid, n_test)

    # ---- data
    def encode(self, seqs: list[np.ndarray]) -> SortSet:
        """Input and target ids of number sequences (the targets are the sorted sequences)."""
        if self.cfg.encoding == "tokens":
            return SortSet(list(seqs), sorted_targets(seqs))
        pad = self.cfg.char_pad
        xs = [encode_chars(numbers_to_text(s, pad)) for s in seqs]
        ys = [encode_chars(numbers_to_text(np.sort(s), pad)) for s in seqs]
        return SortSet(xs, ys)

    def _generate(
        self, n: int, min_len: int, max_len: int, seed: list[int], high: int | None = None
    ):
        return random_sequences(n, 0, high or self.cfg.vocab_size, min_len, max_len, seed)

    def dataset(self, split: str, epoch: int = 0) -> SortSet:
        """The encoded examples of a split ('train', 'valid', 'test' or a probe set name)."""
        cfg = self.cfg
        if cfg.data is None and split == "train" and cfg.resample_train:
            seqs = self._generate(cfg.num_train, cfg.min_len, cfg.max_len, [cfg.seed, 0, epoch])
            return self.encode(seqs)
        if split not in self._sets:
            if cfg.data is not None:
                raise ValueError(f"unknown split {split!r} for {cfg.data}")
            self._sets[split] = self.encode(self._builtin(split))
        return self._sets[split]

    def _builtin(self, split: str) -> list[np.ndarray]:
        cfg = self.cfg
        counts = {"train": cfg.num_train, "valid": cfg.num_valid, "test": cfg.num_test}
        if split in counts:
            seed = [cfg.seed, 1 + list(counts).index(split)]
            return self._generate(counts[split], cfg.min_len, cfg.max_len, seed)
        n = cfg.num_probe
        if split == "gen":
            return self._generate(n, cfg.gen_min_len, cfg.gen_max_len, [cfg.seed, 10])
        if split == "one_digit":
            return self._generate(n, cfg.min_len, cfg.max_len, [cfg.seed, 11], high=10)
        if split == "six_numbers":
            return self._generate(n, cfg.max_len + 1, cfg.max_len + 1, [cfg.seed, 12])
        raise ValueError(f"unknown split {split!r}; expected train, valid, test or a probe set")

    def probe_sets(self) -> list[str]:
        """Extra sets reported with the built-in test split."""
        if self.cfg.data is not None:
            return []
        return ["one_digit", "six_numbers"] if self.cfg.encoding == "chars" else ["gen"]

    # ---- TrainableTask protocol
    def build_model(self) -> SortNet:
        return SortNet(self.cfg)

    def batches(self, split: str, epoch: int) -> _Batches:
        train = split == "train"
        key = (split, epoch if train else 0)
        if key not in self._cache:
            if train:  # keep only the current epoch's training batches
                self._cache = {k: v for k, v in self._cache.items() if k[0] != "train"}
            data = self.dataset(split, epoch)
            if len(data) == 0:
                self._cache[key] = _Batches(data, [], self.cfg.num_classes)
                return self._cache[key]
            sampler = BucketSampler(
                [len(x) for x in data.inputs],
                self.cfg.batch_size if train else self.cfg.eval_batch_size,
                num_buckets=self.cfg.num_buckets,
                shuffle=train,
                seed=self.cfg.seed,
            )
            sampler.set_epoch(epoch)
            self._cache[key] = _Batches(data, list(sampler), self.cfg.num_classes)
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
        data = {**state["config"], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(config_from_dict(SortConfig, data))

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
            seqs = self._generate(n, length, length, [cfg.seed, 20, length])
            got = self.sort(model, [s.tolist() for s in seqs])
            out[length] = float(np.mean([g == sorted(s.tolist()) for g, s in zip(got, seqs)]))
        return out


def plot_accuracy_by_length(
    acc: dict[int, float], train_range: tuple[int, int], path: str | Path, title: str = ""
) -> Path:
    """A PNG of exact match against sequence length, the training lengths shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.axvspan(train_range[0] - 0.5, train_range[1] + 0.5, color="0.9", label="training lengths")
    ax.plot(list(acc), [100 * v for v in acc.values()], marker="o")
    ax.set_xlabel("sequence length")
    ax.set_ylabel("exact match (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
