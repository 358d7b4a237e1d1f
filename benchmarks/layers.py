"""Speed and memory of rnnkit's recurrent layers against torch.nn, as a user sees them (issue 10).

    python -m benchmarks.layers [--quick] [--threads default,1] [--sizes 35x20x128x2,...]
                                [--modes LSTM,GRU] [--variants plain,layer_norm,...] [--rounds N]
                                [--stat median|min] [--loop] [--no-cold] [--json [PATH]]

For each size ``(T, N, H, layers)`` (input size ``H``), mode (LSTM, GRU) and variant, the rnnkit
layer (``rnnkit.LSTM``/``GRU`` with the variant, backend ``auto``: torch's native kernels when
plain, the fused path otherwise) runs against ``torch.nn.LSTM``/``GRU`` of the same size, in one
process, in training mode (the variants' masks are drawn), forward+backward
(``out.sum().backward()``, input and parameter gradients) and forward only (``torch.no_grad()``).

What is measured, and why:

* **Threads.** The headline is torch's default thread count (``torch.get_num_threads()`` at
  start, what a user gets); one thread is measured beside it in the same table (``--threads``).
* **Wall clock** (``time.perf_counter``), what a user waits for (``--clock cpu`` gives this
  process's CPU time instead, not the headline).
* **Interleaved rounds, ratio per round.** The machines are shared and noisy: other processes
  take the cores for milliseconds to seconds. A round runs each model once, back to back (the
  order alternates from round to round, so neither always runs first); the round's ratio
  ``rnnkit ms / torch.nn ms`` compares two runs a few milliseconds apart, which a slow phase of the
  machine hits both of. The table reports the **median of the per-round ratios** over ``--rounds``
  rounds: a round that a preemption hit on one side is an outlier, which the median ignores.
  ``--stat min`` reports ``min(rnnkit ms) / min(torch.nn ms)`` instead (the best run of each: on a
  quiet machine the closest to the code's own cost, but one lucky run decides it); the JSON holds
  both, and every round's times.
* **Absolute times** only beside the ratios: torch.nn's ms (the same statistic) at the headline
  thread count.
* **Peak memory**: the peak of live tensor bytes during one forward+backward, from the allocation
  events of ``torch.profiler`` (``profile_memory=True``; ``torch.cuda.max_memory_allocated`` on
  GPU), rnnkit / torch.nn, torch.nn's MB beside.
* **Loop** (``--loop``): the same rnnkit layer with ``backend="reference"``, a Python loop of
  torch ops, as a third model in the rounds at the headline thread count (off by default: it
  costs more than the two others together).
* **Cold first call** (header): the first forward+backward of an LSTM ``layer_norm`` layer of the
  first size in a new process with an empty ``RNNKIT_CACHE_DIR``, so it includes building the C
  kernels (the build is also given apart). ``first_call_ms`` in the JSON is, per row, the first
  forward+backward of a new rnnkit layer in this process (kernels built: first allocations).

Prints a markdown header (machine, settings) and one table, rows (mode, H, variant); ``--json``
writes the same with every round's times.
"""

from __future__ import annotations

import os

# numpy's OpenBLAS (imported through rnnkit, unused here) keeps a spinning worker thread that
# would take a core from torch's threads; torch does not use it
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # keep the profiler's start/stop lines off stderr

import argparse
import gc
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import rnnkit
from benchmarks.common import format_header, machine_header

Size = tuple[int, int, int, int]  # (T, N, H, layers); the input size is H

SIZES: tuple[Size, ...] = ((35, 20, 128, 2), (35, 20, 256, 2), (35, 20, 512, 2))
QUICK_SIZES: tuple[Size, ...] = ((35, 20, 128, 2), (35, 20, 256, 2))
VARIANTS: dict[str, dict] = {
    "plain": {},
    "layer_norm": {"layer_norm": True},
    "zoneout": {"zoneout": 0.1},
    "layer_norm+zoneout": {"layer_norm": True, "zoneout": 0.1},
    "recurrent_dropout": {"recurrent_dropout": 0.25},
    "weight_drop": {"weight_drop": 0.5},
    "peephole": {"peephole": True},  # LSTM only
    "combination": {"layer_norm": True, "recurrent_dropout": 0.25, "zoneout": 0.1},
}
QUICK_VARIANTS = ("plain", "layer_norm", "zoneout", "layer_norm+zoneout")
LSTM_ONLY = {"peephole"}
ROUNDS, QUICK_ROUNDS = 40, 30
PASSES = ("fwd+bwd", "fwd")
STATS = ("median", "min")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = CLOCKS["wall"]


