"""SIGTERM and SIGHUP are handled like Ctrl-C, and a checkpoint is written every few minutes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.train import (
    RunInterrupted,
    Trainer,
    TrainerConfig,
    latest_checkpoint,
    list_checkpoints,
    read_metrics,
)
from rnnkit.train.signals import STOP_SIGNALS, InterruptFlag


class WindowLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.rnn = nn.GRU(4, 6)
        self.out = nn.Linear(6, 5)

    def forward(self, x, state):
        y, state = self.rnn(self.embed(x), state)
        return self.out(y), state


class SignalTask:
    """8 windows an epoch of a tiny GRU LM; sends itself ``signum`` during training call ``at``.
    ``clock`` (optional) is advanced 0.1 s per training step."""

    def __init__(self, signum=None, at=0, clock=None) -> None:
        self.signum, self.at, self.calls, self.clock = signum, at, 0, clock

    def build_model(self):
        return WindowLM()

    def batches(self, split, epoch):
        g = torch.Generator().manual_seed(3 if split == "train" else 4)
        data = torch.randint(5, (33, 2), generator=g)
        return [(data[s : s + 4], data[s + 1 : s + 5]) for s in range(0, 32, 4)]

    def initial_state(self, batch, device):
        return torch.zeros(1, batch[0].shape[1], 6, device=device)

    def loss(self, model, batch, state):
        if model.training:
            self.calls += 1
            if self.clock is not None:
                self.clock.now += 0.1
            if self.calls == self.at:
                os.kill(os.getpid(), self.signum)
        x, y = batch
        logits, state = model(x, state)
        return F.cross_entropy(logits.reshape(-1, 5), y.reshape(-1)), state, y.numel()

    def metrics(self, mean_loss):
        return {}

    def state_dict(self):
        return {}


def config(out=None, **kw):
    base = dict(epochs=3, lr=0.02, log_every=1, progress=False, device="cpu", eval_every=100)
    return TrainerConfig(**{**base, **kw, **({"out_dir": str(out)} if out else {})})


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_checkpoint_then_resume_exactly(tmp_path, name):
    if not hasattr(signal, name):
        pytest.skip(f"no {name} here")
    signum = getattr(signal, name)
    before = signal.getsignal(signum)
    straight = Trainer(SignalTask(), config(tmp_path / "straight", max_steps=12))
    straight.fit()

    run = tmp_path / "run"
    with pytest.raises(RunInterrupted) as info:
        Trainer(SignalTask(signum, at=5), config(run, max_steps=12)).fit()
    assert info.value.signum == signum and info.value.exit_code == 128 + signum
    assert info.value.checkpoint == run / "checkpoints" / "step-000005"
    assert name in str(info.value)
    assert [p.name for p in list_checkpoints(run)] == ["step-000005"]  # the first one
    assert not (run / "run.lock").exists()
    assert signal.getsignal(signum) is before  # the handler is scoped to fit

    resumed = Trainer(SignalTask(), config(max_steps=12), resume=run)
    assert resumed.step == 5
    resumed.fit()

    def losses(r):
        return [(x["step"], x["loss"]) for x in read_metrics(r / "metrics.jsonl")]

    assert losses(run) == losses(tmp_path / "straight")
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


def test_a_second_signal_quits_at_once():
    with InterruptFlag() as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.requested and flag.signum == signal.SIGTERM
        with pytest.raises(RunInterrupted) as info:
            os.kill(os.getpid(), signal.SIGTERM)
    assert info.value.checkpoint is None and info.value.exit_code == 128 + signal.SIGTERM
    assert signal.SIGTERM in STOP_SIGNALS and signal.SIGINT in STOP_SIGNALS


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


def test_a_checkpoint_is_written_every_checkpoint_minutes(tmp_path, monkeypatch):
    import rnnkit.train.clock as clock_module

    clock = FakeClock()
    monkeypatch.setattr(clock_module, "time", clock)
    task = SignalTask(clock=clock)
    # 0.0045 minutes = 0.27 s: due after every third step (0.1 s each)
    cfg = config(tmp_path / "timed", max_steps=7, keep_last=10, checkpoint_minutes=0.0045)
    Trainer(task, cfg).fit()
    names = [p.name for p in list_checkpoints(tmp_path / "timed")]
    assert names == ["step-000003", "step-000006", "step-000007"]  # + the final one
    meta = json.loads((tmp_path / "timed/checkpoints/step-000003/trainer.json").read_text())
    assert (meta["epoch"], meta["batch_index"], meta["carried_valid"]) == (0, 3, True)

    Trainer(
        SignalTask(clock=clock), config(tmp_path / "off", max_steps=7, checkpoint_minutes=None)
    ).fit()
    assert [p.name for p in list_checkpoints(tmp_path / "off")] == ["step-000007"]


def test_the_default_saves_every_five_minutes():
    assert TrainerConfig().checkpoint_minutes == 5.0


# --------------------------------------------------------------------------- the run's lock


def test_the_trainer_holds_the_lock_from_construction_to_the_end_of_fit(tmp_path):
    from rnnkit.train import RunLockError
    from rnnkit.train.lock import read_holder

    trainer = Trainer(SignalTask(), config(tmp_path, max_steps=2))
    assert read_holder(tmp_path / "run.lock")["pid"] == os.getpid()
    trainer.fit()
    assert not (tmp_path / "run.lock").exists()
    again = Trainer(SignalTask(), config(max_steps=3), resume=tmp_path)
    again.close()
    assert not (tmp_path / "run.lock").exists()
    again.fit()  # takes it again, releases it at the end
    assert not (tmp_path / "run.lock").exists()
    assert latest_checkpoint(tmp_path).name == "step-000003"

    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, _lock_file(), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(RunLockError, match=f"in use by pid {holder.pid}"):
            Trainer(SignalTask(), config(max_steps=4), resume=tmp_path)
    finally:
        holder.kill()
        holder.wait()


_HOLD = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("lock", sys.argv[1])
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)
lock.RunLock(sys.argv[2]).acquire()
print("ready", flush=True)
time.sleep(30)
"""


def _lock_file() -> str:
    import rnnkit.train.lock

    return rnnkit.train.lock.__file__


def test_out_dir_naming_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ValueError, match="'.*taken' is an existing file: expected a directory"):
        Trainer(SignalTask(), config(tmp_path / "taken"))
    with pytest.raises(ValueError, match="is inside .*taken, a file"):
        Trainer(SignalTask(), config(tmp_path / "taken" / "run"))


def test_the_trainer_warns_when_the_blas_is_not_reproducible(tmp_path, monkeypatch, caplog):
    """Exact resume needs MKL's reproducible mode (rnnkit.reproducibility); without it, say so."""
    import rnnkit.train.trainer.core as core

    monkeypatch.setattr(core, "blas_is_reproducible", lambda: False)
    with caplog.at_level("WARNING", logger=core.logger.name):
        Trainer(SignalTask(), config(tmp_path / "run", max_steps=1))
    assert "reproducible mode is off" in caplog.text and "MKL_CBWR=AUTO,STRICT" in caplog.text
    caplog.clear()
    monkeypatch.setattr(core, "blas_is_reproducible", lambda: True)
    with caplog.at_level("WARNING", logger=core.logger.name):
        Trainer(SignalTask(), config(tmp_path / "run2", max_steps=1))
    assert "reproducible mode" not in caplog.text
