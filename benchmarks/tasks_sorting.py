"""Sorting with a bidirectional LSTM: the issue's targets and MXNet's bi-lstm-sort setting.

    python -m benchmarks.tasks_sorting [--preset default|mxnet] [--time-budget 600] [--threads 1]
                                       [--out runs/bench-sort] [--set FIELD=VALUE ...]

``default``: vocabulary 100, lengths 5-10; target test exact match >= 95% and per-token accuracy
>= 99% within 10 CPU minutes; reports lengths 11-20 (generalisation) and writes
``accuracy_by_length.png`` (exact match for lengths 1-30). ``mxnet``: five numbers in 0-999 as
characters padded to 19 (MXNet's notebook); reports the final training cross-entropy (MXNet's only
figure, 0.00216 after 100 GPU epochs) and exact match on the test split and on the two cases that
model failed on: five one-digit numbers, and six numbers.

Training goes through :class:`rnnkit.train.Trainer` within ``--time-budget`` seconds of wall clock.
``--threads``: torch's intra-op threads (on a shared machine one thread is far faster than two);
the load average before and after is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from rnnkit.tasks.sorting import PRESETS, SortConfig, SortingTask, plot_accuracy_by_length
from rnnkit.train import Trainer, TrainerConfig

from .common import parse_sets


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default", choices=sorted(PRESETS))
    p.add_argument("--time-budget", type=float, default=600.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/bench-sort")
    p.add_argument("--set", nargs="*", default=[], help="SortConfig overrides FIELD=VALUE")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    task_over, trainer_over = PRESETS[args.preset]
    task = SortingTask(SortConfig(**{**task_over, **parse_sets(args.set)}))
    cfg = TrainerConfig(**{**trainer_over, "epochs": 10_000, "time_budget": args.time_budget,
                           "out_dir": str(out / "train"), "device": "cpu", "progress": False,
                           "log_every": 100})  # fmt: skip
    load0 = os.getloadavg()[0]
    start = time.monotonic()
    trainer = Trainer(task, cfg)
    fit = trainer.fit()
    train_s = time.monotonic() - start
    load1 = os.getloadavg()[0]
    model = trainer.model.eval()
    test = task.evaluate(model, "test")
    train_ce = fit["train"]["loss"] if fit["train"] else float("nan")
    result = {"preset": args.preset, "config": task.state_dict()["config"], "steps": fit["step"],
              "train_seconds": train_s, "threads": args.threads, "load_average": [load0, load1],
              "final_train_cross_entropy": train_ce, "test": test}  # fmt: skip
    c = task.cfg
    print(f"## sorting, preset {args.preset}: {fit['step']} steps in {train_s:.0f} s "
          f"({args.threads} thread(s), load average {load0:.1f} -> {load1:.1f}); "
          f"final training cross-entropy {train_ce:.5f}\n")  # fmt: skip
    print("| test set | exact match | per-token accuracy |")
    print("|---|---|---|")
    span = f"{c.min_len}" if c.min_len == c.max_len else f"{c.min_len}-{c.max_len}"
    what = f"{span} numbers in 0-{c.vocab_size - 1}"
    print(f"| test ({what}) | {test['exact_match']:.4f} | {test['token_accuracy']:.4f} |")
    names = {"gen": f"lengths {c.gen_min_len}-{c.gen_max_len} (generalisation)",
             "one_digit": "five one-digit numbers", "six_numbers": "six numbers"}  # fmt: skip
    for probe in task.probe_sets():
        print(f"| {names[probe]} | {test[probe + '_exact_match']:.4f} | "
              f"{test[probe + '_token_accuracy']:.4f} |")  # fmt: skip
    if c.encoding == "tokens":
        acc = task.accuracy_by_length(model, range(1, 31))
        result["exact_match_by_length"] = acc
        path = plot_accuracy_by_length(acc, (c.min_len, c.max_len), out / "accuracy_by_length.png",
                                       title=f"bi-LSTM sort, vocabulary {c.vocab_size}")  # fmt: skip
        print(f"\nwrote {path}")
    else:
        examples = ["500 30 999 10 130", "10 3 5 2 8", "10 33 52 21 82 10", "105 302 501 202"]
        for line in task.predict(model, examples):
            print(f"    {line}")
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
