"""Each CLI command once, end to end on a tiny corpus; resume through the CLI continues exactly."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from rnnkit import __version__
from rnnkit.cli import UNTIL_BUDGET, main
from rnnkit.tasks.lm import LanguageModelTask
from rnnkit.train import latest_checkpoint, read_metrics

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


def test_a_time_budget_alone_trains_past_one_epoch(tmp_path, capsys):
    """With a budget and no --epochs the epoch count does not stop training: on a corpus of a
    few batches per epoch the run goes on into later epochs until another limit (here --max-steps,
    so the test does not depend on how fast a loaded machine runs)."""
    small = tmp_path / "small.txt"
    small.write_text(TEXT[:1500], encoding="utf-8")
    run = tmp_path / "run"
    argv = ("--time-budget", "600", "--max-steps", "40", "--sample-length", "0")
    assert train(run, str(small), *argv) == 0
    assert "stopped (max_steps)" in capsys.readouterr().out
    epochs = {r["epoch"] for r in read_metrics(run / "metrics.jsonl") if r["split"] == "train"}
    assert max(epochs) >= 1


def test_a_time_budget_without_epochs_overrides_a_presets_epochs(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "lm", "--data", str(write_ptb(tmp_path)), "--level", "word", "--preset",
            "small", "--hidden-size", "8", "--embed-size", "8", "--time-budget", "1000",
            "--max-steps", "2", "--out", str(run), "--no-progress", "--sample-length", "0"]  # fmt: skip
    assert main(argv) == 0
    meta = json.loads((latest_checkpoint(run) / "trainer.json").read_text())
    assert meta["config"]["epochs"] == UNTIL_BUDGET  # not the preset's 13
    assert main([*argv[:-5], "--epochs", "3", "--out", str(tmp_path / "r2"), "--no-progress",
                 "--sample-length", "0"]) == 0  # fmt: skip
    meta = json.loads((latest_checkpoint(tmp_path / "r2") / "trainer.json").read_text())
    assert meta["config"]["epochs"] == 3


def write_ptb(tmp_path):
    data = tmp_path / "ptb"
    data.mkdir(exist_ok=True)
    words = "the cat sat on the mat and the dog ate the log".split()
    for split, n in (("train", 300), ("valid", 40), ("test", 40)):
        lines = [" ".join(words[(i + j) % len(words)] for j in range(8)) for i in range(n)]
        (data / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data


@pytest.mark.parametrize("preset", ["small", "medium", "large"])
def test_word_level_ptb_layout_with_a_preset(tmp_path, capsys, preset):
    """A PTB-style directory, word level, Zaremba's presets (shrunk), evaluate --split test."""
    words = "the cat sat on the mat and the dog ate the log".split()
    data = write_ptb(tmp_path)
    run = tmp_path / "run"
    argv = ["train", "lm", "--data", str(data), "--level", "word", "--preset", preset,
            "--hidden-size", "16", "--embed-size", "16", "--max-steps", "20", "--epochs", "2",
            "--out", str(run), "--no-progress", "--sample-length", "12"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "--- sample ---" in out
    assert main(["evaluate", str(run), "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and result["tokens"] > 0
    assert result["loss"] < math.log(len(set(words)) + 2)  # learned something beyond uniform


WIKI_LINES = [
    " = Robert Boulter = ",
    " Robert Boulter is an English film , television and theatre actor . ",
    ' He had a guest @-@ starring role in " The Bill " in 2000 , and 1 @,@ 000 more . ',
]


@pytest.fixture(scope="module")
def word_run(tmp_path_factory):
    """A WikiText-style directory and a run of the default word-level preset (shrunk, and
    without its input dropouts, under which 30 steps of 16 units learn too little of the
    repeating text for the adaptation below to show) on it."""
    root = tmp_path_factory.mktemp("wiki")
    data = root / "data"
    data.mkdir()
    for split, n in (("train", 40), ("valid", 6), ("test", 6)):
        (data / f"{split}.txt").write_text("\n".join(WIKI_LINES * n) + "\n", encoding="utf-8")
    run = root / "run"
    argv = ["train", "lm", "--data", str(data), "--level", "word", "--hidden-size", "16",
            "--embed-size", "16", "--max-steps", "30", "--precision", "float32",
            "--batch-size", "20", "--embed-dropout", "0", "--word-dropout", "0", "--out",
            str(run), "--no-progress", "--sample-length", "0"]  # fmt: skip
    assert main(argv) == 0
    return run


def test_word_level_default_preset_and_online_evaluation(word_run, capsys):
    saved = json.loads((word_run / "task.json").read_text())["config"]
    assert saved["softmax"] == "adaptive" and saved["adaptive_div"] == 1 and saved["tie_weights"]
    assert saved["dropout"] == 0.25 and saved["output_dropout"] == 0.4
    assert saved["init_range"] == 0.1 and not saved["variable_bptt"]
    preset = LanguageModelTask.PRESETS["word"][0]
    assert preset["embed_dropout"] == 0.2 and preset["word_dropout"] == 0.1
    files = sorted(p for p in word_run.rglob("*") if p.is_file() and p.suffix != ".lock")
    before = {p: p.read_bytes() for p in files}
    network = ["evaluate", str(word_run), "--split", "test", "--json", "--no-ngram"]
    assert main(network) == 0
    plain = json.loads(capsys.readouterr().out)
    argv = [*network, "--dynamic-eval", "--dynamic-lr", "0", "--dynamic-decay", "0",
            "--dynamic-method", "sgd", "--cache", "--cache-lambda", "0"]  # fmt: skip
    assert main(argv) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["loss"] == pytest.approx(plain["loss"], rel=1e-6)
    assert same["dynamic_eval"]["lr"] == 0 and same["cache"]["lam"] == 0 and same["ngram"] is None
    argv = [*network, "--dynamic-eval", "--dynamic-lr", "1e-2", "--dynamic-bptt", "5"]
    assert main(argv) == 0
    adapted = json.loads(capsys.readouterr().out)
    assert adapted["loss"] < plain["loss"] - 0.01  # the text repeats: adapting picks it up
    assert adapted["dynamic_eval"]["method"] == "rms" and adapted["cache"] is None
    assert {p: p.read_bytes() for p in files} == before  # the run is left as it was


def test_word_preset_evaluation_mixes_in_its_ngram(word_run, capsys):
    assert json.loads((word_run / "task.json").read_text())["config"]["ngram_order"] == 4
    base = ["evaluate", str(word_run), "--split", "test", "--json"]
    assert main([*base, "--no-ngram"]) == 0
    network = json.loads(capsys.readouterr().out)
    assert main(base) == 0
    mixed = json.loads(capsys.readouterr().out)
    assert mixed["ngram"]["order"] == 4 and mixed["ngram"]["chosen_on"] == "valid"
    assert 0 < mixed["ngram"]["weight"] < 1
    assert mixed["model_loss"] == pytest.approx(network["loss"], rel=1e-6)
    assert mixed["loss"] < network["loss"]  # the lines repeat: the counts know them
    assert main([*base, "--ngram-weight", "0"]) == 0
    zero = json.loads(capsys.readouterr().out)
    assert zero["loss"] == pytest.approx(network["loss"], rel=1e-6)
    assert zero["ngram"] == {"order": 4, "weight": 0.0, "chosen_on": "given"}
    assert main([*base, "--no-ngram", "--ngram-weight", "0.5"]) == 2
    assert "--ngram-weight given with --no-ngram" in capsys.readouterr().err
    assert main([*base, "--ngram-weight", "1.5"]) == 2
    assert "--ngram-weight must be in [0, 1], got 1.5" in capsys.readouterr().err


def test_online_evaluation_flags_need_their_switch(word_run, capsys):
    assert main(["evaluate", str(word_run), "--cache-size", "10", "--dynamic-lr", "1"]) == 2
    err = capsys.readouterr().err
    assert "--dynamic-lr given without --dynamic-eval" in err
    assert main(["evaluate", str(word_run), "--cache", "--cache-lambda", "2"]) == 2
    assert "cache lambda must be a number in [0, 1], got 2.0" in capsys.readouterr().err
    assert main(["evaluate", str(word_run), "--cache-tune"]) == 2
    assert "--cache-tune given without --cache" in capsys.readouterr().err
    assert main(["evaluate", str(word_run), "--cache", "--cache-tune", "--cache-theta", "1"]) == 2
    assert "--cache-tune chooses theta and lambda itself; drop --cache-theta" in (
        capsys.readouterr().err
    )


def test_cache_tuned_on_valid_then_applied(word_run, capsys):
    argv = ["evaluate", str(word_run), "--split", "test", "--json", "--cache"]
    assert main([*argv, "--cache-tune", "--cache-size", "40"]) == 0
    tuned = json.loads(capsys.readouterr().out)
    grid = tuned["cache_tuning"]["grid"]
    assert tuned["cache_tuning"]["split"] == "valid" and len(grid) > 1
    lowest = min(grid, key=lambda r: r["loss"])
    assert (tuned["cache"]["theta"], tuned["cache"]["lam"]) == (lowest["theta"], lowest["lam"])
    chosen = ["--cache-size", "40", "--cache-theta", str(lowest["theta"]),
              "--cache-lambda", str(lowest["lam"])]  # fmt: skip
    assert main([*argv, *chosen]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(tuned["loss"], rel=1e-9)


def test_word_level_sample_is_detokenised(word_run, capsys):
    argv = ["sample", str(word_run), "--length", "40", "--prime", "He had a guest-starring",
            "--seed", "0", "--temperature", "1.5"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("He had a guest-starring") and "@-@" not in out and " ," not in out
    assert main([*argv, "--raw"]) == 0
    assert capsys.readouterr().out.startswith("He had a guest @-@ starring")


# --------------------------------------------------------------------------- reliability


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished run (checkpoints at steps 5 and 10), copied by the tests that damage it."""
    root = tmp_path_factory.mktemp("trained")
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    run = root / "run"
    assert train(run, str(corpus), "--max-steps", "10", "--sample-length", "0") == 0
    return run


@pytest.fixture
def run_copy(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def error_of(capsys) -> str:
    """The error line the CLI printed last on stderr (warnings may come before it)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rnnkit: error: "), err
    return last


def test_sigterm_in_a_real_process_checkpoints_exits_143_and_resumes(tmp_path, corpus):
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "rnnkit", "train", "lm", "--data", corpus, *TINY,
            "--out", str(run), "--no-progress", "--log-every", "1", "--eval-every", "100000",
            "--epochs", "100000", "--max-steps", "100000", "--sample-length", "0"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 90
        while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.05)
        assert not (run / "checkpoints").exists()  # killed before its first checkpoint
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM: checkpoint saved; continue with --resume" in out
    ckpt = latest_checkpoint(run)
    step = json.loads((ckpt / "trainer.json").read_text())["step"]
    assert step >= 1 and not (run / "run.lock").exists()
    assert main(["train", "lm", "--resume", str(run), "--max-steps", str(step + 2),
                 "--sample-length", "0"]) == 0  # fmt: skip
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["split"] == "train"]
    assert steps == list(range(1, step + 3))


def test_a_diverging_run_exits_non_zero_naming_the_step(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    code = train(run, corpus, "--lr", "1e38", "--optimizer", "sgd", "--max-steps", "40",
                 "--sample-length", "0")  # fmt: skip
    assert code == 1
    err = error_of(capsys)
    assert re.search(r"training stopped: the training loss is (nan|inf) at step \d+", err)
    best = run / "checkpoints" / "best.json"
    assert not best.exists() or math.isfinite(json.loads(best.read_text())["loss"])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--lr", "inf"], "lr must be > 0 and finite, got inf"),
        (["--lr", "nan"], "lr must be > 0 and finite, got nan"),
        (["--clip-norm", "nan"], "clip_norm must be >= 0"),
        (["--min-lr", "0.1", "--lr", "0.01"], "min_lr must be <= lr, got min_lr 0.1 > lr 0.01"),
        (["--device", "gpu0"], "device must be 'auto', 'cpu', 'cuda', 'cuda:N'"),
        (["--on-nonfinite", "ignore"], "on_nonfinite must be one of"),
    ],
)
def test_bad_trainer_values_are_refused_before_anything_is_written(
    tmp_path, corpus, capsys, flags, message
):
    assert train(tmp_path / "run", corpus, *flags) == 2
    assert message in error_of(capsys)
    assert not (tmp_path / "run").exists()


def test_out_naming_an_existing_file_is_refused(tmp_path, corpus, capsys):
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    assert train(taken, corpus, "--max-steps", "2") == 2
    assert "is an existing file: expected a directory" in error_of(capsys)
    assert taken.read_text() == "keep me"


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--temperature", "nan"],
            "--temperature expects a finite number >= 0 (0: greedy), got nan",
        ),
        (["--temperature", "-1"], "--temperature expects a finite number >= 0 (0: greedy), got -1"),
        (["--length", "-5"], "--length expects an integer >= 1 (tokens to sample), got -5"),
        (["--length", "0"], "--length expects an integer >= 1"),
        (["--top-p", "1.5"], "--top-p expects a number in (0, 1], got 1.5"),
        (["--device", "gpu0"], "device must be 'auto'"),
    ],
)
def test_bad_sample_flags_are_errors_not_empty_output(trained_run, capsys, flags, message):
    assert main(["sample", str(trained_run), *flags]) == 2
    assert message in error_of(capsys)
    assert capsys.readouterr().out == ""


