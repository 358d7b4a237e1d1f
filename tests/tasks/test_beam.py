"""Beam search and greedy search over a step function, checked against exhaustive search."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from rnnkit.tasks.beam import beam_search, expand_state, greedy_search, index_state

V, H, START, END = 4, 5, 0, 3


def make_rnn_step(seed: int = 0):
    """A tiny random RNN decoder: state ``h (1, B, H)`` (batch dimension 1), logits ``(B, V)``."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(V, H, generator=g, dtype=torch.float64)
    rec = torch.randn(H, H, generator=g, dtype=torch.float64) * 0.8
    out = torch.randn(H, V, generator=g, dtype=torch.float64) * 2.0

    def step(tokens, h):
        h = torch.tanh(emb[tokens] + h[0] @ rec).unsqueeze(0)
        return h[0] @ out, h

    return step


def sequence_log_prob(step, h0_row, seq):
    """Log-probability of ``seq`` (tokens after START) for one example, one step at a time."""
    h, tok, total = h0_row, torch.tensor([START]), 0.0
    for t in seq:
        logits, h = step(tok, h)
        total += float(torch.log_softmax(logits, -1)[0, t])
        tok = torch.tensor([t])
    return total


def exhaustive_best(step, h0_row, max_len, alpha):
    """Best (score, tokens, finished) over every sequence the beam could produce."""
    best = None
    for length in range(1, max_len + 1):
        for body in itertools.product([t for t in range(V) if t != END], repeat=length - 1):
            for last in range(V):
                finished = last == END
                if not finished and length < max_len:
                    continue  # unfinished sequences only exist at max_len
                seq = [*body, last]
                lp = sequence_log_prob(step, h0_row, seq)
                score = lp / length**alpha
                cand = (score, list(body) if finished else seq, finished)
                if best is None or cand[0] > best[0]:
                    best = cand
    return best


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_wide_beam_is_exhaustive_search(alpha):
    step = make_rnn_step(1)
    n, max_len = 3, 4
    h0 = torch.randn(1, n, H, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = beam_search(step, h0, START, END, beam_size=64, max_len=max_len, length_penalty=alpha,
                      state_batch_dim=1)  # fmt: skip
    assert len(out) == n
    for i in range(n):
        score, tokens, finished = exhaustive_best(step, h0[:, i : i + 1], max_len, alpha)
        hyp = out[i][0]
        assert hyp.tokens == tokens and hyp.finished == finished
        assert hyp.score == pytest.approx(score, abs=1e-9)
        # the reported log-probability is the sequence's own
        seq = hyp.tokens + ([END] if hyp.finished else [])
        assert hyp.log_prob == pytest.approx(sequence_log_prob(step, h0[:, i : i + 1], seq))


def test_beam_of_one_is_greedy():
    step = make_rnn_step(3)
    n = 16
    h0 = torch.randn(1, n, H, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    greedy = greedy_search(step, h0, START, END, max_len=6, state_batch_dim=1)
    one = beam_search(step, h0, START, END, beam_size=1, max_len=6, state_batch_dim=1)
    assert [g.tokens for g in greedy] == [b[0].tokens for b in one]
    assert [g.finished for g in greedy] == [b[0].finished for b in one]
    for g, b in zip(greedy, one):
        assert g.log_prob == pytest.approx(b[0].log_prob, abs=1e-6)


def test_beam_finds_the_sequence_greedy_misses():
    """First token A (0.6) or B (0.4); after A every continuation is flat, after B END is sure."""
    a, b = 1, 2
    table = {
        START: [0.0, 0.6, 0.4, 0.0],
        a: [0.0, 0.34, 0.33, 0.33],
        b: [0.0, 0.0, 0.0, 1.0],
    }

    def step(tokens, state):
        probs = torch.tensor([table[int(t)] for t in tokens])
        return torch.log(probs.clamp_min(1e-12)), state

    state = torch.zeros(1, 1)
    greedy = greedy_search(step, state, START, END, max_len=2)
    assert greedy[0].tokens == [a, a] and not greedy[0].finished
    best = beam_search(step, state, START, END, beam_size=2, max_len=2, length_penalty=0.0)
    assert best[0][0].tokens == [b] and best[0][0].finished
    assert best[0][0].log_prob == pytest.approx(math.log(0.4))


def test_n_best_are_sorted_and_distinct():
    step = make_rnn_step(5)
    h0 = torch.zeros(1, 2, H, dtype=torch.float64)
    out = beam_search(step, h0, START, END, beam_size=4, max_len=5, n_best=3, state_batch_dim=1)
    for hyps in out:
        assert len(hyps) == 3
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({(tuple(h.tokens), h.finished) for h in hyps}) == 3


def test_custom_reorder_and_state_helpers():
    state = {"h": torch.arange(6.0).view(1, 3, 2), "n": None}
    big = expand_state(state, 2, dim=1)
    assert big["h"].shape == (1, 6, 2) and big["n"] is None
    torch.testing.assert_close(big["h"][0, 1], state["h"][0, 0])
    picked = index_state(big, torch.tensor([5, 0]), dim=1)
    torch.testing.assert_close(picked["h"][0], torch.tensor([[4.0, 5.0], [0.0, 1.0]]))

    step = make_rnn_step(6)
    h0 = torch.randn(1, 2, H, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    default = beam_search(step, h0, START, END, beam_size=3, max_len=5, state_batch_dim=1)
    custom = beam_search(step, expand_state(h0, 3, 1), START, END, beam_size=3, max_len=5,
                         batch_size=2, reorder_state=lambda s, i: s[:, i])  # fmt: skip
    assert [h[0].tokens for h in default] == [h[0].tokens for h in custom]


def test_bad_arguments_are_named():
    step = make_rnn_step(0)
    h0 = torch.zeros(1, 2, H, dtype=torch.float64)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(step, h0, START, END, beam_size=0, max_len=3, state_batch_dim=1)
    with pytest.raises(ValueError, match="n_best"):
        beam_search(step, h0, START, END, beam_size=2, max_len=3, n_best=3, state_batch_dim=1)
    with pytest.raises(ValueError, match="batch_size is needed"):
        beam_search(step, h0, START, END, 2, 3, reorder_state=lambda s, i: s)
    with pytest.raises(ValueError, match=r"shape \(B, V\) with B = 4"):
        beam_search(lambda t, s: (torch.zeros(3, V), s), h0, START, END, 2, 3, state_batch_dim=1)
