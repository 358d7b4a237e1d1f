"""Metrics for generated token sequences: corpus BLEU-1..4 (sacrebleu) and exact match.

BLEU (Papineni et al. 2002) is computed by sacrebleu over the whole corpus: clipped n-gram counts
and lengths are summed over all sentences, then ``BLEU-n = BP * exp(mean_{k<=n} log p_k)``, the
cumulative figure that COCO's caption evaluation reports as ``Bleu_1..Bleu_4``. Like COCO's
scorer, no smoothing is applied and sentences shorter than ``n`` add nothing to the ``n``-gram
counts (nltk's ``corpus_bleu`` counts one unmatched n-gram for each of them instead, which caps
BLEU-4 below 1 for a perfect output on a corpus of short captions; hence sacrebleu). Inputs are
already tokenised: tokens are joined with spaces and sacrebleu's tokenizer is off
(``tokenize="none"``).

CIDEr (Vedantam et al. 2015) is not computed: the only package giving it (pycocoevalcap) has not
been released since 2020.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["bleu", "exact_match"]

Tokens = str | Sequence[str]


def _text(tokens: Tokens) -> str:
    if isinstance(tokens, str):
        return " ".join(tokens.split())
    return " ".join(tokens)


def _check_lengths(hypotheses: Sequence, references: Sequence) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(
            f"need one list of references per hypothesis: got {len(hypotheses)} hypotheses and "
            f"{len(references)} reference lists"
        )
    if len(hypotheses) == 0:
        raise ValueError("need at least one hypothesis, got none")
    for i, refs in enumerate(references):
        if isinstance(refs, str) or len(refs) == 0:
            raise ValueError(
                f"references[{i}] must be a non-empty list of references (token lists or strings), "
                f"got {refs!r}"
            )


def bleu(
    hypotheses: Sequence[Tokens],
    references: Sequence[Sequence[Tokens]],
    max_order: int = 4,
    lowercase: bool = False,
) -> dict[str, float]:
    """Corpus BLEU-1..``max_order`` in ``[0, 1]``.

    Args:
        hypotheses: one token list (or space-separated string) per example.
        references: for each example, one or more reference token lists (or strings).
        max_order: highest n-gram order reported.
        lowercase: compare case-insensitively.

    Returns:
        ``{"bleu1": ..., ..., f"bleu{max_order}": ...}``.

    Example::

        >>> bleu([["seven", "three"]], [[["seven", "three"]]], max_order=2)
        {'bleu1': 1.0, 'bleu2': 1.0}
    """
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        raise ImportError("BLEU is computed by sacrebleu: pip install sacrebleu") from None
    if max_order < 1:
        raise ValueError(f"max_order must be >= 1, got {max_order}")
    _check_lengths(hypotheses, references)
    hyps = [_text(h) for h in hypotheses]
    most = max(len(r) for r in references)
    # sacrebleu wants reference *streams*: stream j holds every example's j-th reference (or None)
    streams = [[_text(r[j]) if j < len(r) else None for r in references] for j in range(most)]
    out = {}
    for n in range(1, max_order + 1):
        metric = BLEU(
            lowercase=lowercase,
            tokenize="none",
            smooth_method="none",
            max_ngram_order=n,
            effective_order=True,  # orders no sentence is long enough for are left out
        )
        out[f"bleu{n}"] = round(metric.corpus_score(hyps, streams).score / 100.0, 12)
    return out


def exact_match(hypotheses: Sequence[Tokens], references: Sequence[Sequence[Tokens]]) -> float:
    """Fraction of hypotheses equal (token for token) to one of their references."""
    _check_lengths(hypotheses, references)
    hits = sum(_text(h) in {_text(r) for r in refs} for h, refs in zip(hypotheses, references))
    return hits / len(hypotheses)
