import pytest
import torch

from rnnkit.data.batching import (
    TBPTTStream,
    batchify,
    bptt_windows,
    get_window,
    shard_columns,
)


def test_batchify_shape_and_contiguous_columns():
    data = torch.arange(103)
    cols = batchify(data, 4)
    assert cols.shape == (25, 4) and cols.is_contiguous()
    for j in range(4):
        assert torch.equal(cols[:, j], data[j * 25 : (j + 1) * 25])  # tail 100..102 dropped


def test_batchify_errors():
    with pytest.raises(ValueError, match="1-D"):
        batchify(torch.zeros(3, 3), 2)
    with pytest.raises(ValueError, match="too few"):
        batchify(torch.arange(5), 4)
    with pytest.raises(ValueError, match="batch_size"):
        batchify(torch.arange(5), 0)
    with pytest.raises(TypeError):
        batchify(list(range(10)), 2)


def _covered(windows):
    steps = []
    for start, length in windows:
        steps.extend(range(start, start + length))
    return steps


@pytest.mark.parametrize("n_steps,bptt", [(2, 5), (10, 3), (36, 35), (100, 10), (1001, 70)])
def test_fixed_windows_cover_each_step_once(n_steps, bptt):
    windows = bptt_windows(n_steps, bptt)
    assert _covered(windows) == list(range(n_steps - 1))
    assert all(length == bptt for _, length in windows[:-1])
    assert 1 <= windows[-1][1] <= bptt


def test_variable_windows_cover_deterministic_and_vary_by_epoch():
    n_steps, bptt = 5000, 70
    w0 = bptt_windows(n_steps, bptt, variable=True, seed=3, epoch=0)
    assert _covered(w0) == list(range(n_steps - 1))
    assert bptt_windows(n_steps, bptt, variable=True, seed=3, epoch=0) == w0
    assert bptt_windows(n_steps, bptt, variable=True, seed=3, epoch=1) != w0
    assert bptt_windows(n_steps, bptt, variable=True, seed=4, epoch=0) != w0
    lengths = [length for _, length in w0[:-1]]
    assert min(lengths) >= 5
    assert len(set(lengths)) > 5  # lengths do vary
    # ~95% around bptt, ~5% around bptt / 2
    near_full = sum(abs(x - bptt) <= 20 for x in lengths) / len(lengths)
    near_half = sum(abs(x - bptt / 2) <= 20 for x in lengths) / len(lengths)
    assert near_full > 0.85 and 0.0 < near_half < 0.15


def test_variable_windows_respect_min_len():
    windows = bptt_windows(1000, 4, variable=True, min_len=7)
    assert all(length >= 7 for _, length in windows[:-1])
    assert _covered(windows) == list(range(999))


def test_windows_errors():
    with pytest.raises(ValueError, match="n_steps"):
        bptt_windows(1, 5)
    with pytest.raises(ValueError, match="bptt"):
        bptt_windows(10, 0)


def test_targets_are_inputs_shifted_by_one():
    data = torch.arange(1000)
    cols = batchify(data, 5)
    for start, length in bptt_windows(cols.shape[0], 35):
        x, y = get_window(cols, start, length)
        assert x.shape == y.shape == (length, 5)
        assert torch.equal(y, x + 1)  # data is arange: the next token is +1
    with pytest.raises(ValueError, match="does not fit"):
        get_window(cols, cols.shape[0] - 3, 3)


def test_stream_iterates_whole_epoch_and_resumes():
    data = torch.arange(2003)
    stream = TBPTTStream.from_tokens(data, batch_size=4, bptt=30, variable=True, seed=1)
    assert stream.batch_size == 4 and stream.tokens_per_epoch == (500 - 1) * 4
    items = list(stream.iter_epoch(epoch=2))
    assert [i for i, _, _ in items] == list(range(stream.num_windows(2)))
    assert sum(x.numel() for _, x, _ in items) == stream.tokens_per_epoch
    inputs = torch.cat([x for _, x, _ in items])
    assert torch.equal(inputs, stream.columns[:-1])
    # resuming from window k gives exactly the rest of the epoch
    k = len(items) // 2
    rest = list(stream.iter_epoch(epoch=2, start=k))
    assert len(rest) == len(items) - k
    for (i, x, y), (j, x2, y2) in zip(items[k:], rest):
        assert i == j and torch.equal(x, x2) and torch.equal(y, y2)
    # a fresh stream with the same seed gives the same windows (e.g. after a restart)
    again = TBPTTStream.from_tokens(data, batch_size=4, bptt=30, variable=True, seed=1)
    assert again.windows(2) == stream.windows(2)
    x, y = stream.get(2, k)
    assert torch.equal(x, items[k][1]) and torch.equal(y, items[k][2])
    with pytest.raises(IndexError):
        stream.get(2, len(items))


def test_shard_columns_partition_global_batch():
    cols = batchify(torch.arange(800), 8)
    shards = [shard_columns(cols, r, 4) for r in range(4)]
    assert all(s.shape == (100, 2) for s in shards)
    assert torch.equal(torch.cat(shards, dim=1), cols)
    with pytest.raises(ValueError, match="divisible"):
        shard_columns(cols, 0, 3)
    with pytest.raises(ValueError, match="rank"):
        shard_columns(cols, 4, 4)
