"""Dynamic evaluation and the continuous cache, on generated word-level text."""

from __future__ import annotations

import math
import random

import pytest
import torch

from rnnkit.tasks.lm import (
    CacheConfig,
    DynamicEvalConfig,
    DynamicUpdater,
    LanguageModelTask,
    LMConfig,
    NeuralCache,
)
from rnnkit.tasks.lm.cache import LAMS, THETAS, tune
from rnnkit.train import DistributedContext
from rnnkit.train.evaluation import evaluate_task

WORDS = [f"w{i}" for i in range(40)]


def write_corpus(directory, repeat: bool):
    """train/valid/test.txt; with ``repeat`` the valid text is one random 30-word line over and
    over (what a cache and dynamic evaluation pick up), else random words."""
    rng = random.Random(0)
    directory.mkdir(exist_ok=True)
    line = " ".join(rng.choice(WORDS) for _ in range(30))
    for split, n in (("train", 60), ("valid", 12), ("test", 6)):
        lines = [line if repeat and split != "train" else
                 " ".join(rng.choice(WORDS) for _ in range(30)) for _ in range(n)]  # fmt: skip
        (directory / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(directory)


def make_task(tmp_path, repeat=False, **kw):
    cfg = LMConfig(data=write_corpus(tmp_path / "data", repeat), level="word", embed_size=16,
                   hidden_size=16, batch_size=4, bptt=8, eval_batch_size=3, **kw)  # fmt: skip
    task = LanguageModelTask(cfg)
    torch.manual_seed(0)
    return task, task.build_model().double().eval()


def plain(task, model, split="valid"):
    return evaluate_task(task, model, split, torch.device("cpu"), DistributedContext())


@pytest.mark.parametrize(
    "dynamic",
    [DynamicEvalConfig(lr=0.0, decay=0.0, method="sgd"), DynamicEvalConfig(lr=0.0, decay=0.5)],
)
def test_dynamic_eval_with_lr_0_is_plain_evaluation(tmp_path, dynamic):
    task, model = make_task(tmp_path)
    expected = plain(task, model)
    got = task.evaluate_online(model, "valid", dynamic=dynamic)
    assert got["loss"] == expected["loss"] and got["tokens"] == expected["tokens"]


def test_cache_with_lambda_0_is_plain_evaluation(tmp_path):
    task, model = make_task(tmp_path)
    expected = plain(task, model)
    got = task.evaluate_online(model, "valid", cache=CacheConfig(size=50, theta=1.0, lam=0.0))
    assert got["loss"] == expected["loss"] and got["tokens"] == expected["tokens"]


@pytest.mark.parametrize("method,lr,ratio", [("sgd", 2.0, 0.5), ("rms", 1e-2, 0.8)])
def test_dynamic_eval_learns_a_repeating_text_and_leaves_the_model_alone(
    tmp_path, method, lr, ratio
):
    task, model = make_task(tmp_path, repeat=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    base = plain(task, model)["loss"]
    dynamic = DynamicEvalConfig(lr=lr, decay=0.0, method=method, bptt=5, batch_size=1,
                                rms_batches=4)  # fmt: skip
    got = task.evaluate_online(model, "valid", dynamic=dynamic)
    assert got["loss"] < ratio * base  # the 30-word line, seen again and again, is learned
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("method", ["sgd", "rms"])
def test_dynamic_update_rules(method):
    """sgd: p - lr g + decay (p0 - p); rms: p - lr g / (MS + eps) + decay r (p0 - p), both terms
    from the weights before the step."""
    model = torch.nn.Linear(3, 2).double()
    cfg = DynamicEvalConfig(lr=0.1, decay=0.25, method=method, eps=1e-3)
    updater = DynamicUpdater(model, cfg)
    p0 = [p.clone() for p in updater.params]
    with torch.no_grad():
        for p in updater.params:
            p.add_(1.0)  # away from the trained weights
    moved = [p.clone() for p in updater.params]
    grads = [torch.full_like(p, 2.0) for p in updater.params]
    if method == "rms":  # MS 0.5 for the weight and the bias: r = 0.5 / (0.5 + 0.5)
        updater.set_statistics([torch.full_like(p, 0.5) for p in updater.params])
    updater.update(grads)
    for p, start, before, g in zip(updater.params, p0, moved, grads):
        if method == "sgd":
            expected = before - 0.1 * g + 0.25 * (start - before)
        else:
            expected = before - 0.1 * g / (0.5 + 1e-3) + 0.25 * 0.5 * (start - before)
        torch.testing.assert_close(p, expected, rtol=0, atol=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), p0))  # a copy was updated


