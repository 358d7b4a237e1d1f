"""Training speed of minGRU/minLSTM's parallel scan against the same cell step by step and
torch.nn.LSTM (issue 11).

    python -m benchmarks.scan [--quick] [--steps 64,256,1024,4096] [--reps N] [--json [PATH]]

For each cell (minGRU, minLSTM) and sequence length ``T`` (batch ``N``, hidden and input size
``H``), these models of the same size run interleaved in one process, one repetition of each
in turn, forward+backward in training mode (``out.sum().backward()``, input and parameter
gradients):

* ``lstm``: ``torch.nn.LSTM(H, H)`` (torch's fused kernels);
* ``scan``: ``rnnkit.MinGRU``/``MinLSTM``, ``backend="auto"``: the chunked log-space scan
  (:mod:`rnnkit.parallel_scan`, default chunk);
* ``heinsen``: the same layer with ``scan_chunk=1``: Heinsen's log-space scan over every step
  (``torch.logcumsumexp`` of the whole sequence);
* ``step``: the same layer with ``backend="reference"``: the input projections of all steps
  in one GEMM (as the scan's), then the recurrence one step at a time (the cell's step function
  in a Python loop);
* ``cell``: ``rnnkit.MinGRUCell``/``MinLSTMCell`` with the layer's weights called once per step,
  as step-wise use runs the cell (the sequential mode of Feng et al. 2024): each step projects
  its own input.

``step`` is the stronger sequential baseline: its projection GEMMs are the scan's, so
``step/scan`` is bounded by the share of those GEMMs in the scan's time (``docs/cells.md``).

Each configuration is measured at the default torch thread count (wall clock: the headline) and
with one thread. Ratios are medians over repetitions of the ratio within each repetition (the
models of one repetition run back to back, their order rotated by one each repetition, the
garbage collector off: :func:`benchmarks.layers.interleaved`). Peak MB: the peak of live tensor
bytes during one forward+backward (default threads), from ``torch.profiler``'s allocation events
(:func:`benchmarks.layers.peak_memory_mb`; tensors only, so it is not the process's RSS). The
crossover is the smallest measured ``T`` at which ``scan`` is faster than ``lstm``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy's OpenBLAS is unused here

import argparse
import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch

import rnnkit
from rnnkit.parallel_scan import DEFAULT_CHUNK

from .layers import interleaved, peak_memory_mb, step_fn

STEPS = (64, 256, 1024, 4096)
QUICK_STEPS = (64, 256)
MODELS = ("lstm", "scan", "heinsen", "step", "cell")
LAYERS = {"mingru": rnnkit.MinGRU, "minlstm": rnnkit.MinLSTM}
CELLS = {"mingru": rnnkit.MinGRUCell, "minlstm": rnnkit.MinLSTMCell}


class CellLoop(torch.nn.Module):
    """A one-layer minGRU/minLSTM run as its cell, one call per step: ``x (T, N, C) -> (out (T, N,
    H), h (N, H))`` from a zero state, the weights those of ``layer``."""

    def __init__(self, cell: str, layer: torch.nn.Module) -> None:
        super().__init__()
        self.cell = CELLS[cell](layer.input_size, layer.hidden_size)
        with torch.no_grad():
            for name, p in self.cell.named_parameters():
                p.copy_(getattr(layer, f"{name}_l0"))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x.new_zeros(x.shape[1], self.cell.hidden_size)  # (N, H)
        outs = []
        for x_t in x:  # (N, C)
            h = self.cell(x_t, h)
            outs.append(h)
        return torch.stack(outs), h


@dataclass
class Row:
    """One cell, length and thread count: median ms per model and the median paired ratios."""

    cell: str
    steps: int
    threads: int
    ms: dict[str, float]
    ratios: dict[str, float]
    peak_mb: dict[str, float] = field(default_factory=dict)


def cpu_info() -> dict[str, object]:
    """The CPU's model name and vendor (``/proc/cpuinfo``), cores, torch and Python versions."""
    info = {"cpu": platform.processor() or "unknown", "vendor": "unknown"}
    keys = {"model name": "cpu", "vendor_id": "vendor"}
    try:
        with open("/proc/cpuinfo") as f:
            found: dict[str, str] = {}
            for line in f:
                key, _, value = line.partition(":")
                if keys.get(key.strip()) and keys[key.strip()] not in found:
                    found[keys[key.strip()]] = value.strip()
            info.update(found)
    except OSError:
        pass
    return {
        **info, "cores": os.cpu_count(), "default_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(),
        "scan_chunk": DEFAULT_CHUNK,
    }  # fmt: skip


