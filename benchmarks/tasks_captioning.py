"""Captioning on the built-in digit strips: the issue's target (test BLEU-4 >= 0.90 in 10 CPU minutes).

    python -m benchmarks.tasks_captioning [--preset digits] [--time-budget 600] [--threads 1]
                                          [--out runs/bench-caption] [--set FIELD=VALUE ...]

Trains the preset through :class:`rnnkit.train.Trainer` within ``--time-budget`` seconds of wall
clock (the trainer stops cleanly before the budget, then evaluates), then scores the test split
(1000 strips of test-pool digits never seen in training) with greedy decoding and with beam search,
prints a markdown table, and writes ``captions.png`` (16 test strips, generated and reference
captions; wrong ones in red) and ``result.json`` into ``--out``.

``--threads``: torch's intra-op threads. On a shared machine one thread is far faster than two
(spin-waiting threads lose their cores); the figure is wall-clock time under whatever load there is,
which the table reports (``os.getloadavg``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from benchmarks.common import parse_sets
from rnnkit.tasks.captioning import PRESETS, CaptionConfig, CaptioningTask
from rnnkit.train import Trainer, TrainerConfig


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="digits", choices=sorted(PRESETS))
    p.add_argument("--time-budget", type=float, default=600.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/bench-caption")
    p.add_argument("--beam-size", type=int, default=3)
    p.add_argument("--set", nargs="*", default=[], help="CaptionConfig overrides FIELD=VALUE")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    task_over, trainer_over = PRESETS[args.preset]
    task = CaptioningTask(CaptionConfig(**{**task_over, **parse_sets(args.set)}))
    cfg = TrainerConfig(**{**trainer_over, "epochs": 1000, "time_budget": args.time_budget,
                           "out_dir": str(out / "train"), "device": "cpu", "progress": False})  # fmt: skip
    load0 = os.getloadavg()[0]
    start = time.monotonic()
    trainer = Trainer(task, cfg)
    fit = trainer.fit()
    train_s = time.monotonic() - start
    load1 = os.getloadavg()[0]
    model = trainer.model.eval()
    rows = {}
    for beam in (1, args.beam_size):
        task.cfg.beam_size = beam
        t0 = time.monotonic()
        rows[beam] = {**task.evaluate(model, "test"), "seconds": time.monotonic() - t0}
    task.cfg.beam_size = args.beam_size
    lines = task.predict(model, [], out_dir=out)
    result = {
        "preset": args.preset,
        "config": task.state_dict()["config"],
        "steps": fit["step"],
        "train_seconds": train_s,
        "stop_reason": fit["stop_reason"],
        "threads": args.threads,
        "load_average": [load0, load1],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "test": {f"beam{k}": v for k, v in rows.items()},
    }
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(f"## captioning, preset {args.preset}: {fit['step']} steps in {train_s:.0f} s "
          f"({args.threads} thread(s), load average {load0:.1f} -> {load1:.1f})\n")  # fmt: skip
    print("| decoding | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | exact match | test loss | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for beam, r in rows.items():
        name = "greedy" if beam == 1 else f"beam {beam}"
        print(f"| {name} | {r['bleu1']:.4f} | {r['bleu2']:.4f} | {r['bleu3']:.4f} | "
              f"{r['bleu4']:.4f} | {r['exact_match']:.3f} | {r['loss']:.4f} | "
              f"{r['seconds']:.1f} |")  # fmt: skip
    print(f"\n{lines[-1]}")
    return result


if __name__ == "__main__":
    main()
