"""Helpers shared by the task benchmarks."""

from __future__ import annotations

import json


def parse_sets(items: list[str]) -> dict:
    """``["hidden_size=256", "attention=true"]`` -> config overrides (JSON values, else strings)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects FIELD=VALUE, got {item!r}")
        out[key] = json.loads(value) if value[:1] in "0123456789-[{tfn" else value
    return out


def cpu_model() -> tuple[str, str]:
    """(model name, vendor) of the CPU from ``/proc/cpuinfo`` (``platform`` where it is absent)."""
    import platform

    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("model name", "vendor_id"):
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    return model, fields.get("vendor_id", "unknown")


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
