"""Language-model throughput and step-wise decoding speed, side by side (issues 3 and 4).

    python -m benchmarks.lm [--data PATH] [--steps N] [--reps R] [--json PATH]

1. Training throughput (tokens/s): the rnnkit LM trained by ``rnnkit.train.Trainer`` against the same
   model written with ``torch.nn.LSTM`` and a plain loop (embedding -> nn.LSTM -> linear, Adam,
   clipping, TBPTT with detached state), same data and sizes, interleaved rounds, medians.
2. Decoding (tokens/s, batch 1, 2 layers of 512, a 65-way softmax, multinomial sampling): the LM's
   ``step`` (rnnkit.decode.LayerStepper) against calling ``torch.nn.LSTM`` one step at a time.

Prints a markdown table; ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.data import TBPTTStream
from rnnkit.tasks.lm import PRESETS, LanguageModelTask, LMConfig, RNNLanguageModel
from rnnkit.train import Trainer, TrainerConfig


class TorchLM(nn.Module):
    """The reference model: what a user writes with torch.nn alone."""

    def __init__(self, vocab: int, embed: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = nn.LSTM(embed, hidden, layers)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        out, state = self.rnn(self.embed(x), state)
        return self.head(out), state


def plain_loop_tokens_per_s(model: nn.Module, stream: TBPTTStream, steps: int, lr: float) -> float:
    opt = torch.optim.Adam(model.parameters(), lr)
    state = None
    start = time.perf_counter()
    tokens = 0
    for i in range(steps):
        x, y = stream.get(0, i % stream.num_windows(0))
        logits, state = model(x, state)
        state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += y.numel()
    return tokens / (time.perf_counter() - start)


def trainer_tokens_per_s(task: LanguageModelTask, steps: int, lr: float) -> float:
    cfg = TrainerConfig(max_steps=steps, lr=lr, clip_norm=1.0, progress=False, log_every=steps,
                        eval_every=10**9, eval_max_batches=1)  # fmt: skip
    trainer = Trainer(task, cfg)
    trainer.evaluate = lambda *a, **k: None  # time the training loop only
    start = time.perf_counter()
    trainer.fit()
    return steps * task.cfg.batch_size * task.cfg.bptt / (time.perf_counter() - start)


def training_throughput(data: str | None, steps: int, reps: int) -> dict:
    over, trainer_over = PRESETS["char"]
    cfg = LMConfig(**over, data=data, default_corpus_chars=400_000)
    task = LanguageModelTask(cfg)
    lr = trainer_over["lr"]
    stream = task.stream("train")
    ours, theirs = [], []
    for _ in range(reps):
        torch.manual_seed(0)
        ref = TorchLM(len(task.vocab), cfg.embed_size, cfg.hidden_size, cfg.num_layers)
        theirs.append(plain_loop_tokens_per_s(ref, stream, steps, lr))
        ours.append(trainer_tokens_per_s(task, steps, lr))
    return {
        "model": f"char LSTM {cfg.num_layers}x{cfg.hidden_size}, emb {cfg.embed_size}, "
        f"batch {cfg.batch_size}, bptt {cfg.bptt}",
        "rnnkit_trainer_tok_s": statistics.median(ours),
        "torch_plain_loop_tok_s": statistics.median(theirs),
    }


@torch.no_grad()
def decode_tokens_per_s(length: int, reps: int) -> dict:
    vocab, hidden = 65, 512
    cfg = LMConfig(embed_size=hidden, hidden_size=hidden, num_layers=2)
    ours = RNNLanguageModel(cfg, vocab).eval()
    ref = TorchLM(vocab, hidden, hidden, 2).eval()
    ref.load_state_dict(ours.state_dict())

    def run_ours() -> float:
        token, state = torch.zeros(1, dtype=torch.long), None
        _, state = ours(token.view(1, 1))
        start = time.perf_counter()
        for _ in range(length):
            logits, state = ours.step(token, state)
            token = torch.multinomial(F.softmax(logits, -1), 1).view(1)
        return length / (time.perf_counter() - start)

    def run_torch() -> float:
        token, state = torch.zeros(1, 1, dtype=torch.long), None
        start = time.perf_counter()
        for _ in range(length):
            logits, state = ref(token, state)
            token = torch.multinomial(F.softmax(logits[-1], -1), 1).view(1, 1)
        return length / (time.perf_counter() - start)

    a, b = [], []
    for _ in range(reps):
        a.append(run_ours())
        b.append(run_torch())
    return {
        "rnnkit_step_tok_s": statistics.median(a),
        "torch_lstm_per_step_tok_s": statistics.median(b),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="text file (default: the embedded default corpus)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--decode-length", type=int, default=500)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    train = training_throughput(args.data, args.steps, args.reps)
    decode = decode_tokens_per_s(args.decode_length, args.reps)
    r_train = train["rnnkit_trainer_tok_s"] / train["torch_plain_loop_tok_s"]
    r_dec = decode["rnnkit_step_tok_s"] / decode["torch_lstm_per_step_tok_s"]
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}\n")  # fmt: skip
    print("| measure | rnnkit | torch.nn plain | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| LM training tok/s ({train['model']}) | {train['rnnkit_trainer_tok_s']:.0f} | "
          f"{train['torch_plain_loop_tok_s']:.0f} | {r_train:.2f}x |")  # fmt: skip
    print(f"| decoding tok/s (batch 1, 2x512, V=65) | {decode['rnnkit_step_tok_s']:.0f} | "
          f"{decode['torch_lstm_per_step_tok_s']:.0f} | {r_dec:.2f}x |")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"training": train, "decoding": decode}, f, indent=2)


if __name__ == "__main__":
    main()
