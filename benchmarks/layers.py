"""Speed and memory of rnnkit's recurrent layers against torch.nn and a plain Python loop (issue 3).

    python -m benchmarks.layers [--quick] [--json [PATH]] [--reps N] [--threads N]

For each size ``(T, N, H, layers)`` (input size ``H``), mode (LSTM, GRU) and variant, three models
with the same configuration run interleaved in one process, in training mode (the variants' masks
are drawn), forward-only under ``torch.no_grad()`` and forward+backward (``out.sum().backward()``):

* ``native``: ``torch.nn.LSTM``/``GRU`` of the same size (plain: it has no variants);
* ``rnnkit``: ``rnnkit.LSTM``/``GRU`` with the variant (backend ``auto``: native kernels when plain,
  the fused path otherwise);
* ``loop``: the same rnnkit layer with ``backend="reference"``, a plain Python loop of torch ops.

Times are medians of ``--reps`` rounds; ratios are to ``native`` measured side by side. Peak memory
is the peak of live tensor bytes during one forward+backward, from the allocation events of
``torch.profiler`` (``profile_memory=True``; CPU allocator, or the CUDA one on GPU). GFLOP/s counts
the GEMMs only (``2 T N G H (D + H)`` per layer forward, 3x that forward+backward) against a
measured sgemm peak (the faster of ``torch.mm`` and oneDNN's prepacked GEMM on 2048 x 2048).
``first call`` is the first forward+backward of a new rnnkit layer (warm-up included).
"""

from __future__ import annotations

import os

# numpy's OpenBLAS (imported through rnnkit, unused here) keeps a spinning worker thread whose CPU
# time would count in --clock cpu; torch does not use it
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

import rnnkit
from rnnkit.backends import cpu_kernels
from rnnkit.backends.gemm import Gemm, prefer_onednn

from .common import cpu_model

SIZES = ((35, 20, 200, 2), (35, 20, 650, 2), (100, 32, 256, 1), (64, 32, 512, 2))
QUICK_SIZES = ((35, 20, 200, 2),)
VARIANTS: dict[str, dict] = {
    "plain": {},
    "layer_norm": {"layer_norm": True},
    "recurrent_dropout": {"recurrent_dropout": 0.25},
    "weight_drop": {"weight_drop": 0.5},
    "zoneout": {"zoneout": 0.1},
    "peephole": {"peephole": True},
    "combination": {"layer_norm": True, "recurrent_dropout": 0.25, "zoneout": 0.1},
}
QUICK_VARIANTS = ("plain", "layer_norm", "combination")
GATES = {"LSTM": 4, "GRU": 3}


