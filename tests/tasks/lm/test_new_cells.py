"""`rnnkit train lm --cell mingru|minlstm|indrnn|slstm` end to end: a few steps, resume that
continues exactly, evaluate and sample from the run, the cells' own flags, and ONNX export
refusing cells without a standard operator by name."""

from __future__ import annotations

import json

import pytest

from rnnkit.cli import main
from rnnkit.train import read_metrics

TEXT = "".join(f"line {i}: the cat sat on the mat; the dog ate the log.\n" for i in range(60))
TINY = ["--embed-size", "8", "--hidden-size", "16", "--batch-size", "4", "--bptt", "12",
        "--no-progress", "--log-every", "1", "--eval-every", "4", "--lr", "0.01",
        "--eval-max-batches", "2"]  # fmt: skip
FLAGS = {"mingru": ["--layer-norm", "--scan-chunk", "5"], "minlstm": ["--num-layers", "2"],
         "indrnn": ["--recurrent-max", "1.2", "--zoneout", "0.1"],
         "slstm": ["--num-heads", "2", "--forget-gate", "sigmoid"]}  # fmt: skip


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def losses(run):
    return [(r["step"], r["loss"]) for r in read_metrics(run / "metrics.jsonl")
            if r["split"] == "train"]  # fmt: skip


@pytest.mark.parametrize("cell", ["mingru", "minlstm", "indrnn", "slstm"])
def test_train_resume_evaluate_sample_and_export(cell, tmp_path, corpus, capsys):
    argv = ["train", "lm", "--data", corpus, *TINY, "--cell", cell, *FLAGS[cell]]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main([*argv, "--out", str(straight), "--max-steps", "8", "--sample-length", "0"]) == 0
    assert main([*argv, "--out", str(split), "--max-steps", "4", "--sample-length", "0"]) == 0
    resume = ["train", "lm", "--resume", str(split), "--max-steps", "8", "--sample-length", "0"]
    assert main(resume) == 0
    assert losses(straight) == losses(split) and len(losses(split)) == 8
    saved = json.loads((split / "task.json").read_text())["config"]
    assert saved["cell"] == cell
    capsys.readouterr()
    assert main(["evaluate", str(split), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] > 0
    assert main(["sample", str(split), "--length", "12", "--prime", "the ", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("the ")
    assert main(["export", str(split), "--onnx", str(tmp_path / "lm.onnx")]) == 2
    err = capsys.readouterr().err
    assert "has no standard ONNX operator: ONNX export serves GRU, LSTM, RNN layers" in err
    assert not (tmp_path / "lm.onnx").exists()


def test_flags_a_cell_does_not_take_are_refused_by_name(corpus, tmp_path, capsys):
    argv = [
        "train",
        "lm",
        "--data",
        corpus,
        *TINY,
        "--out",
        str(tmp_path / "r"),
        "--max-steps",
        "1",
    ]
    assert main([*argv, "--cell", "mingru", "--zoneout", "0.1"]) == 2
    err = capsys.readouterr().err
    assert (
        "--zoneout is not an option of cell mingru (minGRU accepts layer_norm, scan_chunk)" in err
    )
    assert main([*argv, "--cell", "lstm", "--num-heads", "2"]) == 2
    assert "--num-heads is not an option of cell lstm" in capsys.readouterr().err
    assert main([*argv, "--cell", "slstm", "--num-heads", "3"]) == 2
    assert "sLSTM num_heads must divide hidden_size 16, got num_heads=3" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything is written
    assert main([*argv, "--cell", "mingru", "--tie-weights"]) == 2
    assert "tie_weights needs embed_size == hidden_size for mingru" in capsys.readouterr().err
