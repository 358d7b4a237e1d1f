"""Greedy and beam-search decoding over any step function.

A decoder is described by one function::

    step_fn(tokens (B,) int64, state) -> (scores (B, V), state)

``scores`` are logits or log-probabilities (``log_softmax`` is applied, which leaves
log-probabilities unchanged). ``state`` is anything: tensors nested in tuples, lists and dicts whose
batch dimension is ``state_batch_dim`` (1 for a torch.nn/rnnkit LSTM state ``(L, N, H)``), or any
object when a ``reorder_state(state, index)`` function is given. Anything constant per example
(encoder outputs, image features) is best kept out of ``state``: capture it in the closure,
repeated ``beam_size`` times per example (``x.repeat_interleave(beam_size, 0)``), since beam search
runs ``B = N * beam_size`` rows and row ``n * beam_size + k`` is beam ``k`` of example ``n``.

Beam search (Sutskever et al. 2014, "Sequence to Sequence Learning with Neural Networks"; the
candidate handling of fairseq): each step expands every live beam by every token, keeps the
``beam_size`` best continuations by total log-probability, and moves a continuation that ends with
``end_token`` (when it ranks among the ``beam_size`` best) to the finished list. An example stops
once it has ``beam_size`` finished hypotheses; at ``max_len`` the live beams are added unfinished.
Hypotheses are ranked by length-normalised score ``log_prob / length ** length_penalty`` (Wu et al.
2016, GNMT, use ``((5 + length) / 6) ** alpha``; the plain power is the common simplification),
where ``length`` counts the generated tokens including the end token. ``length_penalty=0`` ranks
by total log-probability, which favours short outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Hypothesis", "beam_search", "expand_state", "greedy_search", "index_state"]

StepFn = Callable[[Tensor, Any], tuple[Tensor, Any]]


@dataclass
class Hypothesis:
    """One decoded sequence.

    Attributes:
        tokens: the generated tokens, without the start token and without the end token.
        log_prob: sum of the log-probabilities of the generated tokens (the end token included).
        score: ``log_prob / length ** length_penalty`` (what beams are ranked by).
        finished: whether the sequence ended with ``end_token`` (False: cut at ``max_len``).
    """

    tokens: list[int]
    log_prob: float
    score: float
    finished: bool

    @property
    def length(self) -> int:
        """Generated steps: the tokens, plus one for the end token when finished."""
        return len(self.tokens) + int(self.finished)


def _map_state(state: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, tuple):
        return tuple(_map_state(s, fn) for s in state)
    if isinstance(state, list):
        return [_map_state(s, fn) for s in state]
    if isinstance(state, dict):
        return {k: _map_state(v, fn) for k, v in state.items()}
    return state  # None and other constants pass through


def index_state(state: Any, index: Tensor, dim: int = 0) -> Any:
    """Select rows ``index`` along ``dim`` of every tensor nested in ``state``."""
    return _map_state(state, lambda t: t.index_select(dim, index.to(t.device)))


def expand_state(state: Any, times: int, dim: int = 0) -> Any:
    """Repeat each row of every tensor nested in ``state`` ``times`` times along ``dim``."""
    return _map_state(state, lambda t: t.repeat_interleave(times, dim=dim))


def _first_tensor(state: Any) -> Tensor | None:
    found: list[Tensor] = []
    _map_state(state, lambda t: found.append(t) or t)
    return found[0] if found else None


def _batch_size(state: Any, batch_size: int | None, dim: int) -> int:
    if batch_size is not None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return batch_size
    t = _first_tensor(state)
    if t is None:
        raise ValueError("batch_size is needed when the initial state holds no tensor")
    return t.shape[dim]


def _check(max_len: int, beam_size: int = 1) -> None:
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")


def _device(state: Any) -> torch.device:
    t = _first_tensor(state)
    return t.device if t is not None else torch.device("cpu")


def _log_probs(step_fn: StepFn, tokens: Tensor, state: Any, rows: int) -> tuple[Tensor, Any]:
    scores, state = step_fn(tokens, state)
    if scores.dim() != 2 or scores.shape[0] != rows:
        raise ValueError(
            f"step_fn must return scores of shape (B, V) with B = {rows}, got {tuple(scores.shape)}"
        )
    return F.log_softmax(scores.double(), dim=-1), state  # sums of many steps: float64


def _score(log_prob: float, length: int, length_penalty: float) -> float:
    return log_prob / (max(length, 1) ** length_penalty)


@torch.no_grad()
def greedy_search(
    step_fn: StepFn,
    init_state: Any,
    start_token: int,
    end_token: int,
    max_len: int,
    *,
    batch_size: int | None = None,
    state_batch_dim: int = 0,
    length_penalty: float = 1.0,
) -> list[Hypothesis]:
    """The most likely token at every step, for ``N`` examples at once.

    Args:
        step_fn: ``(tokens (N,), state) -> (scores (N, V), state)``.
        init_state: the decoder state for the ``N`` examples.
        start_token, end_token: ids of the first input token and of the token that ends a sequence.
        max_len: most tokens generated per example (the end token included).
        batch_size: ``N`` (default: the size of ``state_batch_dim`` of the first state tensor).
        state_batch_dim: batch dimension of the state tensors.
        length_penalty: only for the returned ``score``.

    Returns:
        One :class:`Hypothesis` per example.
    """
    _check(max_len)
    n = _batch_size(init_state, batch_size, state_batch_dim)
    device = _device(init_state)
    tokens = torch.full((n,), start_token, dtype=torch.long, device=device)
    state = init_state
    history = []
    total = torch.zeros(n, dtype=torch.float64, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    steps = torch.zeros(n, dtype=torch.long, device=device)
    for _ in range(max_len):
        logp, state = _log_probs(step_fn, tokens, state, n)
        best_lp, tokens = logp.max(dim=-1)
        live = ~done
        total = total + torch.where(live, best_lp, torch.zeros_like(best_lp))
        steps = steps + live.long()
        history.append(tokens)
        done = done | (tokens == end_token)
        if bool(done.all()):
            break
    out: list[Hypothesis] = []
    seqs = torch.stack(history, dim=1).tolist()
    for i in range(n):
        seq = seqs[i][: int(steps[i])]
        finished = bool(seq) and seq[-1] == end_token
        toks = seq[:-1] if finished else seq
        lp = float(total[i])
        out.append(Hypothesis(toks, lp, _score(lp, len(seq), length_penalty), finished))
    return out


@torch.no_grad()
def beam_search(
    step_fn: StepFn,
    init_state: Any,
    start_token: int,
    end_token: int,
    beam_size: int,
    max_len: int,
    *,
    length_penalty: float = 1.0,
    n_best: int = 1,
    batch_size: int | None = None,
    state_batch_dim: int = 0,
    reorder_state: Callable[[Any, Tensor], Any] | None = None,
) -> list[list[Hypothesis]]:
    """Beam search for ``N`` examples at once (module docstring: the rules).

    Args:
        step_fn: ``(tokens (N*K,), state) -> (scores (N*K, V), state)``; row ``n*K + k`` is beam
            ``k`` of example ``n`` (``K = beam_size``).
        init_state: the decoder state for the ``N`` examples; each example's rows are repeated
            ``K`` times along ``state_batch_dim`` (``expand_state``) before the first step.
        start_token, end_token: ids of the first input token and of the token that ends a sequence.
        beam_size: ``K``, live beams kept per example (1 is greedy search).
        max_len: most tokens generated per example (the end token included).
        length_penalty: ``alpha`` of the ranking score ``log_prob / length ** alpha``.
        n_best: hypotheses returned per example (``<= beam_size``).
        batch_size: ``N`` (default: the size of ``state_batch_dim`` of the first state tensor).
        state_batch_dim: batch dimension of the state tensors.
        reorder_state: ``(state, index (N*K,)) -> state`` selecting rows; default
            :func:`index_state` along ``state_batch_dim``. With it, ``init_state`` must already
            hold ``N*K`` rows and ``batch_size`` must be given.

    Returns:
        For each example, its ``n_best`` hypotheses, best score first.
    """
    _check(max_len, beam_size)
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be in [1, beam_size={beam_size}], got {n_best}")
    k = beam_size
    if reorder_state is None:
        n = _batch_size(init_state, batch_size, state_batch_dim)
        state = expand_state(init_state, k, state_batch_dim)

        def reorder_state(s: Any, index: Tensor) -> Any:
            return index_state(s, index, state_batch_dim)

    else:
        if batch_size is None:
            raise ValueError("batch_size is needed with a custom reorder_state")
        n, state = batch_size, init_state
    device = _device(state)
    tokens = torch.full((n * k,), start_token, dtype=torch.long, device=device)
    beam_lp = torch.full((n, k), -math.inf, dtype=torch.float64, device=device)
    beam_lp[:, 0] = 0.0  # all beams start identical: expand only the first
    history = torch.empty((n * k, 0), dtype=torch.long, device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    done = [False] * n
    offsets = torch.arange(n, device=device).unsqueeze(1) * k
    for step in range(max_len):
        logp, state = _log_probs(step_fn, tokens, state, n * k)
        vocab = logp.shape[-1]
        cand = (beam_lp.unsqueeze(-1) + logp.view(n, k, vocab)).view(n, k * vocab)
        top_lp, top_idx = cand.topk(min(2 * k, k * vocab), dim=-1)
        top_beam, top_tok = top_idx // vocab, top_idx % vocab
        rows_lp, rows_beam, rows_tok = top_lp.tolist(), top_beam.tolist(), top_tok.tolist()
        new_lp = torch.full((n, k), -math.inf, dtype=torch.float64)
        new_beam = torch.zeros((n, k), dtype=torch.long)
        new_tok = torch.full((n, k), end_token, dtype=torch.long)
        for i in range(n):
            if done[i]:
                continue
            live = 0
            for rank, (lp, b, tok) in enumerate(zip(rows_lp[i], rows_beam[i], rows_tok[i])):
                if lp == -math.inf or live == k:
                    break
                if tok == end_token:
                    if rank < k:  # an ending counts only among the K best (fairseq's rule)
                        seq = history[i * k + b].tolist()
                        score = _score(lp, len(seq) + 1, length_penalty)
                        finished[i].append(Hypothesis(seq, lp, score, True))
                    continue
                new_lp[i, live], new_beam[i, live], new_tok[i, live] = lp, b, tok
                live += 1
            if len(finished[i]) >= k or live == 0:
                done[i] = True
        if all(done):
            break
        index = (new_beam.to(device) + offsets).view(-1)
        history = torch.cat([history[index], new_tok.to(device).view(-1, 1)], dim=1)
        state = reorder_state(state, index)
        beam_lp = new_lp.to(device)
        for i in range(n):
            if done[i]:
                beam_lp[i] = -math.inf
        tokens = new_tok.to(device).view(-1)
        if step == max_len - 1:  # out of steps: the live beams end unfinished
            rows = history.tolist()
            for i in range(n):
                for b in range(k):
                    lp = float(beam_lp[i, b])
                    if lp > -math.inf:
                        seq = rows[i * k + b]
                        score = _score(lp, len(seq), length_penalty)
                        finished[i].append(Hypothesis(seq, lp, score, False))
    return [sorted(f, key=lambda h: -h.score)[:n_best] for f in finished]
