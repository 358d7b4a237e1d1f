"""What a user sees of a run: a tqdm progress bar, ``metrics.jsonl`` and ``curves.png``.

``metrics.jsonl`` holds one JSON object per log event::

    {"step": 200, "epoch": 0, "split": "train", "loss": 1.83, "metrics": {"bpc": 2.64},
     "lr": 0.002, "tokens": 409600, "tokens_per_s": 51234.5, "elapsed": 8.0}

``split`` is 'train' (mean over the steps since the previous train event) or the evaluated split
('valid'). ``curves.png`` plots the loss of both against the step.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


class ProgressBar:
    """A tqdm bar over optimizer steps; shows loss, the task's metrics (ppl or bpc), tokens/s, ETA.

    Disabled (every method a no-op) when ``enabled`` is False or stderr is not a terminal.
    ``total`` may change while running (a time budget's estimate of the number of steps).
    """

    def __init__(self, total: int | None, initial: int = 0, enabled: bool = True) -> None:
        enabled = enabled and sys.stderr.isatty()
        self._bar = tqdm(
            total=total,
            initial=initial,
            disable=not enabled,
            unit="step",
            dynamic_ncols=True,
            leave=True,
        )

    @property
    def enabled(self) -> bool:
        return not self._bar.disable

    def set_total(self, total: int | None) -> None:
        if self.enabled and total != self._bar.total:
            self._bar.total = total
            self._bar.refresh()

    def update(self, steps: int = 1) -> None:
        self._bar.update(steps)

    def show(self, loss: float, metrics: dict[str, float], tokens_per_s: float, lr: float) -> None:
        """Set the figures shown after the bar."""
        if not self.enabled:
            return
        fields = {"loss": f"{loss:.4f}"}
        fields.update({k: f"{v:.4g}" for k, v in metrics.items()})
        fields["tok/s"] = f"{tokens_per_s:,.0f}"
        fields["lr"] = f"{lr:.3g}"
        self._bar.set_postfix(fields, refresh=False)

    def write(self, message: str) -> None:
        """A line above the bar (evaluation results), only when the bar is shown."""
        if self.enabled:
            self._bar.write(message)

    def close(self) -> None:
        self._bar.close()


class MetricsLog:
    """Appends one JSON object per event to ``run_dir/metrics.jsonl``; keeps the records in memory.

    Non-finite floats are written as JSON ``null`` so that any JSON reader accepts the file.
    """

    def __init__(self, run_dir: str | os.PathLike | None) -> None:
        self.path = None if run_dir is None else Path(run_dir) / METRICS_FILE
        self.records: list[dict[str, Any]] = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.records = read_metrics(self.path) if self.path.is_file() else []

    def truncate_after(self, step: int) -> None:
        """Drop records after ``step`` (written by a run that crashed after its last checkpoint), so
        that a resumed run's log reads as if it had never stopped."""
        kept = [r for r in self.records if r.get("step", 0) <= step]
        if len(kept) != len(self.records) and self.path is not None:
            text = "".join(json.dumps(_finite(r)) + "\n" for r in kept)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)
        self.records = kept

    def clear(self) -> None:
        """Start a fresh log (a new run in an existing directory)."""
        self.records = []
        if self.path is not None and self.path.exists():
            self.path.unlink()

    def append(self, record: dict[str, Any]) -> None:
        record = _finite(record)
        self.records.append(record)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file; a torn last line (crash mid-write) is skipped."""
    records = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not JSON: {e}") from e
    return records


def plot_curves(records: Iterable[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Training and validation loss against the step, as a PNG (matplotlib's Agg canvas; no
    global pyplot state is touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series: dict[str, tuple[list[int], list[float]]] = {}
    for r in records:
        if r.get("loss") is None:
            continue
        xs, ys = series.setdefault(r.get("split", "train"), ([], []))
        xs.append(r["step"])
        ys.append(r["loss"])
    fig = Figure(figsize=(7, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for split, (xs, ys) in sorted(series.items(), key=lambda kv: kv[0] != "train"):
        style = {"marker": "o", "markersize": 3} if split != "train" else {"linewidth": 1}
        ax.plot(xs, ys, label=split, **style)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path
