"""Word-level language models on real text under one wall-clock budget, side by side (issue 12): a
plain torch.nn loop with the classic small recipe's published defaults against rnnkit's word recipe.

    python -m benchmarks.word_lm [--budget 300] [--data DIR] [--preset NAME] [--json PATH]
    python -m benchmarks.word_lm --loop [--batches 60] [--block 5] [--vocab 10000]

(a) **plain loop**, written here with torch.nn alone: embedding 200, 2-layer ``torch.nn.LSTM`` 200,
    dropout 0.2 (embeddings, between the layers, outputs), an untied linear softmax, weights
    uniform in +-0.1, SGD at lr 20 with the gradient norm clipped at 0.25, batch 20 x bptt 35, the
    rate divided by 4 after an epoch whose validation loss did not improve; the weights of the best
    validation loss are the ones tested.
(b) **rnnkit**: ``rnnkit train lm --data DIR --level word --time-budget B`` (the default word
    preset unless ``--preset``), then its best checkpoint evaluated as ``rnnkit evaluate RUN
    --split S`` does (with the preset's Kneser-Ney n-gram mixed in, its weight chosen on the
    validation split), as ``--no-ngram`` does (the network alone), and as ``--cache
    --cache-tune`` does (the continuous cache of Grave et al. 2017, its theta and lambda chosen
    on the validation split).

Both read the same corpus (``rnnkit.data.load_corpus``: the files' lines with ``<eos>``, the
vocabulary of the training file) and stop when the budget is spent, the budget covering training
and the validation evaluations (room is kept for the last one); the test evaluation comes after.
The two run one after the other, so a machine shared with other work can favour either: the load
average is printed with each. ``--data`` defaults to ``$RNNKIT_WORDLM_DATA``, else
``../shared/data/wikitext-2-slice`` next to the repository. ``--loop`` runs
:mod:`benchmarks.word_lm_loop` instead (milliseconds per batch of the plain loop with torch.nn.LSTM
and rnnkit.LSTM variants).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .common import machine_info, machine_line

DATA_ENV = "RNNKIT_WORDLM_DATA"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "wikitext-2-slice"
LAYOUTS = (
    ("train.txt", "valid.txt", "test.txt"),
    ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"),
)


def data_dir(given: str | None) -> Path:
    """The corpus directory: ``given``, else ``$RNNKIT_WORDLM_DATA``, else the default; exits with
    a message naming the path and the files expected when they are not there."""
    path = Path(given or os.environ.get(DATA_ENV) or DEFAULT_DATA)
    for layout in LAYOUTS:
        if all((path / name).is_file() for name in layout):
            return path
    names = " or ".join("/".join(layout) for layout in LAYOUTS)
    raise SystemExit(
        f"benchmarks.word_lm: no corpus at {path}: expected a directory with {names}; give "
        f"--data DIR or set {DATA_ENV}"
    )


# ------------------------------------------------------------------------------ (a) plain loop


@dataclass
class PlainConfig:
    """The classic small word-LM recipe's published defaults."""

    embed: int = 200
    hidden: int = 200
    layers: int = 2
    dropout: float = 0.2
    lr: float = 20.0
    clip: float = 0.25
    batch: int = 20
    bptt: int = 35
    eval_batch: int = 10
    anneal: float = 4.0
    seed: int = 1111


class PlainLM(nn.Module):
    """Embedding -> dropout -> nn.LSTM -> dropout -> linear: ``(T, N)`` -> logits ``(T, N, V)``."""

    def __init__(self, vocab: int, cfg: PlainConfig) -> None:
        super().__init__()
        self.drop = nn.Dropout(cfg.dropout)
        self.embed = nn.Embedding(vocab, cfg.embed)
        self.lstm = nn.LSTM(cfg.embed, cfg.hidden, cfg.layers, dropout=cfg.dropout)
        self.out = nn.Linear(cfg.hidden, vocab)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.uniform_(self.out.weight, -0.1, 0.1)
        nn.init.zeros_(self.out.bias)

    def forward(self, tokens: torch.Tensor, state=None):
        out, state = self.lstm(self.drop(self.embed(tokens)), state)
        return self.out(self.drop(out)), state


def columns(ids: torch.Tensor, n: int) -> torch.Tensor:
    """``(L,)`` -> ``(L // n, n)``: column ``j`` is the ``j``-th of ``n`` equal stretches."""
    steps = ids.numel() // n
    return ids[: steps * n].view(n, steps).t().contiguous()


