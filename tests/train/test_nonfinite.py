"""Non-finite losses, gradients and weights: stop, skip, reload; nothing non-finite is ever saved;
a finite loss running away is reported once."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.train import (
    DivergenceError,
    Trainer,
    TrainerConfig,
    best_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    read_metrics,
)
from rnnkit.train.divergence import LossWatch


class CounterLM(nn.Module):
    def __init__(self, vocab: int = 5, hidden: int = 6) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 4)
        self.rnn = nn.LSTM(4, hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, state):
        y, state = self.rnn(self.embed(x), state)
        return self.out(y), state


class PoisonTask:
    """A tiny LM on random tokens (6 windows of (4, 2) an epoch); the training calls numbered in
    ``poison`` (from 1) return a NaN loss, as an overflow would."""

    vocab, hidden = 5, 6

    def __init__(self, poison=(), valid=None) -> None:
        self.poison, self.calls, self.valid = set(poison), 0, valid
        self.fresh: list[int] = []  # training calls that start from initial_state

    def build_model(self):
        return CounterLM(self.vocab, self.hidden)

    def batches(self, split, epoch):
        g = torch.Generator().manual_seed({"train": 1, "valid": 2}[split] + 10 * epoch)
        data = torch.randint(self.vocab, (2 * 25,), generator=g).view(2, -1).t()  # (25, 2)
        return [(data[s : s + 4], data[s + 1 : s + 5]) for s in range(0, 24, 4)][
            : 6 if split == "train" else 2
        ]

    def initial_state(self, batch, device):
        zeros = torch.zeros(1, batch[0].shape[1], self.hidden, device=device)
        self._initial = (zeros, zeros.clone())
        return self._initial

    def loss(self, model, batch, state):
        x, y = batch
        fresh = state is getattr(self, "_initial", None)
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, self.vocab), y.reshape(-1))
        if model.training:
            self.calls += 1
            if fresh:
                self.fresh.append(self.calls)
            if self.calls in self.poison:
                loss = loss * math.nan
        return loss, state, y.numel()

    def metrics(self, mean_loss):
        return {}

    def state_dict(self):
        return {"vocab": self.vocab}


class ScriptedValidTask(PoisonTask):
    def __init__(self, losses) -> None:
        super().__init__()
        self.losses = list(losses)

    def evaluate(self, model, split):
        return {"loss": self.losses.pop(0)}


def config(tmp_path=None, **kw) -> TrainerConfig:
    base = dict(epochs=5, lr=0.01, log_every=1, progress=False, device="cpu")
    if tmp_path is not None:
        base["out_dir"] = str(tmp_path)
    return TrainerConfig(**{**base, **kw})


def weights_finite(path) -> bool:
    model = CounterLM()
    load_checkpoint(path, model)
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values())


def test_a_nan_loss_stops_the_run_naming_the_step_and_the_last_good_checkpoint(tmp_path):
    task = PoisonTask(poison={6})
    with pytest.raises(DivergenceError) as info:
        Trainer(task, config(tmp_path, checkpoint_every=2, max_steps=20)).fit()
    err = info.value
    assert err.step == 6 and err.checkpoint == tmp_path / "checkpoints" / "step-000004"
    assert "the training loss is nan at step 6" in str(err)
    assert "step-000004" in str(err)
    assert task.calls == 6  # it stopped at once, not after its budget
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000002", "step-000004"]
    assert weights_finite(latest_checkpoint(tmp_path))
    train = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5]  # no NaN record
    assert not (tmp_path / "run.lock").exists()  # released on the way out


def test_a_non_finite_gradient_norm_stops_too(tmp_path):
    class InfGradTask(PoisonTask):
        def loss(self, model, batch, state):
            loss, state, n = super().loss(model, batch, state)
            if self.calls == 3:  # finite loss (sqrt(0) = 0), infinite gradient (1 / (2 sqrt(0)))
                b = model.out.bias.sum()
                loss = loss + torch.sqrt(b - b.detach())
            return loss, state, n

    with pytest.raises(DivergenceError, match=r"gradient norm is (inf|nan) at step 3"):
        Trainer(InfGradTask(), config(tmp_path, clip_norm=1.0, max_steps=10)).fit()


def test_skip_drops_the_batch_and_restarts_the_carried_state(tmp_path):
    task = PoisonTask(poison={3})
    trainer = Trainer(task, config(tmp_path, on_nonfinite="skip", max_steps=6, epochs=1))
    real_step = trainer.optimizer.step
    updates = []

    def counting_step(*a, **k):
        updates.append(trainer.step + 1)
        return real_step(*a, **k)

    trainer.optimizer.step = counting_step
    summary = trainer.fit()
    assert summary["step"] == 6 and summary["stop_reason"] == "max_steps"
    assert updates == [1, 2, 4, 5, 6]  # step 3 made no update
    assert task.fresh == [1, 4]  # the epoch's start, and the batch after the skipped one
    train = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "train"]
    assert all(math.isfinite(r["loss"]) for r in train)
    assert 3 not in [r["step"] for r in train]  # nothing to log for the skipped step
    assert weights_finite(latest_checkpoint(tmp_path))


def test_skip_gives_up_after_max_nonfinite(tmp_path):
    task = PoisonTask(poison=set(range(1, 100)))
    cfg = config(tmp_path, on_nonfinite="skip", max_nonfinite=3, max_steps=50)
    with pytest.raises(
        DivergenceError, match=r"4 non-finite steps in this session.*max_nonfinite 3"
    ):
        Trainer(task, cfg).fit()
    assert task.calls == 4


def test_reload_goes_back_to_the_last_checkpoint_with_a_lower_lr(tmp_path, caplog):
    task = PoisonTask(poison={5})
    cfg = config(tmp_path, on_nonfinite="reload", checkpoint_every=2, max_steps=8, lr=0.01)
    with caplog.at_level(logging.WARNING, logger="rnnkit.train.trainer"):
        summary = Trainer(task, cfg).fit()
    assert summary["step"] == 8 and summary["stop_reason"] == "max_steps"
    assert task.calls == 9  # steps 1-5 (5 is NaN), then 5-8 again from the step-4 checkpoint
    assert "reloaded" in caplog.text and "step-000004" in caplog.text
    train = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 9))  # the log reads as one clean run
    assert [r["lr"] for r in train] == [0.01] * 4 + [pytest.approx(0.001)] * 4
    meta = load_checkpoint(tmp_path).meta
    assert meta["lr_scale"] == pytest.approx(0.1) and meta["step"] == 8
    resumed = Trainer(PoisonTask(), config(max_steps=10), resume=tmp_path)
    assert resumed._lr_scale == pytest.approx(0.1)  # the lower rate survives a resume
    resumed.close()


def test_reload_without_a_checkpoint_goes_back_to_step_zero(tmp_path):
    task = PoisonTask(poison={2})
    cfg = config(tmp_path, on_nonfinite="reload", max_steps=3, reload_decay_factor=4.0)
    summary = Trainer(task, cfg).fit()
    assert summary["step"] == 3
    assert task.calls == 5  # step 1, the NaN, then steps 1-3 again from step 0
    assert (tmp_path / "checkpoints" / "step-000000").is_dir()
    assert load_checkpoint(tmp_path).meta["lr_scale"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="needs out_dir"):
        Trainer(PoisonTask(), config(on_nonfinite="reload"))


class ExplodingTask:
    """loss = 1000 * (w . v): finite, but SGD with lr 1e37 sends w to -inf in one step."""

    v = torch.tensor([3.0, 4.0, 12.0])

    def build_model(self):
        m = nn.Linear(3, 1, bias=False)
        nn.init.zeros_(m.weight)
        return m

    def batches(self, split, epoch):
        return [torch.zeros(1)] if split == "train" else []

    def initial_state(self, batch, device):
        return None

    def loss(self, model, batch, state):
        return 1000.0 * (model.weight[0] * self.v).sum(), None, 1

    def metrics(self, mean_loss):
        return {}

    def state_dict(self):
        return {}


def test_non_finite_weights_are_never_written_as_latest_or_best(tmp_path):
    cfg = config(tmp_path, optimizer="sgd", lr=1e37, epochs=1)
    with pytest.raises(DivergenceError, match=r"weights are not finite after step 1.*'weight'"):
        Trainer(ExplodingTask(), cfg).fit()
    assert latest_checkpoint(tmp_path) is None and best_checkpoint(tmp_path) is None


def test_a_nan_validation_loss_is_never_the_best(tmp_path):
    task = ScriptedValidTask([math.nan, 3.0, 3.5])
    summary = Trainer(task, config(tmp_path, eval_every=2, max_steps=6)).fit()
    assert summary["best"] == {"loss": 3.0, "step": 4}
    best = json.loads((tmp_path / "checkpoints" / "best.json").read_text())
    assert best["loss"] == 3.0 and best["path"] == "step-000004"


class ScriptedLossTask(ExplodingTask):
    """Training losses follow a script (the gradient is zero, so the weights never change)."""

    def __init__(self, losses) -> None:
        self.losses = list(losses)

    def batches(self, split, epoch):
        return [torch.zeros(1)] * len(self.losses) if split == "train" else []

    def loss(self, model, batch, state):
        return model.weight.sum() * 0 + self.losses.pop(0), None, 1


def test_a_loss_far_above_its_lowest_warns_once(caplog):
    task = ScriptedLossTask([3.0, 2.0, 1.0, 12.0, 30.0, 2.0])
    with caplog.at_level(logging.WARNING, logger="rnnkit.train.divergence"):
        Trainer(task, config(epochs=1)).fit()
    warnings = [r.getMessage() for r in caplog.records if "diverging" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "step 4: the training loss 12 is over 10x its lowest, 1 at step 3"
    )

    caplog.clear()
    quiet = ScriptedLossTask([3.0, 2.0, 1.0, 12.0])
    with caplog.at_level(logging.WARNING, logger="rnnkit.train.divergence"):
        Trainer(quiet, config(epochs=1, divergence_factor=None)).fit()
    assert "diverging" not in caplog.text


def test_loss_watch_compares_with_the_first_loss_and_ignores_non_positive_minima():
    watch = LossWatch(10.0)
    assert not watch.update(3.3, 1)  # the loss before any update
    assert watch.update(2e11, 5)  # a run diverging from its first steps
    assert not watch.update(4e11, 10)  # once only
    around_zero = LossWatch(10.0)
    for loss in (-1.0, 5.0, 50.0):
        assert not around_zero.update(loss, 1)