def build(cell: str, name: str, hidden: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "lstm":
        return torch.nn.LSTM(hidden, hidden).train()
    if name == "cell":
        return CellLoop(cell, LAYERS[cell](hidden, hidden)).train()
    kw = {"heinsen": {"scan_chunk": 1}, "step": {"backend": "reference"}}.get(name, {})
    return LAYERS[cell](hidden, hidden, **kw).train()


def bench(cell: str, steps: int, batch: int, hidden: int, reps: int, threads: int,
          models: tuple[str, ...], memory: bool) -> Row:  # fmt: skip
    torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    x = torch.randn(steps, batch, hidden, requires_grad=True)
    fns = {name: step_fn(build(cell, name, hidden), x, True) for name in models}
    for fn in fns.values():
        fn()  # warm-up
    times = interleaved(fns, reps, cpu)
    ms = {name: statistics.median(ts) for name, ts in times.items()}
    ratios = {
        f"{name}/scan": statistics.median(a / b for a, b in zip(times[name], times["scan"]))
        for name in models
        if name != "scan"
    }
    row = Row(cell, steps, threads, ms, ratios)
    if memory:
        row.peak_mb = {name: peak_memory_mb(fn, cpu) for name, fn in fns.items()}
    return row


def markdown(rows: list[Row], models: tuple[str, ...]) -> str:
    others = [m for m in models if m != "scan"]
    head = (["cell", "T", "threads"] + [f"{m} ms" for m in models] + [f"{m}/scan" for m in others]
            + ["peak MB " + " / ".join(models)])  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.cell, str(r.steps), str(r.threads)]
        cells += [f"{r.ms[m]:.1f}" for m in models]
        cells += [f"{r.ratios[f'{m}/scan']:.2f}" for m in others]
        cells.append(" / ".join(f"{r.peak_mb[m]:.0f}" for m in models) if r.peak_mb else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def crossovers(rows: list[Row]) -> list[str]:
    """Per cell and thread count: the smallest measured T at which the scan beats torch's LSTM,
    and the step-by-step/scan ratios at T=1024 (the issue's target: at least 5)."""
    out = []
    for cell in dict.fromkeys(r.cell for r in rows):
        for threads in dict.fromkeys(r.threads for r in rows):
            sel = sorted((r for r in rows if r.cell == cell and r.threads == threads),
                         key=lambda r: r.steps)  # fmt: skip
            if not sel or "lstm/scan" not in sel[0].ratios:
                continue
            wins = [r.steps for r in sel if r.ratios["lstm/scan"] > 1.0]
            if wins and wins[0] == sel[0].steps:
                where = f"<= {wins[0]} (faster at every measured T)"
            else:
                where = str(wins[0]) if wins else f"> {sel[-1].steps} (never faster)"
            at = {r.steps: r for r in sel}
            target = ""
            for name in ("step", "cell"):
                if 1024 in at and f"{name}/scan" in at[1024].ratios:
                    target += f"; {name}/scan at T=1024: {at[1024].ratios[f'{name}/scan']:.2f}x"
            out.append(f"{cell}, {threads} thread(s): scan beats torch.nn.LSTM from T = {where}"
                       f"{target}")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scan",
                                 description=__doc__.split("\n")[0])  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="T = 64, 256 only, 3 repetitions")
    ap.add_argument("--steps", default=None, help="comma-separated T (default 64,256,1024,4096)")
    ap.add_argument("--cells", default="mingru,minlstm")
    ap.add_argument("--models", default=",".join(MODELS), help=f"of {MODELS}; scan is required")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--reps", type=int, default=None, help="timed rounds (default 5, quick 3)")
    ap.add_argument("--threads", default=None,
                    help="comma-separated thread counts (default: torch's default, then 1)")  # fmt: skip
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory pass")
    ap.add_argument("--json", nargs="?", const="benchmarks/scan.json", default=None,
                    help="also write the rows as JSON (default path benchmarks/scan.json)")  # fmt: skip
    args = ap.parse_args(argv)
    models = tuple(args.models.split(","))
    if "scan" not in models or not set(models) <= set(MODELS):
        raise SystemExit(f"--models must include scan and be among {MODELS}, got {models}")
    steps = tuple(int(s) for s in args.steps.split(",")) if args.steps else (
        QUICK_STEPS if args.quick else STEPS)  # fmt: skip
    reps = args.reps or (3 if args.quick else 5)
    default = torch.get_num_threads()
    threads = ([int(t) for t in args.threads.split(",")] if args.threads
               else list(dict.fromkeys([default, 1])))  # fmt: skip
    info = cpu_info()
    print(f"machine: {json.dumps(info)}")
    print(f"N={args.batch} H={args.hidden} input={args.hidden}; medians of {reps} rounds; "
          f"threads {threads} (headline: {threads[0]})")  # fmt: skip
    rows: list[Row] = []
    t0 = time.perf_counter()
    for cell in args.cells.split(","):
        for t in steps:
            for k, n in enumerate(threads):
                row = bench(cell, t, args.batch, args.hidden, reps, n, models,
                            memory=k == 0 and not args.no_memory)  # fmt: skip
                rows.append(row)
                print(markdown([row], models).splitlines()[-1], flush=True)
    torch.set_num_threads(default)
    print()
    print(markdown(rows, models))
    print()
    for line in crossovers(rows):
        print(line)
    print(f"\n{len(rows)} rows in {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "reps": reps, "rows": [asdict(r) for r in rows]}, f,
                      indent=1)  # fmt: skip
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