@torch.no_grad()
def mean_loss(model: nn.Module, data: torch.Tensor, bptt: int) -> float:
    """Token-weighted mean cross-entropy over ``data (S, N)`` in windows, the state carried."""
    model.eval()
    total, count, state = 0.0, 0, None
    for start in range(0, data.shape[0] - 1, bptt):
        x = data[start : start + bptt]
        y = data[start + 1 : start + 1 + x.shape[0]]
        x = x[: y.shape[0]]
        logits, state = model(x, state)
        total += F.cross_entropy(logits.flatten(0, 1), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    model.train()
    return total / count


def plain_loop(corpus, cfg: PlainConfig, budget: float) -> dict:
    """Train (a) until ``budget`` seconds are spent (validation included), then test its best."""
    torch.manual_seed(cfg.seed)
    model = PlainLM(len(corpus.vocab), cfg)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    train = columns(corpus.train, cfg.batch)
    valid = columns(corpus.valid, cfg.eval_batch)
    start = time.monotonic()
    train_seconds, tokens, steps, eval_seconds = 0.0, 0, 0, 0.0
    best, best_state, lr, epoch, out_of_time = math.inf, None, cfg.lr, 0, False
    validations: list[dict] = []  # per epoch: where it ended, its valid perplexity, the rate

    def validate() -> None:
        nonlocal best, best_state, lr, eval_seconds
        t = time.monotonic()
        loss = mean_loss(model, valid, cfg.bptt)
        eval_seconds = time.monotonic() - t
        validations.append({"steps": steps, "valid_ppl": math.exp(loss), "lr": lr})
        if loss < best:
            best, best_state = loss, {k: v.clone() for k, v in model.state_dict().items()}
        else:
            lr /= cfg.anneal
            for group in opt.param_groups:
                group["lr"] = lr

    while not out_of_time:
        state = None
        model.train()
        for s in range(0, train.shape[0] - 1, cfg.bptt):
            t = time.monotonic()
            x = train[s : s + cfg.bptt]
            y = train[s + 1 : s + 1 + x.shape[0]]
            x = x[: y.shape[0]]
            logits, state = model(x, state)
            state = tuple(h.detach() for h in state)
            loss = F.cross_entropy(logits.flatten(0, 1), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            train_seconds += time.monotonic() - t
            tokens, steps = tokens + y.numel(), steps + 1
            per_step = train_seconds / steps
            if time.monotonic() - start + per_step + eval_seconds >= budget:
                out_of_time = True
                break
        epoch += 1
        validate()
    wall = time.monotonic() - start
    model.load_state_dict(best_state)
    test = mean_loss(model, columns(corpus.test, cfg.eval_batch), cfg.bptt)
    return {
        "system": "plain torch.nn loop",
        "valid_ppl": math.exp(best),
        "test_ppl": math.exp(test),
        "tokens": tokens,
        "epochs": tokens / ((train.shape[0] - 1) * train.shape[1]),
        "train_tok_s": tokens / train_seconds,
        "wall_s": wall,
        "validations": validations,
    }


# ------------------------------------------------------------------------------ (b) rnnkit


def evaluate(run_dir: Path, split: str, *flags: str) -> dict:
    """``rnnkit evaluate RUN_DIR --split SPLIT --json FLAGS...``'s result."""
    from rnnkit.cli import main as rnnkit_main

    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = rnnkit_main(["evaluate", str(run_dir), "--split", split, "--json", *flags])
    if code != 0:
        raise SystemExit(f"rnnkit evaluate exited with {code}:\n{printed.getvalue()}")
    return json.loads(printed.getvalue())


def rnnkit_recipe(data: Path, budget: float, preset: str | None, run_dir: Path) -> dict:
    """Train (b) with ``rnnkit train lm`` and evaluate its best checkpoint on valid and test."""
    from rnnkit.cli import main as rnnkit_main
    from rnnkit.cli.runs import load_task
    from rnnkit.train import read_metrics

    argv = ["train", "lm", "--data", str(data), "--level", "word", "--time-budget", str(budget),
            "--out", str(run_dir), "--no-progress", "--sample-length", "0"]  # fmt: skip
    if preset:
        argv += ["--preset", preset]
    start = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = rnnkit_main(argv)
    wall = time.monotonic() - start
    if code != 0:
        raise SystemExit(f"rnnkit train exited with {code}:\n{printed.getvalue()}")
    valid = evaluate(run_dir, "valid")  # as `rnnkit evaluate RUN --split S` reports it
    test = evaluate(run_dir, "test")
    alone = evaluate(run_dir, "test", "--no-ngram")  # the network without the preset's n-gram
    cached = evaluate(run_dir, "test", "--cache", "--cache-tune")  # theta, lambda chosen on valid
    task = load_task(run_dir)
    records = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "train"]
    tokens, seconds, before = 0, 0.0, 0
    for r in records:  # each train record: cumulative tokens and the window's tokens/s
        window = r["tokens"] - before
        before = r["tokens"]
        if r.get("tokens_per_s"):
            tokens, seconds = tokens + window, seconds + window / r["tokens_per_s"]
    per_epoch = task.stream("train").tokens_per_epoch
    return {
        "system": f"rnnkit ({preset or task.default_preset({'level': 'word'})} preset)",
        "valid_ppl": valid["ppl"],
        "test_ppl": test["ppl"],
        "test_ppl_network": alone["ppl"],
        "test_ppl_cache": cached["ppl"],
        "ngram": test.get("ngram"),
        "cache": cached["cache"],
        "tokens": tokens,
        "epochs": tokens / per_epoch,
        "train_tok_s": tokens / seconds if seconds else math.nan,
        "wall_s": wall,
        "run_dir": str(run_dir),
    }


def report(results: list[dict], budget: float) -> str:
    lines = [f"budget {budget:g} s of training and validation each; test evaluated after", "",
             "| system | load before | epochs | train tok/s | valid ppl | test ppl | "
             "test ppl, network alone | test ppl, cache tuned on valid | wall s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in results:
        alone = f"{r['test_ppl_network']:.1f}" if "test_ppl_network" in r else "-"
        cached = f"{r['test_ppl_cache']:.1f}" if "test_ppl_cache" in r else "-"
        lines.append(f"| {r['system']} | {r['load_before']:.2f} | {r['epochs']:.2f} | "
                     f"{r['train_tok_s']:.0f} | {r['valid_ppl']:.1f} | {r['test_ppl']:.1f} | "
                     f"{alone} | {cached} | {r['wall_s']:.0f} |")  # fmt: skip
    if len(results) == 2:
        a, b = results

        def below(ppl: float) -> str:
            return f"{100 * (1 - ppl / a['test_ppl']):.1f}%"

        c, g = b["cache"], b.get("ngram")
        mixed = (f" (the network mixed with its {g['order']}-gram at weight {g['weight']:.3f}, "
                 f"chosen on valid; the network alone {below(b['test_ppl_network'])})"
                 if g else "")  # fmt: skip
        lines += ["", f"rnnkit's test perplexity is {below(b['test_ppl'])} below the plain "
                      f"loop's{mixed}; with the cache (theta {c['theta']:g}, lambda "
                      f"{c['lam']:g}, chosen on valid) {below(b['test_ppl_cache'])}"]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--loop" in argv:
        from . import word_lm_loop

        return word_lm_loop.main([a for a in argv if a != "--loop"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per system")
    parser.add_argument("--data", help=f"corpus directory (default ${DATA_ENV} or {DEFAULT_DATA})")
    parser.add_argument("--preset", default=None, help="rnnkit preset (default: the word one)")
    parser.add_argument("--only", choices=["plain", "rnnkit"], help="run one system")
    parser.add_argument("--out", help="rnnkit's run directory (default: a temporary one)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.budget) and args.budget > 0):
        raise SystemExit(f"--budget expects seconds > 0, got {args.budget}")
    data = data_dir(args.data)
    from rnnkit.data import load_corpus

    info = machine_info()
    print(machine_line(info), flush=True)
    results = []
    if args.only in (None, "plain"):
        load = os.getloadavg()[0]
        corpus = load_corpus(data, "word")
        results.append({**plain_loop(corpus, PlainConfig(), args.budget), "load_before": load})
        print(f"plain loop: test ppl {results[-1]['test_ppl']:.1f}", flush=True)
    if args.only in (None, "rnnkit"):
        load = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(args.out) if args.out else Path(tmp) / "run"
            results.append({**rnnkit_recipe(data, args.budget, args.preset, run_dir),
                            "load_before": load})  # fmt: skip
        print(f"rnnkit: test ppl {results[-1]['test_ppl']:.1f}", flush=True)
    print(f"data: {data}\n")
    print(report(results, args.budget))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": info, "budget": args.budget, "data": str(data),
                       "plain_config": asdict(PlainConfig()), "results": results}, f,
                      indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
