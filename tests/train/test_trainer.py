"""The training loop end to end on a tiny LSTM language model (a few hundred parameters, CPU)."""

from __future__ import annotations

import json
import math
import os
import signal

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.train import (
    CosineSchedule,
    Trainer,
    TrainerConfig,
    best_checkpoint,
    latest_checkpoint,
    perplexity,
    read_metrics,
)


class TinyLM(nn.Module):
    def __init__(self, vocab: int, emb: int = 8, hidden: int = 12, dropout: float = 0.25) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.drop = nn.Dropout(dropout)
        self.rnn = nn.LSTM(emb, hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, state):
        y, state = self.rnn(self.drop(self.embed(x)), state)  # (T, N, H)
        return self.out(self.drop(y)), state


class TinyLMTask:
    """Tokens of a noisy counter (next = prev + 1 mod V with probability 0.8), cut into N columns
    and windows of ``bptt`` steps: batches are ``(x, y)`` of shape ``(T, N)``."""

    def __init__(self, vocab=7, batch=4, bptt=5, windows=8, dropout=0.25, hidden=12, seed=0):
        self.vocab, self.batch, self.bptt, self.hidden = vocab, batch, bptt, hidden
        self.windows, self.dropout, self.seed = windows, dropout, seed
        self.events: list[tuple] = []

    def _stream(self, split: str) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed + {"train": 0, "valid": 1, "test": 2}[split])
        windows = self.windows if split == "train" else 3
        n = windows * self.bptt * self.batch + self.batch
        jumps = torch.where(
            torch.rand(n, generator=g) < 0.8,
            torch.ones(n, dtype=torch.long),
            torch.randint(self.vocab, (n,), generator=g),
        )
        return torch.cumsum(jumps, 0) % self.vocab

    def build_model(self) -> nn.Module:
        return TinyLM(self.vocab, hidden=self.hidden, dropout=self.dropout)

    def batches(self, split: str, epoch: int):
        self.events.append(("batches", split, epoch))
        data = self._stream(split).view(self.batch, -1).t()  # (L, N) columns
        out = []
        for start in range(0, data.shape[0] - 1 - self.bptt + 1, self.bptt):
            out.append((data[start : start + self.bptt], data[start + 1 : start + 1 + self.bptt]))
        return out

    def initial_state(self, batch, device):
        n = batch[0].shape[1]
        self._initial = (torch.zeros(1, n, self.hidden, device=device),) * 2
        return self._initial

    def loss(self, model, batch, state):
        x, y = batch
        self.events.append(
            (
                "loss",
                model.training,
                state is getattr(self, "_initial", None),
                all(s.grad_fn is None for s in state),
            )
        )
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, self.vocab), y.reshape(-1))
        return loss, state, y.numel()

    def metrics(self, mean_loss: float) -> dict[str, float]:
        return {"ppl": perplexity(mean_loss)}

    def state_dict(self) -> dict:
        return {"vocab": self.vocab, "batch": self.batch, "bptt": self.bptt}


def config(tmp_path=None, **kw) -> TrainerConfig:
    base = dict(epochs=3, lr=0.01, log_every=1, progress=False, device="cpu")
    if tmp_path is not None:
        base["out_dir"] = str(tmp_path)
    base.update(kw)
    return TrainerConfig(**base)


def train_losses(records):
    return [(r["step"], r["loss"]) for r in records if r["split"] == "train"]


def test_fit_learns_and_writes_logs_curves_and_checkpoint(tmp_path):
    task = TinyLMTask()
    trainer = Trainer(task, config(tmp_path, epochs=4, log_every=3, lr=0.03))
    before = trainer.evaluate("valid")["loss"]
    summary = trainer.fit()

    assert summary["stop_reason"] == "completed"
    assert summary["step"] == 4 * 8 and summary["epoch"] == 4
    assert summary["tokens"] == 4 * 8 * 5 * 4
    assert summary["valid"]["loss"] < before - 0.2  # it learns the counter
    assert summary["valid"]["ppl"] == pytest.approx(math.exp(summary["valid"]["loss"]))

    records = read_metrics(tmp_path / "metrics.jsonl")
    train = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid"]
    # log_every=3 plus the last partial window; one evaluation per epoch (eval_every=None)
    assert [r["step"] for r in train] == [*range(3, 33, 3), 32]
    assert [r["step"] for r in valid] == [8, 16, 24, 32]
    for r in records:
        assert {"step", "epoch", "split", "loss", "metrics", "lr", "tokens", "elapsed"} <= set(r)
    assert all(r["tokens_per_s"] > 0 for r in train)
    assert train[0]["tokens"] == 3 * 20 and train[-1]["tokens"] == summary["tokens"]
    assert valid[-1]["loss"] == summary["valid"]["loss"]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the final checkpoint holds the trained model: a resumed trainer evaluates it identically
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt.name == "step-000032"
    meta = json.loads((ckpt / "trainer.json").read_text())
    assert (meta["epoch"], meta["batch_index"]) == (4, 0)
    assert meta["task"] == task.state_dict()
    assert meta["config"]["epochs"] == 4
    again = Trainer(TinyLMTask(), config(epochs=4), resume=tmp_path)
    assert again.evaluate("valid")["loss"] == summary["valid"]["loss"]


