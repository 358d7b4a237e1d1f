"""The layer benchmark runs end to end on a tiny size and prints the table it promises (no timing
assertions: the figures themselves are the benchmark's business)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ sits beside src/, outside the installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import layers  # noqa: E402
from benchmarks import scan as scan_bench  # noqa: E402
from benchmarks import slstm as slstm_bench  # noqa: E402
from benchmarks.common import format_header, machine_header  # noqa: E402


def table(text: str) -> list[list[str]]:
    """The markdown table's rows as lists of cells, the header first (the rule line dropped)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[:1] + lines[2:]]


def test_layers_main_on_a_tiny_size(tmp_path, capsys):
    path = tmp_path / "layers.json"
    argv = ["--sizes", "4x2x8x1", "--rounds", "1", "--threads", "1", "--modes", "LSTM,GRU",
            "--variants", "plain,peephole", "--loop", "--no-cold", "--json", str(path)]  # fmt: skip
    rows = layers.main(argv)
    head, *body = table(capsys.readouterr().out)
    assert head == [
        "mode", "H", "variant", "fwd+bwd (1 thr)", "fwd (1 thr)",
        "torch.nn ms fwd+bwd / fwd (1 thr)", "loop fwd+bwd (1 thr)", "loop fwd (1 thr)",
        "peak mem fwd+bwd (torch.nn MB)",
    ]  # fmt: skip
    # peephole is an LSTM option: the GRU has no such row
    assert [r[:3] for r in body] == [["LSTM", "8", "plain"], ["LSTM", "8", "peephole"],
                                     ["GRU", "8", "plain"]]  # fmt: skip
    for r in body:
        assert len(r) == len(head)
        for cell in (*r[3:5], *r[6:8]):
            float(cell)  # a ratio in every timing column
    payload = json.loads(path.read_text())
    assert len(payload["rows"]) == len(rows) == 3
    timing = payload["rows"][0]["timings"][0]
    assert {"ratio_median", "ratio_min", "loop_ratio_median", "native_ms"} <= set(timing)


def test_thread_counts_and_columns():
    assert layers.parse_threads("default,1", 2) == [2, 1]
    assert layers.parse_threads("default,1", 1) == [1]
    assert layers.parse_sizes("35x20x128x2,35x20x256x2") == [(35, 20, 128, 2), (35, 20, 256, 2)]
    assert layers.columns([2, 1], loop=False)[:4] == [
        "fwd+bwd (2 thr)", "fwd+bwd (1 thr)", "fwd (2 thr)", "fwd (1 thr)",
    ]  # fmt: skip


def test_machine_header_names_cpu_threads_and_gemm():
    info = machine_header()
    assert {"cpu_model", "cpu_vendor", "logical_cpus", "torch_threads", "fused_gemm"} <= set(info)
    text = "\n".join(format_header(info | {"note": "x"}))
    assert "CPU:" in text and "fused-path GEMMs:" in text and "- note: x" in text


def test_slstm_benchmark_prints_a_row_per_thread_count(capsys):
    slstm_bench.main(["--sizes", "3x2x4x8", "--rounds", "2", "--heads", "2"])
    head, *body = table(capsys.readouterr().out)
    assert head[0] == "T x N x D x H" and head[-2:] == ["reference/c_loop", "lstm/c_loop"]
    threads = {torch.get_num_threads(), 1}
    assert len(body) == len(threads) and {int(r[1]) for r in body} == threads
    for r in body:
        assert r[0] == "3x2x4x8" and all(float(v) > 0 for v in r[-2:])


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_scan_benchmark_cell_loop_is_the_layer_step_by_step(cell):
    torch.manual_seed(1)
    layer = scan_bench.LAYERS[cell](5, 7).double()
    loop = scan_bench.CellLoop(cell, layer).double()
    x = torch.randn(11, 3, 5, dtype=torch.float64)
    out, h = loop(x)
    want, h_want = layer(x)
    assert out.shape == (11, 3, 7)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, h_want[0], rtol=1e-12, atol=1e-12)


def test_scan_benchmark_reports_both_sequential_baselines(capsys):
    scan_bench.main(["--steps", "8", "--batch", "2", "--hidden", "8", "--reps", "2",
                     "--threads", "1", "--no-memory", "--cells", "mingru",
                     "--models", "scan,step,cell"])  # fmt: skip
    out = capsys.readouterr().out
    head, *body = table(out[out.index("| cell") :])  # the whole table, after the progress lines
    assert head[-3:-1] == ["step/scan", "cell/scan"] and len(body) == 1
    assert body[0][:3] == ["mingru", "8", "1"] and all(float(v) > 0 for v in body[0][3:-1])