def test_rms_statistics_come_from_training_gradients(tmp_path):
    task, model = make_task(tmp_path)
    updater = DynamicUpdater(model, DynamicEvalConfig(rms_batches=3, decay=0.02))
    updater.gradient_statistics(task, torch.device("cpu"))
    total = sum(float(m.mean()) for m in updater.ms)
    for ms, rate in zip(updater.ms, updater.rate):
        assert (ms >= 0).all() and ms.shape == rate.shape
        torch.testing.assert_close(rate, (ms / total).clamp(max=50.0))
    with pytest.raises(ValueError, match="needs gradient_statistics"):
        DynamicUpdater(model, DynamicEvalConfig()).update([None] * len(updater.params))


def test_cache_lowers_the_perplexity_of_a_repeating_text(tmp_path):
    task, model = make_task(tmp_path, repeat=True)
    base = plain(task, model)["ppl"]
    got = task.evaluate_online(model, "valid", cache=CacheConfig(size=100, theta=50.0, lam=0.5))
    assert got["ppl"] < 0.25 * base


def test_cache_tuning_scores_each_setting_as_the_cache_does(tmp_path):
    """Every grid point's loss is what evaluation with that cache gives; the best is chosen."""
    task, model = make_task(tmp_path, repeat=True)
    best, grid = task.tune_cache(model, "valid", size=50)
    assert [(r["theta"], r["lam"]) for r in grid] == [(t, lam) for t in THETAS for lam in LAMS]
    for row in grid[::5]:
        cfg = CacheConfig(size=50, theta=row["theta"], lam=row["lam"])
        got = task.evaluate_online(model, "valid", cache=cfg)
        assert got["loss"] == pytest.approx(row["loss"], rel=1e-9, abs=1e-12)
    lowest = min(grid, key=lambda r: r["loss"])
    assert (best.theta, best.lam, best.size) == (lowest["theta"], lowest["lam"], 50)
    assert lowest["loss"] < plain(task, model)["loss"]  # the text repeats: the cache helps


def test_cache_tuning_needs_text():
    with pytest.raises(ValueError, match="cache tuning needs at least one window of text"):
        tune([])


def naive_cache(features, targets, model_lp, size, theta, lam):
    """Grave et al.'s formula, one column and one word at a time."""
    T, N, _ = features.shape
    out = torch.empty(T, N, dtype=features.dtype)
    for n in range(N):
        for t in range(T):
            keys = range(max(0, t - size), t)
            if not keys:
                out[t, n] = math.log(1 - lam) + model_lp[t, n]
                continue
            s = torch.stack([theta * features[t, n] @ features[i, n] for i in keys])
            w = torch.softmax(s, 0)
            p_cache = sum(w[k] for k, i in enumerate(keys) if targets[i, n] == targets[t, n])
            p = (1 - lam) * model_lp[t, n].exp() + lam * p_cache
            out[t, n] = torch.log(torch.as_tensor(p, dtype=features.dtype))
    return out


@pytest.mark.parametrize("size", [1, 4, 100])
def test_cache_matches_the_formula_across_windows(size):
    """Windows of 5 fed in order give the formula over the whole stream (keys from earlier
    windows included, at most ``size`` of them)."""
    g = torch.Generator().manual_seed(0)
    T, N, H, V = 12, 2, 3, 4
    features = torch.randn(T, N, H, generator=g, dtype=torch.double)
    targets = torch.randint(0, V, (T, N), generator=g)
    model_lp = torch.log_softmax(torch.randn(T, N, V, generator=g, dtype=torch.double), -1)
    model_lp = model_lp.gather(-1, targets[..., None])[..., 0]
    cache = NeuralCache(CacheConfig(size=size, theta=0.7, lam=0.3))
    got = torch.cat([cache.score(features[s : s + 5], targets[s : s + 5], model_lp[s : s + 5])
                     for s in range(0, T, 5)])  # fmt: skip
    torch.testing.assert_close(got, naive_cache(features, targets, model_lp, size, 0.7, 0.3))
    assert cache.keys.shape == (min(size, T), N, H)


@pytest.mark.parametrize(
    "cls,kwargs,match",
    [
        (CacheConfig, dict(size=0), "cache size must be an integer >= 1"),
        (CacheConfig, dict(lam=1.5), r"cache lambda must be a number in \[0, 1\]"),
        (CacheConfig, dict(theta=-1.0), "cache theta must be a finite number >= 0"),
        (DynamicEvalConfig, dict(method="adam"), "method must be one of"),
        (DynamicEvalConfig, dict(lr=-1.0), "lr must be a finite number >= 0"),
        (DynamicEvalConfig, dict(bptt=0), "bptt must be an integer >= 1"),
        (DynamicEvalConfig, dict(eps=0.0), "eps must be > 0 with method 'rms'"),
    ],
)
def test_bad_settings_are_named(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_adaptive_softmax_model_evaluates_online(tmp_path):
    task, model = make_task(tmp_path, softmax="adaptive", adaptive_cutoffs=(10,))
    expected = plain(task, model)
    got = task.evaluate_online(model, "valid", dynamic=DynamicEvalConfig(lr=0.0, decay=0.0),
                               cache=CacheConfig(lam=0.0))  # fmt: skip
    assert got["loss"] == expected["loss"]
