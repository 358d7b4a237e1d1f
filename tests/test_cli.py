"""Each CLI command once, end to end on a tiny corpus; resume through the CLI continues exactly."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from rnnkit import __version__
from rnnkit.cli import main
from rnnkit.train import read_metrics

TEXT = "".join(f"line {i}: the cat sat on the mat; the dog ate the log.\n" for i in range(120))
TINY = ["--embed-size", "8", "--hidden-size", "16", "--batch-size", "4", "--bptt", "16"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def train(run_dir, corpus, *extra):
    argv = ["train", "lm", "--data", corpus, *TINY, "--out", str(run_dir), "--no-progress",
            "--log-every", "1", "--eval-every", "5", "--lr", "0.01", *extra]  # fmt: skip
    return main(argv)


def test_version_and_help():
    out = subprocess.run(
        [sys.executable, "-m", "rnnkit", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == f"rnnkit {__version__}"
    out = subprocess.run([sys.executable, "-m", "rnnkit", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("train", "evaluate", "sample"):
        assert command in out.stdout


def test_train_evaluate_sample(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    assert train(run, corpus, "--max-steps", "30", "--sample-length", "20") == 0
    out = capsys.readouterr().out
    assert "--- sample ---" in out and "stopped (max_steps) at step 30" in out
    assert (run / "task.json").is_file() and (run / "curves.png").is_file()

    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tokens"] > 0 and result["perplexity"] == pytest.approx(
        2.718281828 ** result["loss"]
    )
    assert result["loss"] < math.log(len(set(TEXT))) - 0.2  # it learned: below the uniform loss

    assert main(["sample", str(run), "--length", "30", "--prime", "the ", "--seed", "4"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("the ")
    main(["sample", str(run), "--length", "30", "--prime", "the ", "--seed", "4"])
    assert capsys.readouterr().out == first


def test_resume_through_the_cli_continues_exactly(tmp_path, corpus):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert (
        train(straight, corpus, "--max-steps", "16", "--dropout", "0.2", "--num-layers", "2") == 0
    )
    assert train(split, corpus, "--max-steps", "8", "--dropout", "0.2", "--num-layers", "2") == 0
    assert (
        main(["train", "lm", "--resume", str(split), "--max-steps", "16", "--sample-length", "0"])
        == 0
    )

    def losses(run):
        return [
            (r["step"], r["loss"])
            for r in read_metrics(run / "metrics.jsonl")
            if r["split"] == "train"
        ]

    assert losses(straight) == losses(split)
    assert len(losses(straight)) == 16


def test_evaluate_on_other_data_and_errors(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    train(run, corpus, "--max-steps", "3", "--sample-length", "0")
    capsys.readouterr()
    other = tmp_path / "other.txt"
    other.write_text("the cat sat on the log.\n" * 50, encoding="utf-8")
    assert main(["evaluate", str(run), "--data", str(other), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] > 0
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert "not an rnnkit run directory" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc\xff\xfe")
    assert main(["train", "lm", "--data", str(bad), "--out", str(tmp_path / "r2")]) == 2
    assert "bad.txt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "lm", "--hidden-size", "many"])


def test_export_onnx_matches_the_model_and_convert_writes_a_layout(tmp_path, corpus, capsys):
    np = pytest.importorskip("numpy")
    ort = pytest.importorskip("onnxruntime")
    from rnnkit.cli import _load_run

    run = tmp_path / "run"
    train(run, corpus, "--max-steps", "3", "--sample-length", "0")
    onnx_path = tmp_path / "lm.onnx"
    assert main(["export", str(run), "--onnx", str(onnx_path)]) == 0
    task, model = _load_run(str(run), "best", "cpu")
    tokens = torch.randint(0, len(task.vocab), (7, 2))
    with torch.no_grad():
        want, _ = model(tokens)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    zeros = np.zeros((1, 2, 16), dtype=np.float32)
    got = sess.run(["logits"], {"tokens": tokens.numpy(), "h0": zeros, "c0": zeros})[0]
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)

    weights = next((run / "checkpoints").glob("step-*")) / "model.safetensors"
    out = tmp_path / "keras.npz"
    assert (
        main(
            [
                "convert",
                str(weights),
                str(out),
                "--from",
                "torch",
                "--to",
                "keras",
                "--prefix",
                "rnn.",
            ]
        )
        == 0
    )
    arrays = np.load(out)
    shapes = sorted(tuple(a.shape) for a in arrays.values())
    assert (8, 64) in shapes and (16, 64) in shapes  # kernel (D, 4H), recurrent_kernel (H, 4H)


def test_a_time_budget_alone_trains_past_one_epoch(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    assert train(run, corpus, "--time-budget", "4", "--sample-length", "0") == 0
    assert "stopped (time_budget)" in capsys.readouterr().out
    epochs = {r["epoch"] for r in read_metrics(run / "metrics.jsonl") if r["split"] == "train"}
    assert max(epochs) >= 1


def test_word_level_ptb_layout_with_a_preset(tmp_path, capsys):
    """A PTB-style directory, word level, Zaremba's small preset (shrunk), evaluate --split test."""
    data = tmp_path / "ptb"
    data.mkdir()
    words = "the cat sat on the mat and the dog ate the log".split()
    for split, n in (("train", 300), ("valid", 40), ("test", 40)):
        lines = [" ".join(words[(i + j) % len(words)] for j in range(8)) for i in range(n)]
        (data / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    argv = ["train", "lm", "--data", str(data), "--level", "word", "--preset", "small",
            "--hidden-size", "16", "--embed-size", "16", "--max-steps", "20", "--epochs", "2",
            "--out", str(run), "--no-progress", "--sample-length", "12"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "--- sample ---" in out
    assert main(["evaluate", str(run), "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and result["tokens"] > 0
    assert result["loss"] < math.log(len(set(words)) + 2)  # learned something beyond uniform