@dataclass
class Timing:
    """Every round's milliseconds of one pass at one thread count: index ``i`` of each list is
    round ``i`` (the models ran back to back)."""

    pass_: str  # "fwd+bwd" or "fwd"
    threads: int
    native_ms: list[float]
    rnnkit_ms: list[float]
    loop_ms: list[float] | None = None

    def ratio(self, stat: str, model: str = "rnnkit") -> float:
        """``model / torch.nn``: the median of the per-round ratios, or the ratio of the minima."""
        ours = self.rnnkit_ms if model == "rnnkit" else self.loop_ms
        assert ours is not None, f"{model} was not measured"
        if stat == "min":
            return min(ours) / min(self.native_ms)
        return statistics.median(a / b for a, b in zip(ours, self.native_ms))

    def native(self, stat: str) -> float:
        """torch.nn's ms by the same statistic."""
        return min(self.native_ms) if stat == "min" else statistics.median(self.native_ms)

    def summary(self) -> dict[str, float]:
        out = {f"ratio_{s}": self.ratio(s) for s in STATS}
        out |= {f"native_ms_{s}": self.native(s) for s in STATS}
        if self.loop_ms is not None:
            out |= {f"loop_ratio_{s}": self.ratio(s, "loop") for s in STATS}
        return out


@dataclass
class Row:
    """One line of the table: one (mode, size, variant)."""

    mode: str
    size: Size
    variant: str
    first_call_ms: float  # the first forward+backward of a new rnnkit layer (kernels built)
    timings: list[Timing] = field(default_factory=list)
    native_mb: float | None = None
    rnnkit_mb: float | None = None

    def timing(self, pass_: str, threads: int) -> Timing | None:
        return next((t for t in self.timings if (t.pass_, t.threads) == (pass_, threads)), None)

    def to_json(self) -> dict:
        out = asdict(self)
        for t, d in zip(self.timings, out["timings"]):
            d.update(t.summary())
        return out


# ---------------------------------------------------------------- measuring


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device) -> float:
    """Milliseconds of one call, on the clock chosen by ``--clock``."""
    sync(device)
    t0 = CLOCK()
    fn()
    sync(device)
    return (CLOCK() - t0) * 1e3


def step_fn(model: torch.nn.Module, x: torch.Tensor, backward: bool) -> Callable[[], None]:
    """One training forward+backward, or one forward under ``no_grad``; ``x (T, N, H)``."""

    def run() -> None:
        if backward:
            model.zero_grad(set_to_none=True)
            x.grad = None
            out, _ = model(x)  # (T, N, H)
            out.sum().backward()
        else:
            with torch.no_grad():
                model(x)

    return run


def interleaved(
    fns: dict[str, Callable[[], None]], rounds: int, device: torch.device
) -> dict[str, list[float]]:
    """Each model's ms in each of ``rounds`` rounds; a round runs every model once, back to back,
    the order rotated by one each round. The garbage collector is off meanwhile (a collection
    would land on one side of a round)."""
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                times[name].append(timed(fns[name], device))
    finally:
        gc.enable()
    return times


