"""Corpus BLEU (sacrebleu) against a direct implementation of Papineni et al.'s formula."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from rnnkit.tasks.text_metrics import bleu, exact_match


def ngrams(tokens, n):
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def direct_bleu(hyps, refs, n_max):
    """Corpus BLEU with clipped counts, closest reference length, orders without n-grams skipped."""
    correct, total = [0] * n_max, [0] * n_max
    hyp_len = ref_len = 0
    for h, rs in zip(hyps, refs):
        hyp_len += len(h)
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rs)[1]
        for n in range(1, n_max + 1):
            mx: Counter = Counter()
            for r in rs:
                mx |= ngrams(r, n)
            hc = ngrams(h, n)
            correct[n - 1] += sum(min(c, mx[g]) for g, c in hc.items())
            total[n - 1] += sum(hc.values())
    logs = [math.log(c / t) if c else -math.inf for c, t in zip(correct, total) if t]
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(sum(logs) / len(logs))


def test_hand_computed_precisions():
    out = bleu(["a b c d"], [["a b c e"]])
    assert out["bleu1"] == pytest.approx(3 / 4)
    assert out["bleu2"] == pytest.approx(math.sqrt(3 / 4 * 2 / 3))
    assert out["bleu3"] == pytest.approx((3 / 4 * 2 / 3 * 1 / 2) ** (1 / 3))
    assert out["bleu4"] == 0.0  # no 4-gram matches, no smoothing (COCO's convention)


def test_perfect_short_captions_score_one():
    """Two- and three-word captions have no 4-grams: they must not cap BLEU-4 (nltk's quirk)."""
    caps = [["seven", "three"], ["one", "two", "nine"], ["four", "four", "five", "zero"]]
    out = bleu(caps, [[c] for c in caps])
    assert out == {"bleu1": 1.0, "bleu2": 1.0, "bleu3": 1.0, "bleu4": 1.0}


def test_brevity_penalty_and_multiple_references():
    out = bleu([["a", "b"]], [[["a", "b", "c", "d"], ["x", "a", "b"]]], max_order=1)
    assert out["bleu1"] == pytest.approx(math.exp(1 - 3 / 2))  # closest reference: 3 words


@pytest.mark.parametrize("seed", range(5))
def test_random_corpora_match_the_direct_formula(seed):
    rng = random.Random(seed)
    words = "a b c d e".split()
    hyps, refs = [], []
    for _ in range(30):
        hyps.append([rng.choice(words) for _ in range(rng.randint(1, 8))])
        refs.append(
            [
                [rng.choice(words) for _ in range(rng.randint(1, 8))]
                for _ in range(rng.randint(1, 3))
            ]
        )
    out = bleu(hyps, refs)
    for n in range(1, 5):
        assert out[f"bleu{n}"] == pytest.approx(direct_bleu(hyps, refs, n), rel=1e-9, abs=1e-12)


def test_strings_and_token_lists_agree_and_exact_match():
    assert bleu(["a  b c"], [["a b c"]]) == bleu([["a", "b", "c"]], [[["a", "b", "c"]]])
    assert exact_match(["a b", "c"], [["x", "a b"], ["d"]]) == 0.5


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="one list of references per hypothesis"):
        bleu(["a"], [["a"], ["b"]])
    with pytest.raises(ValueError, match="non-empty list of references"):
        bleu(["a"], ["a"])
    with pytest.raises(ValueError, match="max_order"):
        bleu(["a"], [["a"]], max_order=0)