def test_state_is_reset_each_epoch_and_detached_between_windows():
    task = TinyLMTask(windows=4)
    Trainer(task, config(epochs=2, eval_every=None)).fit()
    train = [e for e in task.events if e[0] == "loss" and e[1]]
    assert len(train) == 8
    fresh = [e[2] for e in train]
    assert fresh == [True, False, False, False] * 2  # initial_state at each epoch's start
    assert all(e[3] for e in train)  # carried state never has a graph


class InterruptingTask(TinyLMTask):
    """Sends itself SIGINT (a Ctrl-C) during training step ``at``."""

    def __init__(self, at: int, **kw) -> None:
        super().__init__(**kw)
        self.at, self.train_calls = at, 0

    def loss(self, model, batch, state):
        if model.training:
            self.train_calls += 1
            if self.train_calls == self.at:
                os.kill(os.getpid(), signal.SIGINT)
        return super().loss(model, batch, state)


@pytest.mark.parametrize(  # 3: a partial logging window is carried over
    "log_every, precision", [(1, "float32"), (3, "float32"), (1, "bfloat16")]
)
def test_ctrl_c_checkpoint_then_resume_is_bit_exact(tmp_path, log_every, precision):
    kw = dict(
        precision=precision,  # bfloat16: the carried state crosses the checkpoint in bfloat16
        log_every=log_every,
        epochs=5,
        max_steps=20,
        schedule="cosine",
        warmup_steps=3,
        clip_norm=0.5,
        eval_every=4,
        eval_max_batches=2,
    )
    straight_dir, split_dir = tmp_path / "straight", tmp_path / "split"
    straight = Trainer(TinyLMTask(), config(straight_dir, **kw))
    summary = straight.fit()
    assert summary["stop_reason"] == "max_steps" and summary["step"] == 20

    with pytest.raises(KeyboardInterrupt):
        Trainer(InterruptingTask(at=10), config(split_dir, **kw)).fit()
    ckpt = latest_checkpoint(split_dir)
    assert ckpt.name == "step-000010"
    meta = json.loads((ckpt / "trainer.json").read_text())
    assert (meta["epoch"], meta["batch_index"]) == (1, 2)  # mid-epoch: the carried state matters
    logged = [r["step"] for r in read_metrics(split_dir / "metrics.jsonl")]
    assert max(logged) == 10 - 10 % log_every

    resumed = Trainer(TinyLMTask(), config(**kw), resume=split_dir)
    assert resumed.step == 10 and resumed.run_dir == split_dir
    resumed.fit()

    a = read_metrics(straight_dir / "metrics.jsonl")
    b = read_metrics(split_dir / "metrics.jsonl")
    assert len(train_losses(a)) == math.ceil(20 / log_every)
    assert train_losses(b) == train_losses(a)  # exact float equality, step for step
    assert [(r["step"], r["loss"]) for r in b if r["split"] == "valid"] == [
        (r["step"], r["loss"]) for r in a if r["split"] == "valid"
    ]
    assert [r["lr"] for r in b] == [r["lr"] for r in a]
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    for s, t in zip(straight.optimizer.state.values(), resumed.optimizer.state.values()):
        assert all(torch.equal(s[k], t[k]) for k in s)


