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
