"""Milliseconds per training step of the ``word`` preset's model with each output layer,
interleaved in one process (issue 12).

    python -m benchmarks.word_lm_step [--data DIR] [--steps 50] [--block 5] [--json PATH]

The model is the ``word`` preset's (:data:`rnnkit.tasks.lm.PRESETS`) on the slice's training
split, and the step is the trainer's: the preset's precision (bfloat16 autocast where the CPU has
it), ``task.loss``, backward, the gradient norm clipped at the preset's 0.25, SGD. Only the output
layer changes between the models:

- ``tied adaptive``: :class:`rnnkit.tasks.lm.softmax.TiedAdaptiveSoftmax` as it ships, each tail
  cluster's rows padded to a multiple of ``ROW_BUCKET`` before its GEMMs;
- ``tied adaptive, unpadded``: the same with ``ROW_BUCKET = 1`` during its steps (a new row count
  at most steps, which has oneDNN build a new kernel);
- ``full softmax``: the linear layer over the whole vocabulary, tied to the embedding.

The models take turns in blocks of ``--block`` steps until each has run ``--steps``; each one's
first block is a warm-up and is not counted. Reported: the median ms/step of each model and its
ratio to ``tied adaptive``, once at the default thread count and once with one thread.
``--data`` is read as :mod:`benchmarks.word_lm` reads it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from dataclasses import replace

import torch
from torch import nn

from rnnkit.memory import keep_freed_memory
from rnnkit.tasks.lm import PRESETS, LanguageModelTask, LMConfig, softmax
from rnnkit.train.precision import training_dtype

from .common import machine_info, machine_line, take_turns
from .word_lm import data_dir

MODELS = ("tied adaptive", "tied adaptive, unpadded", "full softmax")


class Runner:
    """One model, its optimizer and its carried state."""

    def __init__(self, name: str, task: LanguageModelTask, trainer: dict) -> None:
        torch.manual_seed(0)
        self.name, self.task = name, task
        cfg = task.cfg if name != "full softmax" else replace(task.cfg, softmax="full")
        self.model = LanguageModelTask(cfg, vocab=task.vocab).build_model().train()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=trainer["lr"],
                                   weight_decay=trainer["weight_decay"])  # fmt: skip
        self.clip = trainer["clip_norm"]
        self.dtype = training_dtype(trainer["precision"], torch.device("cpu"))
        self.stream = task.stream("train")
        self.state, self.window = None, 0

    def step(self) -> float:
        """One training step; its wall time in seconds."""
        batch = self.stream.get(0, self.window % self.stream.num_windows(0))
        self.window += 1
        unpadded = self.name == "tied adaptive, unpadded"
        with _row_bucket(1) if unpadded else contextlib.nullcontext():
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype is not None):
                loss, state, _ = self.task.loss(self.model, batch, self.state)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            self.opt.step()
            elapsed = time.perf_counter() - start
        self.state = tuple(s.detach() for s in state)
        return elapsed


@contextlib.contextmanager
def _row_bucket(rows: int):
    saved, softmax.ROW_BUCKET = softmax.ROW_BUCKET, rows
    try:
        yield
    finally:
        softmax.ROW_BUCKET = saved


def interleaved(task: LanguageModelTask, trainer: dict, steps: int, block: int) -> dict:
    """Median ms/step of each model, the models taking turns in blocks of ``block`` steps."""
    runners = [Runner(name, task, trainer) for name in MODELS]
    times = take_turns([r.step for r in runners], steps, block)
    return {r.name: 1e3 * statistics.median(t) for r, t in zip(runners, times)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="the corpus directory (as benchmarks.word_lm's --data)")
    parser.add_argument("--steps", type=int, default=50, help="counted steps per model")
    parser.add_argument("--block", type=int, default=5, help="steps per turn")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as the trainer does
    info = machine_info()
    overrides, trainer = PRESETS["word"]
    task = LanguageModelTask(LMConfig(**{**overrides, "data": str(data_dir(args.data))}))
    threads = torch.get_num_threads()
    rows = {}
    for n in (threads, 1):
        torch.set_num_threads(n)
        rows[n] = interleaved(task, trainer, args.steps, args.block)
    torch.set_num_threads(threads)
    print(machine_line(info))
    print(f"word preset, batch {task.cfg.batch_size} x bptt {task.cfg.bptt}, "
          f"vocabulary {len(task.vocab)}, ROW_BUCKET {softmax.ROW_BUCKET}\n")  # fmt: skip
    print("| output layer | threads | ms/step | ratio to tied adaptive |")
    print("|---|---:|---:|---:|")
    for n, ms in rows.items():
        for name in MODELS:
            print(f"| {name} | {n} | {ms[name]:.1f} | {ms[name] / ms['tied adaptive']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "ms_per_step": {str(n): ms for n, ms in rows.items()}},
                      f, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
