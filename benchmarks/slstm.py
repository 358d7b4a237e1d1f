"""Training speed of the sLSTM's C time loop against its reference loop and torch.nn.LSTM
(issue 11).

    python -m benchmarks.slstm [--rounds N] [--sizes 100x32x64x512,...] [--heads 4]

For each size ``TxNxDxH`` (the character LM's layer by default: 100 steps, batch 32, embedding
64, hidden 512), these layers run interleaved in one process, in a shuffled order each round,
forward+backward in training mode (``out.sum().backward()``):

* ``c_loop``: ``rnnkit.SLSTM(D, H, num_heads=K)`` on its default backend (the C time loop);
* ``reference``: the same layer with ``backend="reference"`` (the step function in a Python loop);
* ``lstm``: ``torch.nn.LSTM(D, H)`` (torch's fused kernels), for scale: a dense recurrence, four
  times the sLSTM's recurrent arithmetic at four heads.

At the default thread count (wall clock, the headline) and with one thread: the median and the
minimum ms of each, and the median over rounds of the paired ratios ``reference / c_loop`` and
``lstm / c_loop``.
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics

import torch

import rnnkit

from .common import format_header, machine_header
from .layers import step_fn, timed

MODELS = ("c_loop", "reference", "lstm")


def models(steps: int, batch: int, inputs: int, hidden: int, heads: int):
    torch.manual_seed(0)
    fast = rnnkit.SLSTM(inputs, hidden, num_heads=heads)
    loop = copy.deepcopy(fast)
    loop.backend = "reference"
    x = torch.randn(steps, batch, inputs, requires_grad=True)
    return {"c_loop": fast, "reference": loop, "lstm": torch.nn.LSTM(inputs, hidden)}, x


def measure(size: tuple[int, int, int, int], heads: int, rounds: int) -> dict:
    layers, x = models(*size, heads)
    runs = {name: step_fn(m, x, backward=True) for name, m in layers.items()}
    for run in runs.values():  # warm-up: the C library, the GEMM choice, the allocator
        run()
        run()
    ms: dict[str, list[float]] = {name: [] for name in MODELS}
    order = list(MODELS)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            ms[name].append(timed(runs[name], torch.device("cpu")))
    ratio = {
        f"{other}/c_loop": statistics.median(a / b for a, b in zip(ms[other], ms["c_loop"]))
        for other in ("reference", "lstm")
    }
    return {"median_ms": {k: statistics.median(v) for k, v in ms.items()},
            "min_ms": {k: min(v) for k, v in ms.items()}, "ratios": ratio}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sizes", default="100x32x64x512")
    parser.add_argument("--heads", type=int, default=4)
    args = parser.parse_args(argv)
    default_threads = torch.get_num_threads()
    print("\n".join(format_header(machine_header())))
    print(f"sLSTM heads: {args.heads}; {args.rounds} rounds, the order shuffled in each")
    print("| T x N x D x H | threads | c_loop ms (min) | reference ms | lstm ms | reference/c_loop "
          "| lstm/c_loop |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for text in args.sizes.split(","):
        size = tuple(int(v) for v in text.split("x"))
        for threads in dict.fromkeys((default_threads, 1)):
            torch.set_num_threads(threads)
            r = measure(size, args.heads, args.rounds)
            med, low, ratio = r["median_ms"], r["min_ms"], r["ratios"]
            print(f"| {text} | {threads} | {med['c_loop']:.1f} ({low['c_loop']:.1f}) | "
                  f"{med['reference']:.1f} | {med['lstm']:.1f} | {ratio['reference/c_loop']:.2f} | "
                  f"{ratio['lstm/c_loop']:.2f} |")  # fmt: skip
        torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