def test_export_and_predict_name_a_wrong_kind_of_path(trained_run, tmp_path, capsys):
    assert main(["export", str(trained_run), "--onnx", str(tmp_path)]) == 2
    assert f"--onnx {tmp_path} is a directory: expected the path of a file" in error_of(capsys)
    assert main(["export", str(trained_run), "--onnx", str(tmp_path / "no" / "m.onnx")]) == 2
    assert "expected an existing folder" in error_of(capsys)
    (tmp_path / "file").write_text("")
    assert main(["predict", str(trained_run), "x", "--out", str(tmp_path / "file")]) == 2
    assert "is an existing file: expected a directory" in error_of(capsys)


def test_trainer_json_without_config_is_named(run_copy, capsys):
    for ckpt in (run_copy / "checkpoints").glob("step-*"):
        (ckpt / "manifest.json").unlink()  # an older, unverified checkpoint
        meta = json.loads((ckpt / "trainer.json").read_text())
        del meta["config"]
        (ckpt / "trainer.json").write_text(json.dumps(meta))
    assert main(["train", "lm", "--resume", str(run_copy), "--max-steps", "12"]) == 2
    assert "trainer.json has no 'config': expected the trainer settings" in error_of(capsys)


def test_task_json_without_vocab_is_named(run_copy, capsys):
    task = json.loads((run_copy / "task.json").read_text())
    del task["vocab"]
    (run_copy / "task.json").write_text(json.dumps(task))
    for command in (["evaluate", str(run_copy)], ["sample", str(run_copy)]):
        assert main(command) == 2
        assert "task.json has no 'vocab' entry" in error_of(capsys)


