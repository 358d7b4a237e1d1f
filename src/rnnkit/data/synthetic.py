"""Sequences of numbers for the sorting task: a seeded generator, the character form, a file reader.

The sorting task (MXNet's ``example/bi-lstm-sort``) reads a sequence of integers and must output, at
each position, the element that belongs there in sorted order. Two encodings:

- tokens: each number is one token of a vocabulary ``0 .. vocab_size - 1``;
- characters (what MXNet's notebook trains): the numbers written in decimal, separated by single
  spaces, as one string over ``"0123456789 "``, optionally padded with spaces to a fixed length
  (MXNet pads to 19, five three-digit numbers); the target is the sorted numbers written the same
  way, so input and target strings have the same length.

User data is a text file with one sequence per line: integers separated by spaces, tabs or commas.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "CHAR_VOCAB",
    "decode_chars",
    "encode_chars",
    "numbers_to_text",
    "random_sequences",
    "read_number_lines",
    "text_to_numbers",
]

log = logging.getLogger(__name__)

CHAR_VOCAB = "0123456789 "
_CHAR_ID = {c: i for i, c in enumerate(CHAR_VOCAB)}
_SEPARATORS = re.compile(r"[\s,]+")


def random_sequences(
    n: int,
    low: int,
    high: int,
    min_len: int,
    max_len: int,
    seed: int | Sequence[int] = 0,
) -> list[np.ndarray]:
    """``n`` sequences of integers drawn uniformly from ``[low, high)`` (with repeats).

    Lengths are uniform in ``[min_len, max_len]``. Deterministic for ``seed`` (an int or a list of
    ints for ``numpy.random.default_rng``). Returns int64 arrays of shape ``(T_i,)``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0 <= low < high:
        raise ValueError(f"need 0 <= low < high, got low={low}, high={high}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len} and {max_len}")
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=n)
    values = rng.integers(low, high, size=int(lengths.sum()), dtype=np.int64)
    return np.split(values, np.cumsum(lengths)[:-1]) if n else []


def numbers_to_text(numbers: Sequence[int] | np.ndarray, pad_to: int = 0) -> str:
    """``[548, 30, 7]`` -> ``"548 30 7"``, right-padded with spaces to ``pad_to`` characters."""
    text = " ".join(str(int(x)) for x in numbers)
    return text.ljust(pad_to)


def text_to_numbers(text: str) -> list[int]:
    """The integers of a string such as ``"548 30  7 "`` (extra spaces allowed)."""
    return [int(x) for x in text.split()]


def encode_chars(text: str) -> np.ndarray:
    """Character ids over :data:`CHAR_VOCAB` (``(T,)`` int64); ValueError on other characters."""
    try:
        return np.fromiter((_CHAR_ID[c] for c in text), dtype=np.int64, count=len(text))
    except KeyError as e:
        raise ValueError(
            f"character {e.args[0]!r} in {text!r} is not in the vocabulary {CHAR_VOCAB!r}"
        ) from None


def decode_chars(ids: Sequence[int] | np.ndarray) -> str:
    """Inverse of :func:`encode_chars`."""
    return "".join(CHAR_VOCAB[int(i)] for i in ids)


def read_number_lines(
    path: str | Path, max_value: int | None = None, max_len: int | None = None
) -> list[np.ndarray]:
    """One int64 sequence per non-empty line of a text file.

    Numbers are separated by whitespace or commas. Empty lines are skipped (their count is logged).
    A ValueError names the file and line of the first token that is not a non-negative integer, of
    a number ``>= max_value``, or of a sequence longer than ``max_len``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file (expected one sequence of integers per line)"
        )
    seqs: list[np.ndarray] = []
    skipped = 0
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = [x for x in _SEPARATORS.split(line.strip()) if x]
            if not fields:
                skipped += 1
                continue
            values = []
            for x in fields:
                if not x.isdigit():
                    raise ValueError(
                        f"{path}:{lineno}: {x!r} is not a non-negative integer "
                        "(expected integers separated by spaces or commas)"
                    )
                values.append(int(x))
            if max_value is not None and max(values) >= max_value:
                raise ValueError(
                    f"{path}:{lineno}: number {max(values)} is out of range: the vocabulary holds "
                    f"0..{max_value - 1} (raise --vocab-size)"
                )
            if max_len is not None and len(values) > max_len:
                raise ValueError(
                    f"{path}:{lineno}: {len(values)} numbers, more than the maximum {max_len}"
                )
            seqs.append(np.asarray(values, dtype=np.int64))
    if skipped:
        log.info("%s: skipped %d empty lines", path, skipped)
    if not seqs:
        raise ValueError(f"{path}: no sequences found (expected one sequence of integers per line)")
    return seqs
