"""Sequence-to-sequence learning with an encoder-decoder of rnnkit layers (Sutskever et al. 2014).

Encoder: embedding -> (bi)LSTM/GRU over the padded source (``lengths=``). Decoder: embedding ->
LSTM/GRU -> linear softmax, started from the encoder's final state according to ``handoff`` -- the
question of the Gluon tutorial note on passing ``h`` versus ``h`` and ``c``:

- ``hc``: both ``h_n`` and ``c_n`` (LSTM; for GRU ``h`` is the whole state);
- ``h``: ``h_n`` only, the decoder's cell starting from zeros;
- ``none``: zeros (then only attention carries the source).

``attention``: ``luong`` (Luong et al. 2015, global attention with the "general" score
``h_t^T W_a m_s`` on the decoder output, ``tilde h_t = tanh(W_c [c_t; h_t])``) or ``bahdanau``
(Bahdanau et al. 2015, additive score ``v^T tanh(W_1 s_{t-1} + W_2 m_s)`` from the previous
decoder state, the context fed to the decoder with the next token), with padded source positions
masked. A bidirectional encoder's two directions are joined by a linear bridge (tanh for ``h``).

Training uses teacher forcing; ``scheduled_sampling`` p feeds the model's own previous argmax
instead of the reference token with probability p per step and example (Bengio et al. 2015).
Decoding is greedy or beam search (:mod:`rnnkit.tasks.beam`). Data: :mod:`rnnkit.data.dates`
(date normalisation, digit reversal) or a ``source<TAB>target`` file.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.dates import date_pairs, read_pairs, reversal_pairs
from ..data.sequences import BucketSampler, pad_sequences
from ..data.text import Vocab
from ..decode import LayerStepper
from ..layers import GRU, LSTM
from ..train.metrics import perplexity
from .base import config_from_dict, register
from .beam import beam_search, greedy_search

log = logging.getLogger(__name__)

CELLS = {"lstm": LSTM, "gru": GRU}
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = [PAD, BOS, EOS, UNK]
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)


@dataclass
class Seq2SeqConfig:
    """Seq2seq settings (the trainer's live in :class:`rnnkit.train.TrainerConfig`).

    ``data`` None generates the built-in ``dataset`` (``dates`` or ``reverse``: ``num_*`` pairs,
    validation and test sources kept out of training); a ``source<TAB>target`` file is split by
    position (the first ``1 - valid_fraction - test_fraction`` train). ``level``: ``char`` or
    ``word`` tokens. Sources/targets longer than ``max_source_len``/``max_target_len`` tokens are
    an error naming the line.
    """

    data: str | None = None
    dataset: str = "dates"
    level: str = "char"
    num_train: int = 50_000
    num_valid: int = 1_000
    num_test: int = 5_000
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    min_len: int = 3
    max_len: int = 12
    max_source_len: int = 64
    max_target_len: int = 32
    cell: str = "lstm"
    embed_size: int = 32
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0
    handoff: str = "hc"
    attention: str = "luong"
    scheduled_sampling: float = 0.0
    beam_size: int = 1
    length_penalty: float = 1.0
    batch_size: int = 64
    eval_batch_size: int = 500
    num_buckets: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        choices = dict(dataset=("dates", "reverse"), level=("char", "word"), cell=tuple(CELLS),
                       handoff=("h", "hc", "none"),
                       attention=("none", "luong", "bahdanau"))  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("embed_size", "hidden_size", "num_layers", "batch_size", "eval_batch_size",
                     "beam_size", "num_buckets", "max_source_len", "max_target_len"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.handoff == "none" and self.attention == "none":
            raise ValueError("handoff='none' with attention='none' leaves the decoder blind")
        if not 0.0 <= self.scheduled_sampling <= 1.0:
            raise ValueError(f"scheduled_sampling must be in [0, 1], got {self.scheduled_sampling}")
        if not 0 <= self.valid_fraction + self.test_fraction < 1:
            raise ValueError("valid_fraction + test_fraction must be in [0, 1)")


_ADAM = dict(optimizer="adam", lr=3e-3, clip_norm=1.0, schedule="cosine", warmup_steps=100)
# name -> (Seq2SeqConfig overrides, TrainerConfig overrides)
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # The target: date normalisation, test exact match >= 99% in 10 CPU minutes.
    "dates": (dict(attention="luong", handoff="hc"), dict(_ADAM, epochs=4, eval_every=500)),
    # The Gluon note's comparison, without attention: pass h and c, or h only.
    "dates-hc": (dict(attention="none", handoff="hc"), dict(_ADAM, epochs=4, eval_every=500)),
    "dates-h": (dict(attention="none", handoff="h"), dict(_ADAM, epochs=4, eval_every=500)),
    "reverse": (
        dict(dataset="reverse", num_train=20_000, attention="luong"),
        dict(_ADAM, epochs=3, eval_every=300),
    ),
    "tiny": (
        dict(
            dataset="reverse",
            num_train=512,
            num_valid=64,
            num_test=64,
            min_len=2,
            max_len=5,
            embed_size=8,
            hidden_size=16,
            batch_size=32,
        ),
        dict(optimizer="adam", lr=1e-2, epochs=1),
    ),
}


# ---------------------------------------------------------------- the model


class Seq2Seq(nn.Module):
    """Encoder-decoder. ``forward(src (S, N), src_len (N,), tgt_in (T, N)) -> logits (T, N, V)``
    with teacher forcing; :meth:`start` and :meth:`step` decode one token at a time.

    Decoder state: a dict of tensors whose batch dimension is 1 -- ``rnn`` (the layer's state,
    ``(L, N, H)`` or a tuple with ``c``) and, with Bahdanau attention, ``top`` ``(1, N, H)`` (the
    last decoder output).
    """

    def __init__(self, cfg: Seq2SeqConfig, vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        cell, h, dirs = CELLS[cfg.cell], cfg.hidden_size, 2 if cfg.bidirectional else 1
        self.lstm = cfg.cell == "lstm"
        self.embed = nn.Embedding(vocab_size, cfg.embed_size, padding_idx=PAD_ID)
        drop = cfg.dropout if cfg.num_layers > 1 else 0.0
        self.encoder = cell(cfg.embed_size, h, cfg.num_layers, dropout=drop,
                            bidirectional=cfg.bidirectional)  # fmt: skip
        self.mem_size = dirs * h
        extra = self.mem_size if cfg.attention == "bahdanau" else 0
        self.decoder = cell(cfg.embed_size + extra, h, cfg.num_layers, dropout=drop)
        self.bridge_h = nn.Linear(dirs * h, h) if cfg.bidirectional else None
        self.bridge_c = nn.Linear(dirs * h, h) if cfg.bidirectional and self.lstm else None
        if cfg.attention == "luong":
            self.w_a = nn.Linear(h, self.mem_size, bias=False)
        elif cfg.attention == "bahdanau":
            self.w_1, self.w_2 = nn.Linear(h, h, bias=False), nn.Linear(self.mem_size, h)
            self.v = nn.Linear(h, 1, bias=False)
        self.combine = nn.Linear(self.mem_size + h, h) if cfg.attention != "none" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(h, vocab_size)
        self._stepper: LayerStepper | None = None

    def train(self, mode: bool = True) -> Seq2Seq:
        self._stepper = None  # weights may change while training
        return super().train(mode)

    # ---- encoder and handoff
    def encode(self, src: Tensor, src_len: Tensor) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """``(memory (S, N, D*H), mask (S, N) True at real tokens, initial decoder state)``."""
        memory, state = self.encoder(self.drop(self.embed(src)), lengths=src_len)
        mask = torch.arange(src.shape[0], device=src.device)[:, None] < src_len.to(src.device)
        h, c = state if self.lstm else (state, None)
        h0 = self._join(h, self.bridge_h, torch.tanh)
        c0 = self._join(c, self.bridge_c, None) if c is not None else None
        if self.cfg.handoff == "none":
            h0 = torch.zeros_like(h0)
        if c0 is not None and self.cfg.handoff != "hc":
            c0 = torch.zeros_like(c0)
        dec: dict[str, Any] = {"rnn": (h0, c0) if self.lstm else h0}
        if self.cfg.attention == "bahdanau":
            dec["top"] = h0[-1:]
        return memory, mask, dec

    def _join(self, s: Tensor, bridge: nn.Linear | None, act) -> Tensor:
        if bridge is None:
            return s
        layers, n = self.cfg.num_layers, s.shape[1]
        s = s.view(layers, 2, n, -1).permute(0, 2, 1, 3).reshape(layers, n, -1)  # fwd | bwd
        s = bridge(s)
        return act(s) if act is not None else s

    # ---- attention
    def attend(self, query: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``query (T, N, H)`` over ``memory (S, N, M)`` ->
        ``(context (T, N, M), weights (T, N, S))``."""
        if self.cfg.attention == "luong":
            keys = self.w_a(query)  # (T, N, M)
            scores = torch.einsum("tnm,snm->tns", keys, memory)
        else:
            proj = self.w_1(query).unsqueeze(2) + self.w_2(memory).permute(1, 0, 2).unsqueeze(0)
            scores = self.v(torch.tanh(proj)).squeeze(-1)  # (T, N, S)
        scores = scores.masked_fill(~mask.T.unsqueeze(0), float("-inf"))
        weights = scores.softmax(-1)
        return torch.einsum("tns,snm->tnm", weights, memory), weights

    def _logits(self, out: Tensor, context: Tensor | None) -> Tensor:
        if context is not None:
            out = torch.tanh(self.combine(torch.cat([context, out], -1)))
        return self.out(self.drop(out))

    # ---- teacher forcing
    def forward(
        self, src: Tensor, src_len: Tensor, tgt_in: Tensor, sampling: float = 0.0
    ) -> Tensor:
        memory, mask, state = self.encode(src, src_len)
        if self.cfg.attention != "bahdanau" and sampling == 0.0:  # the whole target at once
            out, _ = self.decoder(self.drop(self.embed(tgt_in)), state["rnn"])
            context = self.attend(out, memory, mask)[0] if self.cfg.attention == "luong" else None
            return self._logits(out, context)
        logits, token = [], tgt_in[0]
        for t in range(tgt_in.shape[0]):
            if t > 0:
                token = tgt_in[t]
                if sampling > 0.0:
                    own = logits[-1].argmax(-1).detach()
                    token = torch.where(
                        torch.rand_like(token, dtype=torch.float) < sampling, own, token
                    )
            step_logits, state, _ = self._step(token, state, memory, mask, stepper=None)
            logits.append(step_logits)
        return torch.stack(logits)

    # ---- one step
    def _step(
        self, token: Tensor, state: dict[str, Any], memory: Tensor, mask: Tensor,
        stepper: LayerStepper | None,
    ) -> tuple[Tensor, dict[str, Any], Tensor | None]:  # fmt: skip
        x = self.drop(self.embed(token))  # (N, E)
        if self.cfg.attention == "bahdanau":
            context, weights = self.attend(state["top"], memory, mask)
            x = torch.cat([x, context[0]], -1)
        if stepper is not None:
            out, rnn = stepper.step(x, state["rnn"])
        else:
            out, rnn = self.decoder(x.unsqueeze(0), state["rnn"])
            out = out[0]
        new: dict[str, Any] = {"rnn": rnn}
        if self.cfg.attention == "luong":
            context, weights = self.attend(out.unsqueeze(0), memory, mask)
        if self.cfg.attention == "bahdanau":
            new["top"] = out.unsqueeze(0)
        if self.cfg.attention == "none":
            return self._logits(out, None), new, None
        return self._logits(out, context[0]), new, weights[0]

    @torch.no_grad()
    def step(self, token: Tensor, state: dict[str, Any], memory: Tensor, mask: Tensor):
        """One decoding step (evaluation semantics): ``(logits (N, V), state, weights (N, S) or
        None)``."""
        if self._stepper is None:
            self._stepper = LayerStepper(self.decoder)
        return self._step(token, state, memory, mask, self._stepper)


# ---------------------------------------------------------------- the task


@dataclass
class PairSet:
    """Token id lists of one split: ``sources[i]``, ``targets[i]`` (no specials) and the texts."""

    sources: list[list[int]]
    targets: list[list[int]]
    pairs: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.pairs)


