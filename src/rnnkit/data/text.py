"""Tokenisation and vocabularies for character- and word-level language models.

Two levels are supported:

- ``"char"``: every Unicode character is a token (Karpathy's char-rnn, nanoGPT's shakespeare_char).
- ``"word"``: whitespace-separated tokens of each line followed by ``<eos>``, as in Mikolov's PTB
  files and PyTorch's ``word_language_model`` example; rare words map to ``<unk>``.

A :class:`Vocab` is a list of tokens; a token's id is its position in that list. It is saved with a
run as plain JSON (:meth:`Vocab.save`) so a trained model can encode and decode text later.

Example::

    >>> vocab = build_char_vocab("hello")
    >>> vocab.tokens
    ['e', 'h', 'l', 'o']
    >>> vocab.decode(vocab.encode(tokenize("hole", "char")))
    'hole'
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "EOS",
    "LEVELS",
    "UNK",
    "Vocab",
    "build_char_vocab",
    "build_word_vocab",
    "check_level",
    "tokenize",
]

UNK = "<unk>"
EOS = "<eos>"
LEVELS = ("char", "word")
_FORMAT = "rnnkit.vocab"
_VERSION = 1


def check_level(level: str) -> str:
    """Return ``level`` if it is ``"char"`` or ``"word"``, else raise ``ValueError``."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return level


def tokenize(text: str, level: str) -> list[str]:
    """Split ``text`` into tokens.

    ``"char"``: the list of its characters. ``"word"``: for each line (split on ``"\\n"``; a final
    newline does not start an extra line), its whitespace-separated words followed by ``<eos>``,
    exactly as PyTorch's ``word_language_model`` reads Mikolov's PTB files
    (``line.split() + ['<eos>']`` for each line of the file). An empty line yields ``[<eos>]``.
    """
    check_level(level)
    if level == "char":
        return list(text)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # text ends with a newline: no extra empty line
    tokens: list[str] = []
    for line in lines:
        tokens.extend(line.split())
        tokens.append(EOS)
    return tokens


@dataclass
class Vocab:
    """An ordered list of tokens; the id of a token is its index.

    Attributes:
        tokens: the tokens, unique, in id order.
        level: ``"char"`` or ``"word"``; sets how :meth:`decode` joins tokens.
        stoi: token -> id (derived from ``tokens``).
        unk_index: id of ``<unk>`` if the vocabulary has it, else ``None``; unknown tokens are then
            an error in :meth:`encode`.
    """

    tokens: list[str]
    level: str = "char"
    stoi: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_level(self.level)
        self.tokens = list(self.tokens)
        if not self.tokens:
            raise ValueError("a Vocab needs at least one token, got an empty list")
        for i, tok in enumerate(self.tokens):
            if not isinstance(tok, str) or tok == "":
                raise TypeError(f"vocab tokens must be non-empty str, got {tok!r} at index {i}")
        self.stoi = {tok: i for i, tok in enumerate(self.tokens)}
        if len(self.stoi) != len(self.tokens):
            dup = [t for t, c in Counter(self.tokens).items() if c > 1]
            raise ValueError(f"vocab tokens must be unique, got duplicates {dup[:5]!r}")

    @property
    def unk_index(self) -> int | None:
        """Id of ``<unk>``, or ``None`` when the vocabulary has no ``<unk>``."""
        return self.stoi.get(UNK)

    @property
    def eos_index(self) -> int | None:
        """Id of ``<eos>``, or ``None`` when the vocabulary has no ``<eos>``."""
        return self.stoi.get(EOS)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Map tokens to ids (a list of ``len(tokens)`` ints).

        Unknown tokens map to ``<unk>`` when the vocabulary has it; otherwise a ``ValueError``
        names the first unknown token and its position (for character tokens of a text, the
        position is the character offset).
        """
        tokens = tokens if isinstance(tokens, (list, tuple, str)) else list(tokens)
        stoi = self.stoi
        try:
            return [stoi[t] for t in tokens]
        except KeyError:
            pass
        unk = self.unk_index
        ids: list[int] = []
        for pos, tok in enumerate(tokens):
            i = stoi.get(tok, unk)
            if i is None:
                raise ValueError(
                    f"token {tok!r} at position {pos} is not in the {self.level} vocabulary "
                    f"({len(self)} tokens, no {UNK})"
                ) from None
            ids.append(i)
        return ids

    def decode(self, ids: Iterable[int] | torch.Tensor, level: str | None = None) -> str:
        """Map ids back to text.

        ``"char"``: tokens joined with ``""``. ``"word"``: words of a line joined with ``" "``,
        ``<eos>`` ends the line with ``"\\n"`` (so ``decode(encode(tokenize(t, "word")))`` gives
        back ``t`` up to whitespace). ``level`` defaults to the vocabulary's own.
        """
        level = check_level(self.level if level is None else level)
        if isinstance(ids, torch.Tensor):
            if ids.dim() > 1:
                raise ValueError(f"decode expects a 1-D sequence of ids, got shape {ids.shape}")
            ids = ids.tolist()
        n = len(self.tokens)
        words: list[str] = []
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise ValueError(f"id {i} is out of range for a vocabulary of {n} tokens")
            words.append(self.tokens[i])
        if level == "char":
            return "".join(words)
        out: list[str] = []
        line: list[str] = []
        for w in words:
            if w == EOS:
                out.append(" ".join(line) + "\n")
                line = []
            else:
                line.append(w)
        if line:
            out.append(" ".join(line))
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description: ``{"format", "version", "level", "tokens"}``."""
        return {"format": _FORMAT, "version": _VERSION, "level": self.level, "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocab:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on anything else."""
        if not isinstance(d, dict):
            raise TypeError(f"expected a dict from Vocab.to_dict(), got {type(d).__name__}")
        if d.get("format") != _FORMAT:
            raise ValueError(f"expected format {_FORMAT!r}, got {d.get('format')!r}")
        if d.get("version") != _VERSION:
            raise ValueError(f"unsupported vocab version {d.get('version')!r}, expected {_VERSION}")
        tokens = d.get("tokens")
        if not isinstance(tokens, list):
            raise ValueError(f"expected 'tokens' to be a list, got {type(tokens).__name__}")
        return cls(tokens=tokens, level=d.get("level", "char"))

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as UTF-8 JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        """Read a vocabulary written by :meth:`save`."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a vocabulary JSON file ({e})") from None
        try:
            return cls.from_dict(d)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {e}") from None


def build_char_vocab(text: str) -> Vocab:
    """Character vocabulary: the sorted unique characters of ``text`` (nanoGPT's rule)."""
    if not text:
        raise ValueError("cannot build a character vocabulary from empty text")
    return Vocab(sorted(set(text)), level="char")


def build_word_vocab(
    tokens: Sequence[str] | Iterable[str], min_count: int = 1, max_size: int | None = None
) -> Vocab:
    """Word vocabulary with ``<unk>`` (id 0) and ``<eos>`` (id 1) first.

    Other words follow by decreasing count, ties alphabetically (deterministic). Words seen fewer
    than ``min_count`` times are left out (they encode to ``<unk>``). ``max_size`` caps the total
    size, specials included (PTB's 10000-word vocabulary is ``max_size=10000``). A literal
    ``<unk>`` or ``<eos>`` in ``tokens`` is the special itself, not a second entry.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    specials = [UNK, EOS]
    if max_size is not None and max_size < len(specials):
        raise ValueError(f"max_size must be >= {len(specials)} (the specials), got {max_size}")
    counts = Counter(tokens)
    for s in specials:
        counts.pop(s, None)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[: max_size - len(specials)]
    return Vocab(specials + words, level="word")