def test_resume_with_more_steps_continues_exactly(tmp_path):
    kw = dict(epochs=5, clip_norm=1.0, optimizer="sgd", momentum=0.9, lr=0.1, log_every=1)
    full = Trainer(TinyLMTask(), config(tmp_path / "full", max_steps=14, **kw))
    full.fit()
    Trainer(TinyLMTask(), config(tmp_path / "part", max_steps=7, **kw)).fit()
    resumed = Trainer(TinyLMTask(), config(max_steps=14, **kw), resume=tmp_path / "part")
    resumed.fit()
    a = train_losses(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    b = train_losses(read_metrics(tmp_path / "part" / "metrics.jsonl"))
    assert b == a
    for p, q in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


def test_fresh_run_refuses_a_directory_with_checkpoints(tmp_path):
    Trainer(TinyLMTask(), config(tmp_path, max_steps=2)).fit()
    with pytest.raises(ValueError, match="already holds checkpoints"):
        Trainer(TinyLMTask(), config(tmp_path, max_steps=2))


class ScriptedEvalTask(TinyLMTask):
    """``evaluate`` returns the next of a list of losses (and counts the checkpoints)."""

    def __init__(self, losses, **kw) -> None:
        super().__init__(**kw)
        self.losses, self.checkpoints = list(losses), []

    def evaluate(self, model, split):
        return {"loss": self.losses.pop(0), "accuracy": 0.5}

    def on_checkpoint(self, run_dir):
        self.checkpoints.append(latest_checkpoint(run_dir).name)


def test_early_stopping_keeps_the_best_checkpoint(tmp_path):
    task = ScriptedEvalTask([5.0, 4.0, 4.5, 4.6, 4.7, 4.8, 4.9])
    cfg = config(tmp_path, epochs=10, eval_every=2, early_stopping_patience=2, keep_last=1)
    summary = Trainer(task, cfg).fit()
    assert summary["stop_reason"] == "early_stopping"
    assert summary["step"] == 8  # evaluations at 2, 4 (best), 6, 8: two without improvement
    assert summary["best"] == {"loss": 4.0, "step": 4}
    assert summary["valid"]["loss"] == 4.6 and summary["valid"]["accuracy"] == 0.5
    assert best_checkpoint(tmp_path).name == "step-000004"
    assert task.checkpoints == ["step-000002", "step-000004", "step-000008"]
    # keep_last=1 keeps the newest and the best
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == [
        "step-000004",
        "step-000008",
    ]
    valid = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "valid"]
    assert [r["loss"] for r in valid] == [5.0, 4.0, 4.5, 4.6]
    assert valid[0]["metrics"] == {"ppl": pytest.approx(math.exp(5.0)), "accuracy": 0.5}


def test_plateau_schedule_divides_lr_after_a_worse_evaluation():
    task = ScriptedEvalTask([3.0, 2.0, 2.5, 1.9, 1.95, 1.8, 1.7])
    cfg = config(optimizer="sgd", lr=0.1, schedule="plateau", decay_factor=4.0, eval_every=1)
    trainer = Trainer(task, cfg.__class__(**{**cfg.to_dict(), "max_steps": 6}))
    trainer.fit()
    lrs = [r["lr"] for r in trainer.history if r["split"] == "train"]
    assert lrs == [0.1, 0.1, 0.1, 0.1 / 4, 0.1 / 4, 0.1 / 16]
    assert trainer.optimizer.param_groups[0]["lr"] == 0.1 / 16


