"""metrics.jsonl, curves.png and the progress bar."""

from __future__ import annotations

import json
import math

from rnnkit.train import MetricsLog, plot_curves, read_metrics
from rnnkit.train.progress import ProgressBar


def test_metrics_log_appends_reloads_and_truncates(tmp_path):
    log = MetricsLog(tmp_path)
    for step in range(1, 6):
        log.append({"step": step, "split": "train", "loss": 1.0 / step, "metrics": {}})
    log.append({"step": 5, "split": "valid", "loss": math.inf, "metrics": {"ppl": math.nan}})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 6
    assert json.loads(lines[-1]) == {
        "step": 5,
        "split": "valid",
        "loss": None,
        "metrics": {"ppl": None},
    }

    again = MetricsLog(tmp_path)  # a resumed run reads the file back
    assert again.records == read_metrics(tmp_path / "metrics.jsonl")
    again.truncate_after(3)  # steps 4 and 5 came after the checkpoint being resumed
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]
    again.clear()
    assert not (tmp_path / "metrics.jsonl").exists() and again.records == []


def test_read_metrics_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert read_metrics(path) == [{"step": 1, "loss": 2.0}]


def test_metrics_log_without_a_directory_keeps_records_in_memory():
    log = MetricsLog(None)
    log.append({"step": 1, "loss": 1.0})
    assert log.records == [{"step": 1, "loss": 1.0}] and log.path is None


def test_plot_curves_writes_a_png(tmp_path):
    records = [{"step": s, "split": "train", "loss": 3.0 / s} for s in range(1, 20)]
    records += [{"step": s, "split": "valid", "loss": 3.5 / s} for s in (5, 10, 15)]
    records.append({"step": 20, "split": "train", "loss": None})
    path = plot_curves(records, tmp_path / "curves.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (700, 420)


def test_progress_bar_is_silent_off_a_terminal(capsys):
    bar = ProgressBar(total=10, enabled=True)  # pytest's stderr is not a TTY
    assert not bar.enabled
    bar.update(3)
    bar.show(1.0, {"ppl": 2.7}, 1000.0, 0.1)
    bar.write("hello")
    bar.set_total(20)
    bar.close()
    assert capsys.readouterr().err == ""


def test_progress_bar_shows_loss_metrics_throughput_and_eta(capsys, monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar = ProgressBar(total=10, enabled=True)
    assert bar.enabled
    bar.update(4)
    bar.show(1.2345, {"bpc": 1.78}, 12345.0, 0.002)
    bar.update(1)
    bar.close()
    err = capsys.readouterr().err
    assert "5/10" in err and "loss=1.2345" in err and "bpc=1.78" in err
    assert "tok/s=12,345" in err and "lr=0.002" in err and "<" in err  # elapsed<remaining (ETA)