@dataclass
class Row:
    """One line of the table (times in ms, memory in MB)."""

    mode: str
    size: str
    variant: str
    pass_: str
    native_ms: float
    rnnkit_ms: float
    loop_ms: float
    rnnkit_gflops: float
    peak_fraction: float
    native_mb: float | None = None
    rnnkit_mb: float | None = None
    first_call_ms: float | None = None

    @property
    def ratio(self) -> float:
        return self.rnnkit_ms / self.native_ms

    @property
    def loop_ratio(self) -> float:
        return self.loop_ms / self.native_ms


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = CLOCKS["wall"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sgemm_peak(device: torch.device, n: int = 2048, reps: int = 5) -> float:
    """Best GFLOP/s of an ``n x n`` float32 GEMM on ``device``: ``torch.mm`` and, on CPU, oneDNN's
    prepacked GEMM (which rnnkit's fused path and torch.nn's kernels use)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    gemms = [lambda: torch.mm(a, b)]
    if device.type == "cpu":
        gemm = Gemm(b.t(), n)
        gemms.append(lambda: gemm(a))
    best = float("inf")
    for fn in gemms:
        fn()
        for _ in range(reps):
            sync(device)
            t0 = CLOCK()
            fn()
            sync(device)
            best = min(best, CLOCK() - t0)
    return 2 * n**3 / best / 1e9


def gemm_flops(mode: str, steps: int, batch: int, hidden: int, layers: int) -> float:
    """GEMM FLOPs of one forward pass (input size = hidden)."""
    return 2.0 * steps * batch * GATES[mode] * hidden * (2 * hidden) * layers


def step_fn(model: torch.nn.Module, x: torch.Tensor, backward: bool) -> Callable[[], None]:
    def run() -> None:
        if backward:
            model.zero_grad(set_to_none=True)
            out, _ = model(x)
            out.sum().backward()
        else:
            with torch.no_grad():
                model(x)

    return run


def timed(fn: Callable[[], None], device: torch.device) -> float:
    """Milliseconds of one call, on the clock chosen by ``--clock``."""
    sync(device)
    t0 = CLOCK()
    fn()
    sync(device)
    return (CLOCK() - t0) * 1e3


def peak_memory_mb(fn: Callable[[], None], device: torch.device) -> float:
    """Peak of live tensor bytes during ``fn`` (MB), from the profiler's allocation events."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 1e6
    acts = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=acts, profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak / 1e6


def build(mode: str, hidden: int, layers: int, device: torch.device, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    cls = getattr(rnnkit, mode) if kw.get("backend") else getattr(torch.nn, mode)
    return cls(hidden, hidden, num_layers=layers, device=device, **kw).train()


def bench_config(
    mode: str,
    size: tuple[int, int, int, int],
    variant: str,
    reps: int,
    device: torch.device,
    peak: float,
) -> list[Row]:
    """Rows (forward-only, forward+backward) of one (mode, size, variant)."""
    steps, batch, hidden, layers = size
    kw = VARIANTS[variant]
    native = build(mode, hidden, layers, device)
    ours = build(mode, hidden, layers, device, backend="auto", **kw)
    loop = build(mode, hidden, layers, device, backend="reference", **kw)
    x = torch.randn(steps, batch, hidden, device=device, requires_grad=True)
    first = timed(step_fn(ours, x, True), device)
    models = {"native": native, "rnnkit": ours, "loop": loop}
    rows = []
    for backward in (False, True):
        fns = {name: step_fn(m, x, backward) for name, m in models.items()}
        for fn in fns.values():
            fn()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(reps):
            for name, fn in fns.items():
                times[name].append(timed(fn, device))
        med = {name: statistics.median(ts) for name, ts in times.items()}
        flops = gemm_flops(mode, steps, batch, hidden, layers) * (3 if backward else 1)
        gflops = flops / (med["rnnkit"] / 1e3) / 1e9
        row = Row(mode, "x".join(map(str, size)), variant, "fwd+bwd" if backward else "fwd",
                  med["native"], med["rnnkit"], med["loop"], gflops, gflops / peak)  # fmt: skip
        if backward:
            row.native_mb = peak_memory_mb(fns["native"], device)
            row.rnnkit_mb = peak_memory_mb(fns["rnnkit"], device)
            row.first_call_ms = first
        rows.append(row)
    return rows


def markdown(rows: list[Row]) -> str:
    head = ("| mode | T x N x H x L | variant | pass | native ms | rnnkit ms | loop ms "
            "| rnnkit/native | loop/native | rnnkit GFLOP/s (% peak) "
            "| peak MB native / rnnkit (ratio) | first call ms |")  # fmt: skip
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        mem = first = ""
        if r.native_mb is not None and r.rnnkit_mb is not None:
            mem = f"{r.native_mb:.1f} / {r.rnnkit_mb:.1f} ({r.rnnkit_mb / r.native_mb:.2f}x)"
            first = f"{r.first_call_ms:.0f}"
        lines.append(
            f"| {r.mode} | {r.size} | {r.variant} | {r.pass_} | {r.native_ms:.1f} | "
            f"{r.rnnkit_ms:.1f} | {r.loop_ms:.1f} | {r.ratio:.2f} | {r.loop_ratio:.2f} | "
            f"{r.rnnkit_gflops:.1f} ({100 * r.peak_fraction:.0f}%) | {mem} | {first} |"
        )
    return "\n".join(lines)


COLD_START = """
import os, tempfile, time
os.environ["RNNKIT_CACHE_DIR"] = tempfile.mkdtemp()
import torch, rnnkit
torch.set_num_threads(1)
m = rnnkit.LSTM(200, 200, 2, layer_norm=True)
x = torch.randn(35, 20, 200)
t = time.perf_counter()
m(x)[0].sum().backward()
print(time.perf_counter() - t)
"""


def cold_first_call_ms() -> float:
    """The first forward+backward of a variant LSTM in a new process with an empty kernel cache:
    the one-time C compile (rnnkit.backends.cpu_kernels) plus the first call."""
    run = subprocess.run([sys.executable, "-c", COLD_START], capture_output=True, text=True,
                         check=True, timeout=300)  # fmt: skip
    return float(run.stdout.strip().splitlines()[-1]) * 1e3


def machine(device: torch.device, peak: float) -> dict[str, object]:
    model, _ = cpu_model()
    info: dict[str, object] = {
        "cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "device": str(device),
        "sgemm_peak_gflops": round(peak, 1),
        "cpu_gemm": "onednn" if prefer_onednn() else "mkl",
        "c_kernels": cpu_kernels.library() is not None,
    }  # fmt: skip
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.layers", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--quick", action="store_true", help="one size, three variants (< 2 minutes)")
    ap.add_argument(
        "--json",
        nargs="?",
        const="benchmarks/layers.json",
        default=None,
        help="also write the rows as JSON (default path benchmarks/layers.json)",
    )
    ap.add_argument("--reps", type=int, default=None, help="timed rounds per configuration")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--modes", default="LSTM,GRU")
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                    help="wall time, or this process's CPU time (robust on a shared machine; "
                    "meaningful with --threads 1 on CPU)")  # fmt: skip
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    reps = args.reps or (3 if args.quick else 5)
    peak = sgemm_peak(device)
    info = machine(device, peak)
    info["clock"] = args.clock
    if device.type == "cpu" and info["c_kernels"]:
        info["cold_first_call_ms"] = round(cold_first_call_ms())
    print(f"machine: {json.dumps(info)}")
    rows: list[Row] = []
    t0 = time.perf_counter()
    for size in QUICK_SIZES if args.quick else SIZES:
        for mode in args.modes.split(","):
            for variant in QUICK_VARIANTS if args.quick else VARIANTS:
                if variant == "peephole" and mode != "LSTM":
                    continue
                rows.extend(bench_config(mode, size, variant, reps, device, peak))
    print(markdown(rows))
    print(f"\n{len(rows)} rows in {time.perf_counter() - t0:.0f} s; medians of {reps} rounds")
    if args.json:
        payload = {
            "machine": info,
            "reps": reps,
            "rows": [asdict(r) | {"ratio": r.ratio, "loop_ratio": r.loop_ratio} for r in rows],
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