class FakeClock:
    """Stands in for the ``time`` module: only the task's work advances it, so the test does not
    depend on how busy the machine is."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


class ClockedTask(TinyLMTask):
    """A training step costs 0.1 s of the fake clock, an evaluation batch 0.01 s."""

    def __init__(self, clock: FakeClock, **kw) -> None:
        super().__init__(**kw)
        self.clock = clock

    def loss(self, model, batch, state):
        self.clock.now += 0.1 if model.training else 0.01
        return super().loss(model, batch, state)


def test_time_budget_stops_before_overrunning_then_evaluates_and_checkpoints(tmp_path, monkeypatch):
    import rnnkit.train.clock as clock_module

    clock = FakeClock()
    monkeypatch.setattr(clock_module, "time", clock)
    cfg = config(tmp_path, epochs=1000, time_budget=1.05, schedule="cosine", log_every=4)
    trainer = Trainer(ClockedTask(clock), cfg)
    summary = trainer.fit()
    # After step k the elapsed time is 0.1 k (+ 0.03 for the evaluation after step 8); the next
    # step is estimated at elapsed / k and room is kept for the final evaluation (3 batches, 0.03):
    # after step 8, 0.83 + 0.104 + 0.03 < 1.05 goes on; after step 9, 0.93 + 0.103 + 0.03 stops.
    assert summary["stop_reason"] == "time_budget"
    assert summary["step"] == 9
    assert summary["elapsed"] == pytest.approx(0.9 + 0.03 + 0.03)  # + the final evaluation
    assert summary["valid"]["tokens"] == 3 * 5 * 4
    assert latest_checkpoint(tmp_path).name == "step-000009"
    # the cosine schedule's length is estimated from the budget: 9 + int(0.09 / 0.103)
    assert trainer.schedule.total_steps == 9


class LinearTask:
    """loss = 1000 * (w . v) for a fixed v: the gradient is 1000 v, far above the clip norm."""

    v = torch.tensor([3.0, 4.0, 12.0])  # |v| = 13

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


def test_clip_norm_is_applied_to_the_global_gradient():
    trainer = Trainer(LinearTask(), config(optimizer="sgd", lr=1.0, clip_norm=0.5, epochs=1))
    summary = trainer.fit()
    w = trainer.model.weight.detach()[0]
    assert torch.allclose(w, -0.5 * LinearTask.v / 13.0, atol=1e-6)  # lr 1 x clipped gradient
    assert torch.linalg.vector_norm(w).item() == pytest.approx(0.5, rel=1e-6)
    assert trainer.history[0]["grad_norm"] == pytest.approx(13000.0)  # the norm before clipping
    assert summary["valid"] is None  # no validation batches: evaluation is skipped

    unclipped = Trainer(LinearTask(), config(optimizer="sgd", lr=1e-3, epochs=1))
    unclipped.fit()
    assert torch.allclose(unclipped.model.weight.detach()[0], -LinearTask.v, atol=1e-5)


def test_deterministic_flag_is_scoped_to_fit():
    before = torch.are_deterministic_algorithms_enabled()
    Trainer(LinearTask(), config(deterministic=True, epochs=1)).fit()
    assert torch.are_deterministic_algorithms_enabled() == before


def test_rejects_a_task_without_the_protocol():
    with pytest.raises(TypeError, match=r"missing \['batches'"):
        Trainer(object.__new__(type("NoTask", (), {"build_model": lambda self: None})))


class MovingTask(LinearTask):
    """Defines ``to_device``: the trainer must use it for every batch instead of its own mover."""

    def __init__(self) -> None:
        self.moved = []

    def batches(self, split, epoch):
        return [{"x": torch.zeros(1)}] * 3 if split == "train" else []

    def to_device(self, batch, device):
        self.moved.append(device)
        return {**batch, "moved": True}

    def loss(self, model, batch, state):
        assert batch["moved"]
        return super().loss(model, batch, state)


def test_task_to_device_hook_moves_each_batch():
    task = MovingTask()
    Trainer(task, config(epochs=2)).fit()
    assert task.moved == [torch.device("cpu")] * 6


def test_resuming_with_a_longer_run_stretches_the_cosine_schedule(tmp_path):
    kw = dict(schedule="cosine", epochs=10, eval_every=100)
    Trainer(TinyLMTask(), config(tmp_path, max_steps=4, **kw)).fit()
    resumed = Trainer(TinyLMTask(), config(max_steps=12, **kw), resume=tmp_path)
    assert resumed.schedule.total_steps == 12
    summary = resumed.fit()
    assert summary["step"] == 12
    lrs = [r["lr"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "train"]
    assert lrs[:4] == [CosineSchedule(0.01, 4).lr(s) for s in range(4)]
    assert lrs[4:] == [CosineSchedule(0.01, 12).lr(s) for s in range(4, 12)]


def test_task_lr_scale_multiplies_the_rate_of_its_batch(tmp_path):
    """A task's ``lr_scale(batch)`` sets each step's rate to schedule x scale (AWD-LSTM's rule
    for variable windows); the rate logged stays the schedule's."""
    task = TinyLMTask(windows=4)
    scales = iter([0.5, 2.0, 1.0, 0.25] * 3)
    task.lr_scale = lambda batch: next(scales)
    cfg = TrainerConfig(max_steps=4, lr=0.1, optimizer="sgd", progress=False, log_every=1)
    trainer = Trainer(task, cfg)
    seen = []
    step = trainer.optimizer.step

    def spy(*args, **kwargs):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        return step(*args, **kwargs)

    trainer.optimizer.step = spy
    trainer.fit()
    assert seen == pytest.approx([0.05, 0.2, 0.1, 0.025])
    assert {r["lr"] for r in trainer.history if r["split"] == "train"} == {0.1}

    task.lr_scale = lambda batch: 0.0
    with pytest.raises(ValueError, match=r"task.lr_scale must return a number in \(0, 1e6\)"):
        Trainer(task, TrainerConfig(max_steps=1, progress=False)).fit()


