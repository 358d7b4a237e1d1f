"""Evaluation that uses what it has read: dynamic evaluation (:mod:`.dynamic`, Krause et al. 2018)
and the continuous cache (:mod:`.cache`, Grave et al. 2017), alone or together, and mixed or not
with the n-gram of the training split (:mod:`.ngram`).

The split is read once, in order, in windows of ``bptt`` tokens over ``batch_size`` columns (the
run's evaluation layout unless dynamic evaluation names others), the recurrent state carried from
window to window. Each window is scored first -- by the model, mixed with the cache when there is
one -- and only then used: its states and words enter the cache, and its gradient updates the
dynamically evaluated copy of the model. With ``lr=0`` and ``lam=0`` the figure is plain
evaluation's.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from ...data import TBPTTStream
from ...data.batching import batchify
from ...state import detach_state
from ...train.metrics import RunningMean
from . import cache as cache_lib
from .cache import CacheConfig, NeuralCache
from .dynamic import DynamicEvalConfig, DynamicUpdater
from .ngram import fit_weight, mix_log_probs

log = logging.getLogger(__name__)


def evaluate_online(
    task: Any,
    model: nn.Module,
    split: str,
    dynamic: DynamicEvalConfig | None = None,
    cache: CacheConfig | None = None,
    ngram_weight: float | None = None,
) -> dict[str, Any]:
    """``{'loss', 'tokens', 'ppl', 'seconds'}`` of ``split`` read with dynamic evaluation and/or
    the cache (either may be None; both None is plain evaluation). With ``ngram_weight`` the
    scores are mixed with the task's n-gram (:meth:`LanguageModelTask.ngram_log_probs`,
    :func:`.ngram.mix_log_probs`) and ``'model_loss'``, ``'model_ppl'`` give the network's
    alone. ``model`` is left unchanged."""
    start = time.monotonic()
    mean, mixed = RunningMean(), RunningMean()
    for scored, ngram in _read(task, model, split, dynamic, cache, ngram_weight is not None):
        mean.update(-scored.mean(), scored.numel())
        if ngram is not None:
            mix = mix_log_probs(scored.double(), ngram, ngram_weight)
            mixed.update(-mix.mean(), scored.numel())
    loss = mean.value if ngram_weight is None else mixed.value
    if not math.isfinite(mean.value) and dynamic is not None:
        log.warning("dynamic evaluation diverged (loss %s): lower its lr (%g)", mean.value,
                    dynamic.lr)  # fmt: skip
    out = {"loss": loss, "tokens": mean.weight, **task.metrics(loss)}
    if ngram_weight is not None:
        out.update(model_loss=mean.value, model_ppl=task.metrics(mean.value)["ppl"])
    out["seconds"] = time.monotonic() - start
    return out


def tune_ngram(
    task: Any,
    model: nn.Module,
    split: str = "valid",
    dynamic: DynamicEvalConfig | None = None,
    cache: CacheConfig | None = None,
) -> float:
    """The n-gram's weight in the mixture that scores ``split`` best (:func:`.ngram.fit_weight`),
    the model read as :func:`evaluate_online` reads it with ``dynamic`` and ``cache``."""
    pairs = [(s.double(), g) for s, g in _read(task, model, split, dynamic, cache, True)]
    return fit_weight(torch.cat([s.flatten() for s, _ in pairs]),
                      torch.cat([g.flatten() for _, g in pairs]))  # fmt: skip


def _read(
    task: Any,
    model: nn.Module,
    split: str,
    dynamic: DynamicEvalConfig | None,
    cache: CacheConfig | None,
    with_ngram: bool,
) -> Iterator[tuple[Tensor, Tensor | None]]:
    """One pass over ``split``: per window, (the model's ``log p(targets)`` ``(T, N)``, mixed with
    the cache when there is one; the n-gram's of the same words when ``with_ngram``, else None),
    each window scored before it is used (and then learned from by dynamic evaluation)."""
    device = next(model.parameters()).device
    cfg = task.cfg
    batch_size = cfg.eval_batch_size
    bptt = cfg.bptt
    if dynamic is not None:
        batch_size = dynamic.batch_size or batch_size
        bptt = dynamic.bptt or bptt
    stream = _split_stream(task, split, batch_size, bptt)
    ngram = None
    if with_ngram:
        ngram = TBPTTStream(batchify(task.ngram_log_probs(split), stream.batch_size), bptt)
    updater = None
    if dynamic is not None:
        updater = DynamicUpdater(model, dynamic)
        if dynamic.method == "rms":
            updater.gradient_statistics(task, device)
        scorer = updater.model
    else:
        scorer = model
    was_training = scorer.training
    scorer.eval()
    memory = NeuralCache(cache) if cache is not None else None
    state = None
    try:
        for i in range(stream.num_windows(0)):
            inputs, targets = (t.to(device) for t in stream.get(0, i))
            with torch.set_grad_enabled(updater is not None):
                features, state = scorer.features(inputs, state)
                log_p = scorer.target_log_probs(features, targets)  # (T, N)
            scored = log_p.detach() if memory is None else memory.score(features, targets, log_p)
            yield scored, None if ngram is None else ngram.get(0, i)[1].to(device)
            if updater is not None:
                grads = torch.autograd.grad(-log_p.mean(), updater.params, allow_unused=True)
                updater.update(list(grads))
            state = detach_state(state)
    finally:
        scorer.train(was_training)


def tune_cache(
    task: Any, model: nn.Module, split: str = "valid", size: int = CacheConfig.size
) -> tuple[CacheConfig, list[dict[str, float]]]:
    """The cache's ``theta`` and ``lambda`` that score ``split`` best (:func:`.cache.tune` over its
    grid), with the grid's losses; the model reads ``split`` once, in plain evaluation's layout."""
    device = next(model.parameters()).device
    stream = _split_stream(task, split, task.cfg.eval_batch_size, task.cfg.bptt)
    was_training = model.training
    model.eval()
    windows, state = [], None
    try:
        with torch.no_grad():
            for i in range(stream.num_windows(0)):
                inputs, targets = (t.to(device) for t in stream.get(0, i))
                features, state = model.features(inputs, state)
                windows.append((features, targets, model.target_log_probs(features, targets)))
    finally:
        model.train(was_training)
    return cache_lib.tune(windows, size=size)


def _split_stream(task: Any, split: str, batch_size: int, bptt: int) -> TBPTTStream:
    """``split`` in windows of ``bptt`` tokens over ``batch_size`` columns (fewer for a short
    split: each column holds at least two tokens)."""
    tokens = task.corpus.split(split)
    return TBPTTStream.from_tokens(tokens, max(1, min(batch_size, (len(tokens) - 1) // 2)), bptt)
