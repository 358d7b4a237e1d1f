import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rnnkit.data.sequences import BucketSampler, pad_sequences


def test_pad_sequences_1d_time_major_and_batch_first():
    seqs = [torch.tensor([1, 2, 3]), torch.tensor([4]), torch.tensor([5, 6])]
    padded, lengths = pad_sequences(seqs, padding_value=-1)
    assert padded.shape == (3, 3) and lengths.tolist() == [3, 1, 2]
    assert lengths.dtype == torch.long
    assert padded[:, 1].tolist() == [4, -1, -1]
    bf, _ = pad_sequences(seqs, batch_first=True)
    assert bf.shape == (3, 3) and bf[2].tolist() == [5, 6, 0]
    assert torch.equal(bf, padded.where(padded != -1, torch.zeros_like(padded)).t())


def test_pad_sequences_2d_features():
    seqs = [torch.randn(4, 3), torch.randn(2, 3)]
    padded, lengths = pad_sequences(seqs)
    assert padded.shape == (4, 2, 3)
    assert torch.equal(padded[:2, 1], seqs[1]) and torch.all(padded[2:, 1] == 0)
    packed = torch.nn.utils.rnn.pack_padded_sequence(padded, lengths)
    assert packed.data.shape == (6, 3)


def test_pad_sequences_errors():
    with pytest.raises(ValueError, match="at least one"):
        pad_sequences([])
    with pytest.raises(ValueError, match="sequence 1"):
        pad_sequences([torch.zeros(3, 2), torch.zeros(3, 4)])
    with pytest.raises(TypeError, match="dtype"):
        pad_sequences([torch.zeros(3), torch.zeros(3, dtype=torch.long)])
    with pytest.raises(ValueError, match="1-D"):
        pad_sequences([torch.zeros(2, 2, 2)])


def _lengths(n=1000, seed=0):
    return np.random.default_rng(seed).integers(1, 200, size=n)


@pytest.mark.parametrize("drop_last", [False, True])
def test_bucket_sampler_every_index_once(drop_last):
    lengths = _lengths()
    sampler = BucketSampler(lengths, batch_size=32, num_buckets=10, drop_last=drop_last)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))
    if drop_last:
        assert all(len(b) == 32 for b in batches) and len(flat) >= 1000 - 10 * 31
    else:
        assert sorted(flat) == list(range(1000))


def test_bucket_sampler_batches_have_close_lengths():
    lengths = _lengths()
    batches = list(BucketSampler(lengths, batch_size=32, num_buckets=10))
    spread = [lengths[b].max() - lengths[b].min() for b in batches]
    # random batches of 32 out of U[1, 200) would spread ~190; a bucket spans ~1/10 of the range
    assert max(spread) <= 30 and np.mean(spread) < 22
    for b in batches:  # listed by decreasing length
        assert list(lengths[b]) == sorted(lengths[b], reverse=True)


def test_bucket_sampler_deterministic_per_epoch():
    lengths = _lengths()
    a = BucketSampler(lengths, batch_size=16, seed=5)
    b = BucketSampler(lengths, batch_size=16, seed=5)
    first = list(a)
    assert first == list(b) == list(a)
    a.set_epoch(1)
    second = list(a)
    assert second != first
    b.set_epoch(1)
    assert list(b) == second
    assert sorted(map(sorted, second)) != sorted(map(sorted, first))  # batch contents change
    # contents change even when all lengths differ (shuffling within buckets, not only ties)
    distinct = BucketSampler(np.random.default_rng(0).permutation(500), batch_size=10, seed=5)
    e0 = sorted(map(sorted, distinct))
    distinct.set_epoch(1)
    assert sorted(map(sorted, distinct)) != e0


def test_bucket_sampler_no_shuffle_is_sorted():
    lengths = _lengths(100)
    batches = list(BucketSampler(lengths, batch_size=8, shuffle=False))
    maxima = [lengths[b].max() for b in batches]
    assert maxima == sorted(maxima)
    assert sorted(i for b in batches for i in b) == list(range(100))


def test_bucket_sampler_explicit_boundaries():
    lengths = [3, 12, 25, 7, 14, 40, 1, 19]
    sampler = BucketSampler(lengths, batch_size=10, boundaries=[10, 20], shuffle=False)
    batches = list(sampler)
    assert len(sampler) == 3
    assert sorted(map(sorted, batches)) == [[0, 3, 6], [1, 4, 7], [2, 5]]


def test_bucket_sampler_as_dataloader_batch_sampler():
    seqs = [torch.full((n,), i) for i, n in enumerate(_lengths(50))]
    sampler = BucketSampler([len(s) for s in seqs], batch_size=8, num_buckets=4)
    loader = DataLoader(seqs, batch_sampler=sampler, collate_fn=pad_sequences)
    seen = 0
    for padded, lengths in loader:
        assert padded.shape == (lengths.max(), len(lengths))
        torch.nn.utils.rnn.pack_padded_sequence(padded, lengths)  # enforce_sorted holds
        seen += len(lengths)
    assert seen == 50


def test_bucket_sampler_errors():
    with pytest.raises(ValueError, match="batch_size"):
        BucketSampler([1, 2], batch_size=0)
    with pytest.raises(ValueError, match="boundaries"):
        BucketSampler([1, 2], batch_size=1, boundaries=[5, 3])
    with pytest.raises(ValueError, match="non-empty"):
        BucketSampler([], batch_size=1)
    with pytest.raises(ValueError, match=">= 0"):
        BucketSampler([1, -2], batch_size=1)
