"""Data parallelism: sharding rules, and 2 gloo processes == 1 process on the same global batch."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from rnnkit.train import Trainer, TrainerConfig, default_shard, load_checkpoint


def test_default_shard_splits_time_major_batches_along_n():
    x = torch.arange(2 * 6 * 3).view(2, 6, 3)  # (T, N, C)
    lengths = torch.arange(6)  # (N,)
    batch = {"x": x, "lengths": lengths, "pair": (x[:, :, 0], 7), "scale": torch.tensor(2.0)}
    parts = [default_shard(batch, r, 3) for r in range(3)]
    for r, part in enumerate(parts):
        assert torch.equal(part["x"], x[:, 2 * r : 2 * r + 2])
        assert torch.equal(part["lengths"], lengths[2 * r : 2 * r + 2])
        assert torch.equal(part["pair"][0], x[:, 2 * r : 2 * r + 2, 0]) and part["pair"][1] == 7
        assert part["scale"] == 2.0
    assert torch.equal(torch.cat([p["x"] for p in parts], dim=1), x)
    assert default_shard(batch, 0, 1) is batch
    with pytest.raises(ValueError, match=r"divisible by the world size 4 for equal shards, got 6"):
        default_shard(x, 0, 4)


class CounterLM(nn.Module):
    def __init__(self, vocab: int = 5, hidden: int = 6) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 4)
        self.rnn = nn.LSTM(4, hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, state):
        y, state = self.rnn(self.embed(x), state)
        return self.out(y), state


class CounterTask:
    """float64, no dropout: the only difference between 1 and 2 processes is float summation
    order. Global batches have N=4 columns; each rank trains on 2 of them."""

    vocab, hidden, n, bptt = 5, 6, 4, 3

    def build_model(self):
        return CounterLM(self.vocab, self.hidden).double()

    def batches(self, split, epoch):
        g = torch.Generator().manual_seed({"train": 1, "valid": 2}[split] + 10 * epoch)
        stream = torch.randint(self.vocab, (self.n * (4 * self.bptt + 1),), generator=g)
        data = stream.view(self.n, -1).t()  # (L, N)
        return [
            (data[s : s + self.bptt], data[s + 1 : s + 1 + self.bptt])
            for s in range(0, data.shape[0] - self.bptt, self.bptt)
        ]

    def initial_state(self, batch, device):
        n = batch[0].shape[1]
        zeros = torch.zeros(1, n, self.hidden, dtype=torch.float64, device=device)
        return zeros, zeros.clone()

    def loss(self, model, batch, state):
        x, y = batch
        logits, state = model(x, state)
        return F.cross_entropy(logits.reshape(-1, self.vocab), y.reshape(-1)), state, y.numel()

    def metrics(self, mean_loss):
        return {}

    def state_dict(self):
        return {}


def ddp_config(out_dir) -> TrainerConfig:
    return TrainerConfig(
        epochs=2,
        max_steps=6,  # crosses an epoch boundary (4 windows an epoch)
        lr=0.05,
        clip_norm=0.5,
        eval_every=3,
        checkpoint_every=2,
        log_every=2,
        progress=False,
        device="cpu",
        out_dir=str(out_dir),
    )


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    trainer = Trainer(CounterTask(), ddp_config(os.path.join(out_dir, "run")))
    summary = trainer.fit()
    if rank == 0:
        save_file(dict(trainer.model.state_dict()), os.path.join(out_dir, "params.safetensors"))
        with open(os.path.join(out_dir, "summary.json"), "w") as f:
            json.dump(summary, f)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two fresh interpreters import torch: ~8 s idle, up to ~20 s on a busy box
def test_two_gloo_processes_equal_one_process_on_the_global_batch(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0, 0]

    single = Trainer(CounterTask(), ddp_config(tmp_path / "single"))
    expected = single.fit()
    got = load_file(str(tmp_path / "params.safetensors"))
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=1e-12, msg=name)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["step"] == expected["step"] == 6
    assert summary["tokens"] == expected["tokens"] == 6 * 3 * 4
    assert summary["valid"]["loss"] == pytest.approx(expected["valid"]["loss"], abs=1e-12)
    assert summary["train"]["loss"] == pytest.approx(expected["train"]["loss"], abs=1e-12)

    # rank 0 saved every rank's carried state; resuming needs the same number of processes
    ckpt = load_checkpoint(tmp_path / "run")
    assert len(ckpt.ranks) == 2 and ckpt.meta["world_size"] == 2
    assert (ckpt.meta["epoch"], ckpt.meta["batch_index"]) == (1, 2)
    assert ckpt.ranks[1]["carried"][0].shape == (1, 2, 6)  # rank 1's half of the columns
    with pytest.raises(ValueError, match="written by 2 processes, this run has 1"):
        Trainer(CounterTask(), ddp_config(tmp_path / "other"), resume=tmp_path / "run")