def peak_memory_mb(fn: Callable[[], None], device: torch.device, runs: int = 2) -> float:
    """Peak of live tensor bytes during ``fn`` (MB), from the profiler's allocation events; the
    least of ``runs`` calls (the first profiled call can hold a one-time allocation)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 1e6
    return min(_profiled_peak(fn) for _ in range(runs)) / 1e6


def _profiled_peak(fn: Callable[[], None]) -> int:
    # the autograd profiler itself: torch.profiler.profile would import torch._inductor (seconds)
    with torch.autograd.profiler.profile(profile_memory=True) as prof:
        fn()
    events = [e for e in prof.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def build(mode: str, hidden: int, layers: int, device: torch.device, **kw) -> torch.nn.Module:
    """``torch.nn.<mode>`` without ``backend``, ``rnnkit.<mode>`` with it; the same weights."""
    torch.manual_seed(0)
    cls = getattr(rnnkit, mode) if "backend" in kw else getattr(torch.nn, mode)
    return cls(hidden, hidden, num_layers=layers, device=device, **kw).train()


def bench_config(
    mode: str,
    size: Size,
    variant: str,
    threads: list[int],
    rounds: int,
    loop: bool,
    device: torch.device,
) -> Row:
    """One row: both passes at each thread count (the first is the headline), then peak memory."""
    steps, batch, hidden, layers = size
    kw = VARIANTS[variant]
    models = {
        "native": build(mode, hidden, layers, device),
        "rnnkit": build(mode, hidden, layers, device, backend="auto", **kw),
    }
    if loop:
        models["loop"] = build(mode, hidden, layers, device, backend="reference", **kw)
    x = torch.randn(steps, batch, hidden, device=device, requires_grad=True)  # (T, N, H)
    torch.set_num_threads(threads[0])
    row = Row(mode, size, variant, timed(step_fn(models["rnnkit"], x, True), device))
    for n in threads:
        torch.set_num_threads(n)
        present = {k: m for k, m in models.items() if k != "loop" or n == threads[0]}
        for pass_ in PASSES:
            fns = {k: step_fn(m, x, pass_ == "fwd+bwd") for k, m in present.items()}
            for fn in [*fns.values()] * 2:
                fn()  # warm-up: allocations, this thread count's pool
            ms = interleaved(fns, rounds, device)
            row.timings.append(Timing(pass_, n, ms["native"], ms["rnnkit"], ms.get("loop")))
    torch.set_num_threads(threads[0])
    row.native_mb = peak_memory_mb(step_fn(models["native"], x, True), device)
    row.rnnkit_mb = peak_memory_mb(step_fn(models["rnnkit"], x, True), device)
    return row


COLD_START = """
import sys, time
import torch, rnnkit
from rnnkit.backends import cpu_kernels
steps, batch, hidden, layers, threads = map(int, sys.argv[1:])
torch.set_num_threads(threads)
m = rnnkit.LSTM(hidden, hidden, layers, layer_norm=True)
x = torch.randn(steps, batch, hidden)
t0 = time.perf_counter()
cpu_kernels.library(torch.float32)
t1 = time.perf_counter()
m(x)[0].sum().backward()
print(t1 - t0, time.perf_counter() - t1)
"""


def cold_first_call_ms(size: Size, threads: int, prebuilt: bool = True) -> dict[str, float]:
    """The first forward+backward of an LSTM ``layer_norm`` layer of ``size`` in a new process
    with an empty kernel cache: ``build_ms`` (finding, or compiling, the C library) and
    ``call_ms`` (the call after it), ``total_ms`` what the user's first call takes. ``prebuilt``
    False ignores the install-time build (``RNNKIT_PREBUILT_KERNELS=0``): the first call compiles."""
    with tempfile.TemporaryDirectory() as cache:
        src = str(Path(rnnkit.__file__).parents[1])
        path = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
        env = os.environ | {"RNNKIT_CACHE_DIR": cache, "PYTHONPATH": path,
                            "RNNKIT_PREBUILT_KERNELS": "1" if prebuilt else "0"}  # fmt: skip
        argv = [sys.executable, "-c", COLD_START, *map(str, (*size, threads))]
        run = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300, env=env)
    build_s, call_s = map(float, run.stdout.split()[-2:])
    return {
        "build_ms": build_s * 1e3,
        "call_ms": call_s * 1e3,
        "total_ms": (build_s + call_s) * 1e3,
    }


def cold_first_calls(size: Size, threads: int) -> dict[str, dict[str, float]]:
    """:func:`cold_first_call_ms` with the install-time build and without it."""
    return {"installed": cold_first_call_ms(size, threads, True),
            "compiled": cold_first_call_ms(size, threads, False)}  # fmt: skip


# ---------------------------------------------------------------- the table


def size_label(size: Size, same_tnl: bool) -> str:
    return str(size[2]) if same_tnl else "x".join(map(str, size))


def columns(threads: list[int], loop: bool) -> list[str]:
    """The timing columns, headline thread count first in each pass."""
    head = threads[0]
    cols = [f"{p} ({n} thr)" for p in PASSES for n in threads]
    cols.append(f"torch.nn ms fwd+bwd / fwd ({head} thr)")
    if loop:
        cols += [f"loop {p} ({head} thr)" for p in PASSES]
    return cols + ["peak mem fwd+bwd (torch.nn MB)"]


def cells(row: Row, threads: list[int], loop: bool, stat: str) -> list[str]:
    def ratio(pass_: str, n: int, model: str = "rnnkit") -> str:
        t = row.timing(pass_, n)
        return f"{t.ratio(stat, model):.2f}" if t else ""

    head = threads[0]
    out = [ratio(p, n) for p in PASSES for n in threads]
    native = [row.timing(p, head) for p in PASSES]
    out.append(" / ".join(f"{t.native(stat):.1f}" for t in native if t))
    if loop:
        out += [ratio(p, head, "loop") for p in PASSES]
    mem = ""
    if row.native_mb and row.rnnkit_mb is not None:
        mem = f"{row.rnnkit_mb / row.native_mb:.2f} ({row.native_mb:.1f})"
    return out + [mem]


def markdown(rows: list[Row], threads: list[int], loop: bool, stat: str) -> list[str]:
    """The table, rows in (mode, H, variant) order; ratios rnnkit / torch.nn."""
    same_tnl = len({(s, n, layers) for s, n, _, layers in (r.size for r in rows)}) <= 1
    head = ["mode", "H" if same_tnl else "T x N x H x L", "variant", *columns(threads, loop)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        line = [r.mode, size_label(r.size, same_tnl), r.variant, *cells(r, threads, loop, stat)]
        lines.append("| " + " | ".join(line) + " |")
    return lines


def settings_lines(args: argparse.Namespace, sizes: list[Size], cold: dict | None) -> list[str]:
    t, n, _, layers = sizes[0]
    shape = (
        f"T={t}, N={n}, {layers} layer{'s' if layers > 1 else ''}, input size = H"
        if len({(s[0], s[1], s[3]) for s in sizes}) == 1
        else "sizes T x N x H x L, input size = H"
    )
    stat = (
        f"median of {args.rounds} per-round ratios (rounds interleaved, order alternating)"
        if args.stat == "median"
        else f"min over {args.rounds} rounds of rnnkit / min of torch.nn (--stat min)"
    )
    lines = [
        f"- {shape}; training mode; ratios rnnkit / torch.nn of the same size: {stat}; "
        f"{args.clock} clock; threads {', '.join(map(str, args.thread_counts))}",
    ]
    for how, label in (("installed", "kernels built at install"), ("compiled", "no install-time "
                       "build, RNNKIT_PREBUILT_KERNELS=0")):  # fmt: skip
        if cold and how in cold:
            c = cold[how]
            lines.append(
                f"- cold first call ({label}; new process, empty RNNKIT_CACHE_DIR; LSTM "
                f"layer_norm {'x'.join(map(str, sizes[0]))}, {args.thread_counts[0]} threads): "
                f"{c['total_ms']:.0f} ms = C library {c['build_ms']:.0f} ms + first "
                f"forward+backward {c['call_ms']:.0f} ms"
            )
    return lines


# ---------------------------------------------------------------- command line


def parse_sizes(text: str) -> list[Size]:
    """``"35x20x128x2,35x20x256x2"`` -> ``[(35, 20, 128, 2), (35, 20, 256, 2)]``."""
    sizes = []
    for item in filter(None, text.split(",")):
        parts = item.lower().split("x")
        if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise SystemExit(f"--sizes expects TxNxHxL (e.g. 35x20x128x2), got {item!r}")
        sizes.append(tuple(map(int, parts)))
    return sizes


def parse_threads(text: str, default: int) -> list[int]:
    """``"default,1"`` -> ``[default, 1]`` (duplicates dropped, order kept)."""
    out: list[int] = []
    for item in filter(None, text.split(",")):
        n = default if item == "default" else int(item)
        if n < 1:
            raise SystemExit(f"--threads: counts are positive, got {item!r}")
        if n not in out:
            out.append(n)
    return out


def parse_names(text: str, allowed, what: str) -> list[str]:
    names = [s for s in text.split(",") if s]
    unknown = [s for s in names if s not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; choose from {', '.join(allowed)}")
    return names


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.layers",
        description=__doc__.split("\n")[0],
    )
    ap.add_argument("--quick", action="store_true",
                    help=f"H=128 and 256, variants {','.join(QUICK_VARIANTS)}, {QUICK_ROUNDS} "
                    "rounds (about 2-3 minutes on 2 cores)")  # fmt: skip
    ap.add_argument("--sizes", default=None, help="TxNxHxL,... (default: T=35 N=20 L=2, "
                    "H=128,256,512; --quick: H=128,256)")  # fmt: skip
    ap.add_argument("--modes", default="LSTM,GRU", help="LSTM, GRU or both (default: both)")
    ap.add_argument("--variants", default=None, help=f"of {','.join(VARIANTS)} (default: all; "
                    "--quick: the four quick ones); peephole runs for the LSTM only")  # fmt: skip
    ap.add_argument("--threads", default="default,1",
                    help="thread counts, the first is the headline (default: default,1; "
                    "'default' is torch.get_num_threads() at start)")  # fmt: skip
    ap.add_argument("--rounds", "--reps", type=int, default=None,
                    help=f"interleaved rounds per pass and thread count (default {ROUNDS}, "
                    f"--quick {QUICK_ROUNDS})")  # fmt: skip
    ap.add_argument("--stat", choices=STATS, default="median",
                    help="median of per-round ratios (default), or the ratio of the minima")  # fmt: skip
    ap.add_argument(
        "--loop",
        action="store_true",
        help="also time backend='reference' (the Python loop) at the headline threads",
    )
    ap.add_argument(
        "--no-cold",
        action="store_true",
        help="skip the cold first call (a new process that builds the C kernels)",
    )
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                    help="wall time (default), or this process's CPU time")  # fmt: skip
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", nargs="?", const="benchmarks/layers.json", default=None,
                    help="also write the header and rows, with every round's times, as JSON")  # fmt: skip
    return ap


def configs(modes: list[str], sizes: list[Size], variants: list[str]):
    """(mode, size, variant) in table order."""
    for mode in modes:
        for size in sizes:
            for variant in variants:
                if mode == "LSTM" or variant not in LSTM_ONLY:
                    yield mode, size, variant


def stop(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> list[Row]:
    info = machine_header()  # first: torch's default thread count, before any change
    args = parser().parse_args(argv)
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    args.thread_counts = parse_threads(args.threads, int(info["torch_threads"]))
    args.rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    sizes = parse_sizes(args.sizes) if args.sizes else list(QUICK_SIZES if args.quick else SIZES)
    default_variants = ",".join(QUICK_VARIANTS if args.quick else VARIANTS)
    variants = parse_names(args.variants or default_variants, VARIANTS, "variants")
    modes = parse_names(args.modes, ("LSTM", "GRU"), "modes")
    device = torch.device(args.device)

    t0 = time.perf_counter()
    cold = None
    if device.type == "cpu" and not args.no_cold:
        cold = cold_first_calls(sizes[0], args.thread_counts[0])
    rows = []
    signal.signal(signal.SIGTERM, stop)  # `timeout` or a kill: print the rows measured so far
    try:
        for mode, size, variant in configs(modes, sizes, variants):
            print(f"{mode} {'x'.join(map(str, size))} {variant} ...", file=sys.stderr, flush=True)
            rows.append(bench_config(mode, size, variant, args.thread_counts, args.rounds,
                                     args.loop, device))  # fmt: skip
    except KeyboardInterrupt:
        print(f"interrupted: the table has the first {len(rows)} rows", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.set_num_threads(int(info["torch_threads"]))
    elapsed = time.perf_counter() - t0
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())

    lines = format_header(info) + settings_lines(args, sizes, cold)
    lines += ["", *markdown(rows, args.thread_counts, args.loop, args.stat), ""]
    lines.append(f"{len(rows)} rows in {elapsed:.0f} s; load average at the end {load}")
    print("\n".join(lines))
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        payload = {"machine": info, "settings": settings, "cold_first_call": cold,
                   "elapsed_s": elapsed, "rows": [r.to_json() for r in rows]}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)
        print(f"wrote {args.json}")
    return rows


if __name__ == "__main__":
    main()