def test_a_reordered_vocabulary_is_refused(run_copy, capsys):
    task = json.loads((run_copy / "task.json").read_text())
    tokens = task["vocab"]["tokens"]
    tokens[-1], tokens[-2] = tokens[-2], tokens[-1]
    (run_copy / "task.json").write_text(json.dumps(task))
    assert main(["sample", str(run_copy), "--length", "5"]) == 2
    assert "the task's 'vocab' differ from what checkpoint" in error_of(capsys)
    assert main(["train", "lm", "--resume", str(run_copy), "--max-steps", "12"]) == 2
    assert "'vocab' differ" in error_of(capsys)


def test_resume_into_another_out_directory_is_refused(run_copy, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    argv = ["train", "lm", "--resume", str(run_copy), "--out", str(other), "--max-steps", "12"]
    assert main(argv) == 2
    assert f"--resume {run_copy} continues that run in place" in error_of(capsys)
    assert not other.exists()
    argv = ["train", "lm", "--resume", str(run_copy), "--out", f"{run_copy}/", "--max-steps", "11",
            "--sample-length", "0"]  # fmt: skip
    assert main(argv) == 0  # --out naming the same run is fine


def test_resume_skips_a_damaged_latest_checkpoint(run_copy, capsys, caplog):
    weights = run_copy / "checkpoints" / "step-000010" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    argv = ["train", "lm", "--resume", str(run_copy), "--max-steps", "12", "--sample-length", "0"]
    with caplog.at_level("WARNING", logger="rnnkit.train.checkpoint"):
        assert main(argv) == 0
    assert "skipping damaged checkpoint" in caplog.text and "step-000010" in caplog.text
    assert "model.safetensors is damaged" in caplog.text
    assert "stopped (max_steps) at step 12" in capsys.readouterr().out
    steps = [r["step"] for r in read_metrics(run_copy / "metrics.jsonl") if r["split"] == "train"]
    assert steps == list(range(1, 13))  # steps 6-10 were redone from step 5


def test_a_full_disk_during_a_checkpoint_is_a_clear_error(tmp_path, corpus, capsys, monkeypatch):
    import rnnkit.train.checkpoint.write as ckpt_write

    real_write, writes = ckpt_write.write_bytes, []

    def full_after_one_checkpoint(path, data):
        if path.name == "model.safetensors":
            writes.append(path)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(ckpt_write, "write_bytes", full_after_one_checkpoint)
    run = tmp_path / "run"
    assert train(run, corpus, "--max-steps", "20", "--sample-length", "0") == 1
    err = error_of(capsys)
    assert "could not write checkpoint" in err and "step-000010" in err
    assert "(the disk is full)" in err and "previous checkpoint" in err and "step-000005" in err
    assert latest_checkpoint(run).name == "step-000005"
    assert not (run / "run.lock").exists()


def test_a_run_in_use_by_another_process_is_refused(run_copy, capsys):
    import rnnkit.train.lock as lock_mod

    hold = ("import importlib.util, sys, time\n"
            "spec = importlib.util.spec_from_file_location('lock', sys.argv[1])\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "m.RunLock(sys.argv[2]).acquire(); print('ready', flush=True); time.sleep(30)")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", hold, lock_mod.__file__, str(run_copy)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert main(["train", "lm", "--resume", str(run_copy), "--max-steps", "12"]) == 1
        assert f"is in use by pid {holder.pid}" in error_of(capsys)
    finally:
        holder.kill()
        holder.wait()