class _Batches:
    """``(src (S, N), src_len (N,), tgt_in (T, N), tgt_out (T, N))``; ``tgt_in`` starts with
    ``<s>``, ``tgt_out`` ends with ``</s>``, padding is ``<pad>`` (id 0)."""

    def __init__(self, data: PairSet, index_batches: list[list[int]]) -> None:
        self.data, self.index_batches = data, index_batches

    def __len__(self) -> int:
        return len(self.index_batches)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        idx = self.index_batches[i]
        src, src_len = pad_sequences([torch.tensor(self.data.sources[j]) for j in idx], PAD_ID)
        tgt = [self.data.targets[j] for j in idx]
        tgt_in, _ = pad_sequences([torch.tensor([BOS_ID, *t]) for t in tgt], PAD_ID)
        tgt_out, _ = pad_sequences([torch.tensor([*t, EOS_ID]) for t in tgt], PAD_ID)
        return src, src_len, tgt_in, tgt_out


@register("seq2seq")
class Seq2SeqTask:
    """Map source strings to target strings with an encoder-decoder (dates -> ISO by default)."""

    Config = Seq2SeqConfig
    PRESETS = PRESETS

    def __init__(self, cfg: Seq2SeqConfig, vocab: Vocab | None = None) -> None:
        self.cfg = cfg
        raw = self._raw_splits(cfg)
        self.vocab = vocab if vocab is not None else _build_vocab(raw["train"], cfg.level)
        self.sets = {name: self.encode_pairs(p) for name, p in raw.items()}
        self._cache: dict[tuple[str, int], _Batches] = {}
        sizes = [len(self.sets[s]) for s in ("train", "valid", "test")]
        log.info("seq2seq %s: %d/%d/%d train/valid/test pairs, %d tokens",
                 cfg.data or cfg.dataset, *sizes, len(self.vocab))  # fmt: skip

    def tokens(self, text: str) -> list[str]:
        return list(text) if self.cfg.level == "char" else text.split()

    def _raw_splits(self, cfg: Seq2SeqConfig) -> dict[str, list[tuple[str, str]]]:
        if cfg.data is not None:
            size = len if cfg.level == "char" else (lambda s: len(s.split()))
            pairs = read_pairs(cfg.data, cfg.max_source_len, cfg.max_target_len, size)
            n_valid = int(round(len(pairs) * cfg.valid_fraction))
            n_test = int(round(len(pairs) * cfg.test_fraction))
            n_train = len(pairs) - n_valid - n_test
            if n_train < 1:
                raise ValueError(f"{cfg.data}: {len(pairs)} pairs leave none for training")
            return {"train": pairs[:n_train], "valid": pairs[n_train : n_train + n_valid],
                    "test": pairs[n_train + n_valid :]}  # fmt: skip
        # test first, then valid, then train: each excludes the sources drawn before it
        out: dict[str, list[tuple[str, str]]] = {}
        seen: set[str] = set()
        for i, (name, n) in enumerate((("test", cfg.num_test), ("valid", cfg.num_valid),
                                       ("train", cfg.num_train))):  # fmt: skip
            seed = cfg.seed * 10 + i
            if cfg.dataset == "dates":
                out[name] = date_pairs(n, seed, exclude=seen)
            else:
                out[name] = reversal_pairs(n, cfg.min_len, cfg.max_len, seed, exclude=seen)
            seen.update(s for s, _ in out[name])
        for pairs in out.values():
            for s, t in pairs:
                if len(s) > cfg.max_source_len or len(t) > cfg.max_target_len:
                    raise ValueError(f"built-in {cfg.dataset} pair {(s, t)} is longer than "
                                     f"max_source_len/max_target_len")  # fmt: skip
        return out

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

    def batches(self, split: str, epoch: int) -> _Batches:
        train = split == "train"
        key = (split, epoch if train else 0)
        if key not in self._cache:
            if split not in self.sets:
                raise ValueError(f"unknown split {split!r}; expected one of {sorted(self.sets)}")
            data = self.sets[split]
            if len(data) == 0:
                return _Batches(data, [])
            if train:
                self._cache = {k: v for k, v in self._cache.items() if k[0] != "train"}
            sampler = BucketSampler([len(s) for s in data.sources],
                                    self.cfg.batch_size if train else self.cfg.eval_batch_size,
                                    num_buckets=self.cfg.num_buckets, shuffle=train,
                                    seed=self.cfg.seed)  # fmt: skip
            sampler.set_epoch(epoch)
            self._cache[key] = _Batches(data, list(sampler))
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
        data = {**state["config"], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(config_from_dict(Seq2SeqConfig, data), Vocab.from_dict(state["vocab"]))

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
            from .text_metrics import bleu

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
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        src, out, weights = self.attention_map(model, source)
        fig, ax = plt.subplots(figsize=(max(4, 0.3 * len(src) + 1.5), max(3, 0.3 * len(out) + 1)))
        ax.imshow(weights.numpy(), cmap="viridis", aspect="auto", vmin=0, vmax=1)
        ax.set_xticks(range(len(src)), [repr(t)[1:-1] for t in src], fontsize=8)
        ax.set_yticks(range(len(out)), out, fontsize=8)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        ax.set_title(f"{source!r} -> {self.decode_ids(self.vocab.encode(out[:-1]))!r}", fontsize=9)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def _build_vocab(pairs: list[tuple[str, str]], level: str) -> Vocab:
    """Specials (``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, ``<unk>`` 3), then the sorted tokens."""
    split = list if level == "char" else str.split
    tokens = sorted({t for s, g in pairs for t in (*split(s), *split(g))} - set(SPECIALS))
    return Vocab(SPECIALS + tokens, level=level)
