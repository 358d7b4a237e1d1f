"""Helpers shared by the benchmarks: config overrides from ``--set`` and the machine header."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone

import torch

from rnnkit.backends import cpu_kernels
from rnnkit.backends.cpu_kernels.lstm import loop_gemm
from rnnkit.backends.gemm import onednn_gemms

# environment variables that change what is measured, shown in the header when set
ENVIRONMENT = ("RNNKIT_CPU_GEMM", "RNNKIT_CPU_KERNELS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def parse_sets(items: list[str]) -> dict:
    """``["hidden_size=256", "attention=true"]`` -> config overrides (JSON values, else strings)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects FIELD=VALUE, got {item!r}")
        out[key] = json.loads(value) if value[:1] in "0123456789-[{tfn" else value
    return out


def _cpuinfo() -> dict[str, str]:
    """The first ``model name`` and ``vendor_id`` of /proc/cpuinfo (empty where there is none)."""
    found: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                key = key.strip()
                if sep and key in ("model name", "vendor_id") and key not in found:
                    found[key] = value.strip()
    except OSError:
        pass
    return found


def c_kernels_state() -> str:
    """``built``, ``off (RNNKIT_CPU_KERNELS=...)`` or ``unavailable`` (no C compiler, or the build
    failed); builds the float32 library when it is not cached yet."""
    try:
        if not cpu_kernels.enabled():
            return f"off (RNNKIT_CPU_KERNELS={os.environ.get('RNNKIT_CPU_KERNELS')})"
    except ValueError as err:
        return f"off ({err})"
    return "built" if cpu_kernels.library(torch.float32) is not None else "unavailable"


def fused_gemm() -> str:
    """How the fused path runs a CPU float32 layer's per-step GEMMs: from the C time loop with
    torch's BLAS or rnnkit's panel kernel (``loop_gemm``, measured once per process), or from a
    Python loop over the steps with oneDNN's prepacked GEMM or ``torch.mm``; ``torch ops`` when
    the C kernels do not serve."""
    like = torch.empty(0)
    blas = "MKL" if torch.backends.mkl.is_available() else "BLAS"
    dnn = "oneDNN" if onednn_gemms() else f"torch.mm ({blas})"
    if not cpu_kernels.available(like):
        return f"torch ops + {dnn}"
    gemm = loop_gemm(like)
    if gemm is None:
        return f"Python loop + {dnn}"
    return "C time loop + rnnkit panel GEMM" if gemm.panels else f"C time loop + {blas} sgemm"


def machine_header() -> dict[str, object]:
    """The machine and software a benchmark runs on, read now: call it first, before the
    benchmark changes torch's thread count (``torch_threads`` is the count at the call)."""
    cpu = _cpuinfo()
    info: dict[str, object] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu.get("model name") or platform.processor() or platform.machine(),
        "cpu_vendor": cpu.get("vendor_id", "unknown"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "logical_cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "blas": "MKL" if torch.backends.mkl.is_available() else "other",
        "c_kernels": c_kernels_state(),
        "fused_gemm": fused_gemm(),
        "environment": {k: os.environ[k] for k in ENVIRONMENT if k in os.environ},
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def format_header(info: dict[str, object]) -> list[str]:
    """Markdown bullet lines of :func:`machine_header`'s dict; keys it does not know (added by a
    benchmark) follow as ``- key: value``."""
    known = dict(info)
    load = " / ".join(map(str, known.pop("load_average", [])))
    env = known.pop("environment", {}) or {}
    lines = [
        f"- {known.pop('date', '')}",
        f"- CPU: {known.pop('cpu_model', '?')} ({known.pop('cpu_vendor', '?')}, "
        f"{known.pop('cpu_capability', '?')}), {known.pop('logical_cpus', '?')} logical CPUs; "
        f"load average {load} (1 / 5 / 15 min)",
        f"- torch {known.pop('torch', '?')} (BLAS: {known.pop('blas', '?')}), "
        f"default torch threads: {known.pop('torch_threads', '?')}; "
        f"Python {known.pop('python', '?')}",
        f"- rnnkit C kernels: {known.pop('c_kernels', '?')}; fused-path GEMMs: "
        f"{known.pop('fused_gemm', '?')}",
    ]
    if "gpu" in known:
        lines.append(f"- GPU: {known.pop('gpu')}")
    if env:
        lines.append("- environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    lines += [f"- {key.replace('_', ' ')}: {value}" for key, value in known.items()]
    return lines


def cpu_model() -> tuple[str, str]:
    """(model name, vendor) of the CPU from ``/proc/cpuinfo`` (``platform`` where it is absent)."""
    cpu = _cpuinfo()
    model = cpu.get("model name") or platform.processor() or platform.machine() or "unknown"
    return model, cpu.get("vendor_id", "unknown")


def machine_info() -> dict:
    """The machine a benchmark ran on: CPU model and vendor, cores, torch threads and version,
    Python, and the 1-minute load average (others' work on a shared machine skews timings)."""
    import os
    import platform

    import torch

    model, vendor = cpu_model()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "cpu": model,
        "vendor": vendor,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_1min": round(load, 2),
    }


def machine_line(info: dict | None = None) -> str:
    """``machine_info()`` as one line for a report."""
    i = info or machine_info()
    return (
        f"machine: {i['cpu']} ({i['vendor']}), {i['cores']} cores, {i['torch_threads']} torch "
        f"threads, torch {i['torch']}, Python {i['python']}, load {i['load_1min']}"
    )


def take_turns(steps: list, count: int, block: int) -> list[list[float]]:
    """The seconds of ``count`` calls of each of ``steps`` (callables returning the seconds they
    timed), the callables taking turns in blocks of ``block`` calls; each one's first block is a
    warm-up and is not counted."""
    for step in steps:
        for _ in range(block):
            step()
    times: list[list[float]] = [[] for _ in steps]
    while any(len(t) < count for t in times):
        for step, t in zip(steps, times):
            for _ in range(min(block, count - len(t))):
                t.append(step())
    return times