def test_the_best_checkpoint_compares_whole_split_evaluations_only(tmp_path):
    """Periodic evaluations over the first batch of the split read other text than the final
    one over all of it: the final becomes the best even when a partial loss was lower."""

    class EasyFirstBatch(TinyLMTask):
        def loss(self, model, batch, state):
            loss, state, n = super().loss(model, batch, state)
            if not model.training and self._valid_index == 0:
                loss = loss * 0.0 + 0.01  # the first validation batch looks very easy
            self._valid_index = 0 if model.training else self._valid_index + 1
            return loss, state, n

        _valid_index = 0

    cfg = config(tmp_path, max_steps=6, eval_every=2, eval_max_batches=1)
    summary = Trainer(EasyFirstBatch(), cfg).fit()
    partial = [r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "valid"]
    assert min(partial[:-1]) == pytest.approx(0.01) and partial[-1] > 0.01
    assert summary["best"]["step"] == 6 and best_checkpoint(tmp_path).name == "step-000006"


def test_a_partial_best_is_scored_on_the_whole_split_before_the_last_weights_replace_it(tmp_path):
    """A run that goes past its best (training drives ``w`` through the validation optimum 0.25):
    the final whole-split evaluation is compared with the earlier partial best's own whole-split
    loss, so the earlier weights stay the best checkpoint."""

    class PastTheOptimum(TinyLMTask):
        def build_model(self):
            model = nn.Linear(1, 1, bias=False)
            nn.init.zeros_(model.weight)
            return model

        def initial_state(self, batch, device):
            return None

        def loss(self, model, batch, state):
            w = model.weight.sum()
            if model.training:
                return -w, None, 1  # SGD at lr 0.1: w = 0.1 per step
            return (w - 0.25) ** 2, None, 1

    cfg = config(tmp_path, max_steps=6, eval_every=2, eval_max_batches=1, lr=0.1,
                 optimizer="sgd", schedule="constant")  # fmt: skip
    summary = Trainer(PastTheOptimum(), cfg).fit()
    assert summary["best"]["step"] == 2 and best_checkpoint(tmp_path).name == "step-000002"
    assert summary["best"]["loss"] == pytest.approx(0.05**2)  # step 2 on the whole split
    pointer = json.loads((tmp_path / "checkpoints" / "best.json").read_text())
    assert pointer["step"] == 2 and pointer["loss"] == pytest.approx(0.05**2)
    assert summary["valid"]["loss"] == pytest.approx(0.35**2)  # the last weights, w = 0.6
    resumed = Trainer(PastTheOptimum(), config(max_steps=8, eval_every=2, eval_max_batches=1,
                      lr=0.1, optimizer="sgd", schedule="constant"), resume=tmp_path)  # fmt: skip
    assert resumed.best == summary["best"] and resumed._best_whole


def test_bfloat16_steps_learn_keep_float32_weights_and_evaluate_in_float32():
    task = TinyLMTask()
    trainer = Trainer(task, config(epochs=4, lr=0.02, precision="bfloat16"))
    before = trainer.evaluate()["loss"]
    trainer.fit()
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    after = trainer.evaluate()
    assert after["loss"] < before - 0.1  # it learned
    # evaluation ran without autocast: the same as scoring the weights by hand in float32
    model = trainer.model.eval()
    total = count = 0.0
    state = None
    with torch.no_grad():
        for x, y in task.batches("valid", 0):
            state = state or task.initial_state((x, y), torch.device("cpu"))
            logits, state = model(x, state)
            assert logits.dtype == torch.float32
            total += F.cross_entropy(logits.reshape(-1, task.vocab), y.reshape(-1), reduction="sum")
            count += y.numel()
    assert after["loss"] == pytest.approx(float(total / count), rel=1e-6)


def test_the_float32_run_is_untouched_by_the_option():
    def final_loss(precision):
        return Trainer(TinyLMTask(), config(epochs=2, precision=precision)).fit()["train"]["loss"]

    losses = [final_loss("float32"), final_loss("float32")]
    bf16 = final_loss("bfloat16")
    assert losses[0] == losses[1]  # float32 stays bit-exact
    assert bf16 != losses[0]  # and the bfloat16 steps did run in another dtype
