"""Seq2seq date normalisation: decoder handoff ``h`` vs ``hc`` vs attention, side by side.

    python -m benchmarks.tasks_seq2seq [--variants attention,hc,h] [--time-budget 600] [--threads 1]
                                       [--epochs N] [--beam-size 4] [--out runs/bench-seq2seq]
                                       [--set FIELD=VALUE ...]

Each variant is a preset of :mod:`rnnkit.tasks.seq2seq`: ``attention`` (the ``dates`` preset,
Luong attention with the ``hc`` handoff), ``bahdanau`` (the same with additive attention), ``hc``
and ``h`` (no attention: the decoder starts from the encoder's ``h`` and ``c``, or from ``h``
alone -- the Gluon note's question -- through the bidirectional encoder's bridge), ``hc-uni`` and
``h-uni`` (the same with a unidirectional encoder whose states are passed as they are). Each is
trained through :class:`rnnkit.train.Trainer` on the built-in data (50 000 training dates, 1 000
validation, 5 000 test, test sources never seen in training) for the preset's epochs, capped at
``--time-budget`` seconds of wall clock. Target (issue 5): attention test exact match >= 99%
within 10 CPU minutes. Reported per variant: steps, training seconds, validation and test exact
match (greedy), test exact match with beam search, test loss; attention variants also write
``attention_<variant>.png`` (the weights on one date). The load average is printed with the
figures: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from benchmarks.common import parse_sets
from rnnkit.tasks.seq2seq import PRESETS, Seq2SeqConfig, Seq2SeqTask
from rnnkit.train import Trainer, TrainerConfig

VARIANTS = {
    "attention": ("dates", {}),
    "bahdanau": ("dates", {"attention": "bahdanau"}),
    "hc": ("dates-hc", {}),
    "h": ("dates-h", {}),
    # the Gluon note's setting: a unidirectional encoder's states passed as they are (no bridge)
    "hc-uni": ("dates-hc", {"bidirectional": False}),
    "h-uni": ("dates-h", {"bidirectional": False}),
}
EXAMPLES = ["Tuesday, May 3rd, 1998", "3.5.98", "12/31/2068", "1 JAN 70", "FEBRUARY 2001, 28"]


def run_variant(name: str, args: argparse.Namespace, out: Path) -> dict:
    preset, extra = VARIANTS[name]
    task_over, trainer_over = PRESETS[preset]
    task = Seq2SeqTask(Seq2SeqConfig(**{**task_over, **extra, **parse_sets(args.set)}))
    epochs = args.epochs or trainer_over.get("epochs", 1)
    # max_steps = the epochs' steps, so that the cosine schedule ends there under a time budget
    over = {"epochs": epochs, "max_steps": epochs * len(task.batches("train", 0))}
    cfg = TrainerConfig(**{**trainer_over, **over, "time_budget": args.time_budget,
                           "out_dir": str(out / name), "device": "cpu", "progress": False,
                           "log_every": 100})  # fmt: skip
    load0 = os.getloadavg()[0]
    start = time.monotonic()
    trainer = Trainer(task, cfg)
    fit = trainer.fit()
    seconds = time.monotonic() - start
    model = trainer.model.eval()
    test = task.evaluate(model, "test")
    pairs = task.sets["test"].pairs
    beams = task.translate(model, [s for s, _ in pairs], beam_size=args.beam_size)
    beam_em = sum(b == t for b, (_, t) in zip(beams, pairs)) / len(pairs)
    if task.cfg.attention != "none":
        task.plot_attention(model, EXAMPLES[0], out / f"attention_{name}.png")
    examples = task.predict(model, EXAMPLES)
    return {"variant": name, "steps": fit["step"], "stop_reason": fit["stop_reason"],
            "train_seconds": seconds, "load_average": [load0, os.getloadavg()[0]],
            "valid_exact_match": fit["valid"]["exact_match"], "test": test,
            "test_beam_exact_match": beam_em, "examples": examples,
            "config": task.state_dict()["config"]}  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="attention,hc,h")
    p.add_argument("--time-budget", type=float, default=600.0)
    p.add_argument("--epochs", type=int, default=None, help="override the presets' epochs")
    p.add_argument("--beam-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/bench-seq2seq")
    p.add_argument("--set", nargs="*", default=[], help="Seq2SeqConfig overrides FIELD=VALUE")
    args = p.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; expected some of {sorted(VARIANTS)}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: choose another --out (runs are not overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        results.append(run_variant(name, args, out))
        (out / "result.json").write_text(json.dumps(results, indent=1))
    print(f"## seq2seq date normalisation ({args.threads} thread(s), cap {args.time_budget:.0f} s "
          f"per variant)\n")  # fmt: skip
    print("| variant | steps | train s | load avg | valid EM | test EM (greedy) | "
          f"test EM (beam {args.beam_size}) | test loss |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        load = "{:.1f}-{:.1f}".format(*r["load_average"])
        print(f"| {r['variant']} | {r['steps']} | {r['train_seconds']:.0f} | {load} | "
              f"{r['valid_exact_match']:.4f} | {r['test']['exact_match']:.4f} | "
              f"{r['test_beam_exact_match']:.4f} | {r['test']['loss']:.5f} |")  # fmt: skip
    for r in results:
        print(f"\n{r['variant']}:")
        for line in r["examples"]:
            print(f"    {line}")
    return results


if __name__ == "__main__":
    main()
