"""The Kneser-Ney n-gram against a direct transcription of Chen & Goodman's formulas, and its
mixture with the recurrent model in evaluation."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from rnnkit.data.batching import batchify
from rnnkit.tasks.lm import LanguageModelTask, LMConfig
from rnnkit.tasks.lm.ngram import KneserNey, fit_weight, mix_log_probs
from rnnkit.train import DistributedContext
from rnnkit.train.evaluation import evaluate_task

from .test_online_eval import write_corpus


def markov_text(length: int, vocab: int, seed: int) -> np.ndarray:
    """Ids with a skewed, context-dependent distribution, so that every order has counts of 1, 2,
    3 and more."""
    rng = np.random.default_rng(seed)
    out = [0, 1]
    for _ in range(length - 2):
        step = int(rng.zipf(1.6)) % vocab
        out.append((out[-1] * 3 + out[-2] + step) % vocab)
    return np.array(out)


class DirectKneserNey:
    """Interpolated modified Kneser-Ney written out with dictionaries, one n-gram at a time."""

    def __init__(self, tokens, vocab, order):
        self.vocab, self.order = vocab, order
        tokens = [int(t) for t in tokens]
        raw = {n: Counter(tuple(tokens[i - n + 1 : i + 1]) for i in range(n - 1, len(tokens)))
               for n in range(1, order + 1)}  # fmt: skip
        self.c = {order: raw[order]}
        for n in range(1, order):  # continuation: distinct words seen before the n-gram
            self.c[n] = Counter(gram[1:] for gram in raw[n + 1])
        self.total, self.kinds, self.d = {}, {}, {}
        for n in range(1, order + 1):
            total, kinds = defaultdict(int), defaultdict(lambda: [0, 0, 0])
            for gram, k in self.c[n].items():
                total[gram[:-1]] += k
                kinds[gram[:-1]][min(k, 3) - 1] += 1
            self.total[n], self.kinds[n] = total, kinds
            nk = [sum(1 for k in self.c[n].values() if k == j) for j in (1, 2, 3, 4)]
            if nk[0] == 0 or nk[1] == 0:  # too few counts: a plain discount of 0.5
                self.d[n] = [0.5, 0.5, 0.5]
                continue
            y = nk[0] / (nk[0] + 2 * nk[1])
            d = [1 - 2 * y * nk[1] / nk[0], 2 - 3 * y * nk[2] / nk[1],
                 3 - 4 * y * nk[3] / max(nk[2], 1)]  # fmt: skip
            self.d[n] = [min(max(v, 0.0), j) for j, v in zip((1, 2, 3), d)]

    def prob(self, n, context, word):
        if n == 0:
            return 1.0 / self.vocab
        lower = self.prob(n - 1, context[1:], word)
        total = self.total[n].get(context, 0)
        if total == 0:
            return lower
        k = self.c[n].get((*context, word), 0)
        d = self.d[n]
        discounted = max(k - (d[min(k, 3) - 1] if k else 0.0), 0.0)
        gamma = sum(di * ni for di, ni in zip(d, self.kinds[n][context]))
        return (discounted + gamma * lower) / total

    def log_probs(self, tokens):
        tokens = [int(t) for t in tokens]
        out = []
        for i, w in enumerate(tokens):
            context = tuple(tokens[max(0, i - self.order + 1) : i])
            out.append(math.log(self.prob(len(context) + 1, context, w)))
        return np.array(out)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_the_formulas_written_out(order, seed):
    vocab = 30
    train = markov_text(3000, vocab, seed)
    held_out = markov_text(400, vocab, seed + 10)  # contexts seen, unseen and partly seen
    got = KneserNey(train, vocab, order).log_probs(held_out)
    expected = DirectKneserNey(train, vocab, order).log_probs(held_out)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [2, 4])
def test_every_context_gives_a_distribution(order):
    vocab = 25
    train = markov_text(2000, vocab, 3)
    model = KneserNey(train, vocab, order)
    contexts = [
        list(train[100 : 100 + order - 1]),
        [24] * (order - 1),
        list(train[7:9])[: order - 1],
    ]
    for context in contexts:
        rows = np.array([[*context, w] for w in range(vocab)])
        probs = np.exp([model.log_probs(row)[-1] for row in rows])
        assert probs.min() > 0
        assert probs.sum() == pytest.approx(1.0, abs=1e-12)


def test_a_context_it_has_seen_predicts_what_followed():
    train = np.array([0, 1, 2, 3] * 50 + [4, 5])
    model = KneserNey(train, 6, 3)
    lp = model.log_probs(np.array([0, 1, 2, 3, 0, 1]))
    assert np.exp(lp[2:]).min() > 0.9  # after "0 1" comes 2, after "1 2" 3, ...
    assert model.log_probs(np.array([5, 4]))[-1] < math.log(0.2)  # "5 4" was never seen


@pytest.mark.parametrize(
    "tokens,vocab,order,message",
    [
        (np.array([0, 1, 7]), 5, 2, r"token ids must be in \[0, 5\), got \[0, 7\]"),
        (np.array([[0, 1], [1, 0]]), 5, 2, "tokens must be a 1-D stream of >= 2 ids"),
        (np.array([0, 1, 2]), 5, 0, "order must be an integer in 1..9, got 0"),
        (np.array([0, 1, 2]), 5, True, "order must be an integer in 1..9, got True"),
    ],
)
def test_bad_training_input_is_named(tokens, vocab, order, message):
    with pytest.raises(ValueError, match=message):
        KneserNey(tokens, vocab, order)


def test_bad_scored_input_is_named():
    model = KneserNey(np.array([0, 1, 2, 1, 0]), 3, 2)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 3\), got \[-1, 1\]"):
        model.log_probs(np.array([0, -1, 1]))
    with pytest.raises(ValueError, match=r"tokens must be 1-D \(L,\)"):
        model.log_probs(np.zeros((2, 2), dtype=np.int64))


def test_mixture_ends_and_nan():
    a = torch.tensor([-1.0, -2.0, float("nan")], dtype=torch.float64)
    b = torch.tensor([-3.0, -0.5, -1.0], dtype=torch.float64)
    torch.testing.assert_close(mix_log_probs(a, b, 0.0), a, equal_nan=True, rtol=0, atol=0)
    assert torch.equal(mix_log_probs(a, b, 1.0), b)
    got = mix_log_probs(a, b, 0.25)
    assert got[0].item() == pytest.approx(math.log(0.75 * math.exp(-1) + 0.25 * math.exp(-3)))
    assert math.isnan(got[2].item())
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\], got 1.5"):
        mix_log_probs(a, b, 1.5)


def test_fit_weight_finds_the_best_mixture():
    gen = torch.Generator().manual_seed(0)
    a = -torch.rand(5000, generator=gen, dtype=torch.float64) * 6
    b = -torch.rand(5000, generator=gen, dtype=torch.float64) * 6
    w = fit_weight(a, b)
    grid = torch.linspace(0.001, 0.999, 999, dtype=torch.float64)
    best = max(grid.tolist(), key=lambda v: mix_log_probs(a, b, v).mean().item())
    assert w == pytest.approx(best, abs=2e-3)
    assert mix_log_probs(a, b, w).mean() >= mix_log_probs(a, b, best).mean() - 1e-12
    assert fit_weight(b.clone(), b) == pytest.approx(0.5)  # equal models: any weight; EM stays
    with pytest.raises(ValueError, match="not all finite"):
        fit_weight(torch.tensor([-1.0, -math.inf]), torch.tensor([-1.0, -1.0]))
    with pytest.raises(ValueError, match=r"got \(2,\) and \(3,\)"):
        fit_weight(torch.zeros(2), torch.zeros(3))


def make_task(tmp_path, **kw):
    cfg = LMConfig(data=write_corpus(tmp_path / "data", repeat=False), level="word", embed_size=16,
                   hidden_size=16, batch_size=4, bptt=8, eval_batch_size=3, ngram_order=3,
                   **kw)  # fmt: skip
    task = LanguageModelTask(cfg)
    torch.manual_seed(0)
    return task, task.build_model().double().eval()


def test_the_mixture_in_evaluation(tmp_path):
    task, model = make_task(tmp_path)
    plain = evaluate_task(task, model, "valid", torch.device("cpu"), DistributedContext())
    zero = task.evaluate_online(model, "valid", ngram_weight=0.0)
    assert zero["loss"] == pytest.approx(plain["loss"], rel=1e-12)
    assert zero["model_loss"] == pytest.approx(plain["loss"], rel=1e-12)
    # weight 1 is the n-gram alone, on exactly the tokens the model predicts
    tokens = task.corpus.split("valid")
    positions = batchify(torch.arange(len(tokens)), 3)[1:].flatten()
    ngram_loss = -task.ngram_log_probs("valid")[positions].mean().item()
    assert task.evaluate_online(model, "valid", ngram_weight=1.0)["loss"] == pytest.approx(
        ngram_loss, rel=1e-12
    )
    w = task.tune_ngram(model, "valid")
    mixed = task.evaluate_online(model, "valid", ngram_weight=w)
    assert 0 < w < 1 and mixed["loss"] < min(plain["loss"], ngram_loss)
    assert mixed["model_ppl"] == pytest.approx(plain["ppl"], rel=1e-12)
    expected = KneserNey(task.corpus.split("train").numpy(), len(task.vocab), 3)
    np.testing.assert_array_equal(
        task.ngram_log_probs("test").numpy(), expected.log_probs(task.corpus.split("test").numpy())
    )


def test_ngram_order_is_checked():
    for bad in (-1, 10, 2.5, True):
        with pytest.raises(ValueError, match="ngram_order must be 0 .no n-gram. or an integer"):
            LMConfig(level="word", ngram_order=bad)
