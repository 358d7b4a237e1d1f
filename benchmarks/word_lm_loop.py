"""Milliseconds per training batch of the classic word-LM loop, torch.nn.LSTM against rnnkit.LSTM
variants, interleaved in one process.

    python -m benchmarks.word_lm_loop [--batches 60] [--block 5] [--vocab 10000] [--json PATH]
    python -m benchmarks.word_lm --loop ...          (the same)

The loop is the classic small word-level model (embedding 200, 2-layer LSTM 200, dropout 0.2 on
the embeddings, between the layers and on the outputs, a linear softmax over ``--vocab`` words,
batch 20 x bptt 35, SGD with the gradient norm clipped at 0.25, the state carried and detached)
on synthetic tokens; only the recurrent layer changes between the models. The models take turns
in blocks of ``--block`` batches until each has run ``--batches``; the first block of each is a
warm-up and is not counted. Reported: the median ms/batch of each model and its ratio to
``torch.nn.LSTM`` measured side by side, once at the default thread count and once with
``torch.set_num_threads(1)``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import rnnkit

from .common import machine_info, machine_line, take_turns

EMBED, HIDDEN, LAYERS, DROPOUT, BATCH, BPTT, LR, CLIP = 200, 200, 2, 0.2, 20, 35, 20.0, 0.25

VARIANTS: dict[str, Callable[[], nn.Module]] = {
    "torch.nn.LSTM": lambda: nn.LSTM(EMBED, HIDDEN, LAYERS, dropout=DROPOUT),
    "rnnkit.LSTM": lambda: rnnkit.LSTM(EMBED, HIDDEN, LAYERS, dropout=DROPOUT),
    "layer_norm=True": lambda: rnnkit.LSTM(EMBED, HIDDEN, LAYERS, dropout=DROPOUT,
                                           layer_norm=True),
    "zoneout=0.05": lambda: rnnkit.LSTM(EMBED, HIDDEN, LAYERS, dropout=DROPOUT, zoneout=0.05),
    "layer_norm=True, zoneout=0.05": lambda: rnnkit.LSTM(EMBED, HIDDEN, LAYERS, dropout=DROPOUT,
                                                         layer_norm=True, zoneout=0.05),
    "recurrent_dropout=0.25": lambda: rnnkit.LSTM(EMBED, HIDDEN, LAYERS, dropout=DROPOUT,
                                                  recurrent_dropout=0.25),
    "weight_drop=0.5": lambda: rnnkit.LSTM(EMBED, HIDDEN, LAYERS, dropout=DROPOUT,
                                           weight_drop=0.5),
}  # fmt: skip


class LoopLM(nn.Module):
    """Embedding -> dropout -> ``rnn`` -> dropout -> linear; ``(T, N)`` -> logits ``(T, N, V)``."""

    def __init__(self, vocab: int, rnn: nn.Module) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, EMBED)
        self.drop = nn.Dropout(DROPOUT)
        self.rnn = rnn
        self.head = nn.Linear(HIDDEN, vocab)

    def forward(self, tokens: torch.Tensor, state=None):
        out, state = self.rnn(self.drop(self.embed(tokens)), state)  # (T, N, H)
        return self.head(self.drop(out)), state


class Runner:
    """One model, its optimizer, its carried state and its place in the data."""

    def __init__(self, name: str, vocab: int, data: torch.Tensor) -> None:
        torch.manual_seed(0)
        self.name, self.data = name, data
        self.model = LoopLM(vocab, VARIANTS[name]()).train()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        self.state, self.position = None, 0

    def batch(self) -> float:
        """One training batch; its wall time in seconds."""
        if self.position + BPTT + 1 > self.data.shape[0]:
            self.position, self.state = 0, None
        x = self.data[self.position : self.position + BPTT]  # (T, N)
        y = self.data[self.position + 1 : self.position + 1 + BPTT]
        self.position += BPTT
        start = time.perf_counter()
        logits, state = self.model(x, self.state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.opt.step()
        self.state = tuple(s.detach() for s in state)
        return time.perf_counter() - start


def interleaved(names: list[str], vocab: int, batches: int, block: int) -> dict[str, float]:
    """Median ms/batch of each model, the models taking turns in blocks of ``block`` batches."""
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, vocab, ((batches + block) * BPTT + 1, BATCH), generator=g)
    runners = [Runner(name, vocab, data) for name in names]
    times = take_turns([r.batch for r in runners], batches, block)
    return {r.name: 1e3 * statistics.median(t) for r, t in zip(runners, times)}


def run(batches: int, block: int, vocab: int) -> dict:
    """Both passes: the default thread count, then one thread."""
    names = list(VARIANTS)
    threads = torch.get_num_threads()
    passes = {}
    try:
        for n in (threads, 1):
            torch.set_num_threads(n)
            passes[f"{n} thread{'s' if n != 1 else ''}"] = interleaved(names, vocab, batches, block)
    finally:
        torch.set_num_threads(threads)
    return passes


def report(passes: dict, batches: int, vocab: int) -> str:
    lines = [f"word-LM training loop (emb {EMBED}, {LAYERS}x LSTM {HIDDEN}, dropout {DROPOUT}, "
             f"V={vocab}, batch {BATCH} x bptt {BPTT}, SGD, clip {CLIP}); median of {batches} "
             "batches per model, interleaved", ""]  # fmt: skip
    heads = list(passes)
    lines.append("| layer | " + " | ".join(f"ms/batch ({h}) | ratio ({h})" for h in heads) + " |")
    lines.append("|---|" + "---:|---:|" * len(heads))
    for name in VARIANTS:
        cells = []
        for h in heads:
            ms, base = passes[h][name], passes[h]["torch.nn.LSTM"]
            cells += [f"{ms:.1f}", f"{ms / base:.2f}x"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60, help="timed batches per model and pass")
    parser.add_argument("--block", type=int, default=5, help="batches per turn")
    parser.add_argument("--vocab", type=int, default=10000, help="synthetic vocabulary (PTB's)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.block < 1 or args.vocab < 2:
        raise SystemExit(
            f"--batches and --block expect integers >= 1 and --vocab >= 2, got {args.batches}, "
            f"{args.block}, {args.vocab}"
        )
    info = machine_info()
    passes = run(args.batches, args.block, args.vocab)
    print(machine_line(info))
    print(report(passes, args.batches, args.vocab))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": info, "ms_per_batch": passes, "batches": args.batches}, f,
                      indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
