"""Text corpora for language models: reading, the train/valid/test split, and the default corpus.

The split rule (one rule, used by training and evaluation alike):

- A **directory** with ``train.txt``/``valid.txt``/``test.txt`` (or PTB's ``ptb.train.txt``/
  ``ptb.valid.txt``/``ptb.test.txt``) is used as given; ``test`` is optional and the fractions are
  ignored. A directory holding only ``input.txt`` (char-rnn's layout) is read as that single file.
- A **single file** is split by position, as nanoGPT's ``shakespeare_char``: with ``n`` characters,
  ``train = text[:int(n * (1 - valid_fraction - test_fraction))]``, then validation up to
  ``int(n * (1 - test_fraction))``, then test to the end. With the defaults (0.1, 0.0) the first
  ``int(n * 0.9)`` characters train and the rest validate, as in nanoGPT. At word level each cut is
  moved forward to just after the next newline, so no line is split between two parts.

Files are read as UTF-8 (a leading BOM is dropped) with newlines normalised to ``"\\n"`` (as
Python's text mode does). The character vocabulary comes from the whole text, so validation and test
have no unknown characters; the word vocabulary comes from the training part only, with ``<unk>``.
"""

from __future__ import annotations

import functools
import logging
import random
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from .text import Vocab, build_char_vocab, build_word_vocab, check_level, tokenize

__all__ = ["Corpus", "corpus_from_text", "default_corpus", "load_corpus", "read_text", "split_text"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
_LAYOUTS = (
    ("train.txt", "valid.txt", "test.txt"),
    ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"),
)
_MIN_TOKENS = 2  # a split needs at least one (input, target) pair


@dataclass
class Corpus:
    """A tokenised corpus.

    Attributes:
        vocab: the vocabulary the ids refer to.
        level: ``"char"`` or ``"word"``.
        train, valid: 1-D ``torch.long`` tensors of token ids, shape ``(L,)``.
        test: same, or ``None`` when the corpus has no test part.
        source: where the text came from (a path or a description), for logs and run metadata.
    """

    vocab: Vocab
    level: str
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor | None
    source: str

    def split(self, name: str) -> torch.Tensor:
        """The ids of split ``name`` (``"train"``, ``"valid"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        ids = getattr(self, name)
        if ids is None:
            raise ValueError(
                f"corpus {self.source} has no {name} split "
                "(give a test.txt in the directory or a test_fraction > 0)"
            )
        return ids

    def summary(self) -> str:
        """One line for logs: level, source, vocabulary and split sizes in tokens."""
        sizes = ", ".join(
            f"{s} {len(getattr(self, s))}" for s in SPLITS if getattr(self, s) is not None
        )
        return f"{self.level} corpus {self.source}: vocab {len(self.vocab)}, {sizes} tokens"


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file; newlines normalised to ``"\\n"``, a leading BOM dropped.

    Raises ``ValueError`` naming the file and the byte offset of undecodable input, and for empty
    files; ``FileNotFoundError`` when the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = raw[e.start : e.end]
        raise ValueError(
            f"{path}: not valid UTF-8 at byte offset {e.start} (bytes {bad!r}: {e.reason})"
        ) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text:
        raise ValueError(f"{path}: the file is empty")
    return text


def _check_fractions(valid_fraction: float, test_fraction: float) -> None:
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if valid_fraction + test_fraction >= 1.0:
        raise ValueError(
            "valid_fraction + test_fraction must leave some training text, got "
            f"{valid_fraction} + {test_fraction}"
        )


def _snap_to_line(text: str, cut: int) -> int:
    """Move ``cut`` forward to the start of the next line (no move if already at one)."""
    if cut <= 0 or cut >= len(text) or text[cut - 1] == "\n":
        return cut
    j = text.find("\n", cut)
    return len(text) if j < 0 else j + 1


def split_text(
    text: str, level: str = "char", valid_fraction: float = 0.1, test_fraction: float = 0.0
) -> tuple[str, str, str | None]:
    """Split one text into ``(train, valid, test)`` by position (the module's rule).

    ``test`` is ``None`` when ``test_fraction == 0``. Cut points are
    ``int(n * (1 - valid_fraction - test_fraction))`` and ``int(n * (1 - test_fraction))`` for
    ``n = len(text)`` characters, snapped forward to the next line start at word level.
    """
    check_level(level)
    _check_fractions(valid_fraction, test_fraction)
    n = len(text)
    cut1 = int(n * (1.0 - valid_fraction - test_fraction))
    cut2 = int(n * (1.0 - test_fraction)) if test_fraction > 0 else n
    if level == "word":
        cut1, cut2 = _snap_to_line(text, cut1), _snap_to_line(text, cut2)
    test = text[cut2:] if test_fraction > 0 else None
    return text[:cut1], text[cut1:cut2], test


def _encode(vocab: Vocab, text: str, level: str, where: str, offset: int) -> torch.Tensor:
    """Encode one part; ``offset`` is the part's character offset, for error messages."""
    try:
        ids = vocab.encode(tokenize(text, level))
    except ValueError as e:
        if level == "char":  # name the first unknown character by its offset in the text
            i, ch = next((i, ch) for i, ch in enumerate(text) if ch not in vocab.stoi)
            raise ValueError(
                f"{where}: character {ch!r} at character offset {offset + i} is not in the "
                f"vocabulary given ({len(vocab)} characters, no <unk>)"
            ) from None
        raise ValueError(f"{where}: {e}; the vocabulary given does not cover this text") from None
    return torch.tensor(ids, dtype=torch.long)


def corpus_from_text(
    parts: str | tuple[str, str, str | None],
    level: str = "char",
    valid_fraction: float = 0.1,
    test_fraction: float = 0.0,
    min_count: int = 1,
    max_size: int | None = None,
    vocab: Vocab | None = None,
    source: str = "<text>",
) -> Corpus:
    """Build a :class:`Corpus` from one text (split by :func:`split_text`) or from given parts.

    ``parts`` is either the whole text or a ``(train, valid, test-or-None)`` triple. A ``vocab``
    passed in (from a saved run) is reused: an unknown token maps to ``<unk>`` if it has one, else
    a ``ValueError`` names it and its position (for characters, the offset in the whole text).
    Otherwise the vocabulary is built: characters from all parts, words from ``train`` only
    (``min_count``, ``max_size`` as in :func:`~rnnkit.data.text.build_word_vocab`). Each part
    needs at least 2 tokens.
    """
    check_level(level)
    single = isinstance(parts, str)
    if single:
        train, valid, test = split_text(parts, level, valid_fraction, test_fraction)
    else:
        train, valid, test = parts
    texts = {"train": train, "valid": valid, "test": test}
    if vocab is None:
        if level == "char":
            vocab = build_char_vocab("".join(t for t in texts.values() if t))
        else:
            vocab = build_word_vocab(tokenize(train, "word"), min_count, max_size)
    elif vocab.level != level:
        raise ValueError(f"the vocabulary given is {vocab.level}-level, but level={level!r}")
    ids: dict[str, torch.Tensor | None] = {}
    offset = 0  # character offset of the part in the whole text (each file starts at 0)
    for name, part in texts.items():
        if part is None:
            ids[name] = None
            continue
        ids[name] = _encode(vocab, part, level, f"{source} ({name} part)", offset)
        offset += len(part) if single else 0
        if len(ids[name]) < _MIN_TOKENS:
            raise ValueError(
                f"{source}: the {name} part has {len(ids[name])} {level} tokens, needs at least "
                f"{_MIN_TOKENS}; the text ({sum(len(t) for t in texts.values() if t)} chars) is "
                f"too short for valid_fraction={valid_fraction}, test_fraction={test_fraction}"
            )
    corpus = Corpus(vocab, level, ids["train"], ids["valid"], ids["test"], source)
    logger.info("%s", corpus.summary())
    return corpus


def _find_layout(directory: Path) -> tuple[Path, Path, Path | None] | Path:
    for train, valid, test in _LAYOUTS:
        if (directory / train).is_file() and (directory / valid).is_file():
            t = directory / test
            return directory / train, directory / valid, t if t.is_file() else None
    if (directory / "input.txt").is_file():
        return directory / "input.txt"
    names = " or ".join("/".join(layout) for layout in _LAYOUTS)
    raise FileNotFoundError(f"{directory}: expected {names} (test optional), or input.txt")


def load_corpus(
    path: str | Path | None,
    level: str = "char",
    valid_fraction: float = 0.1,
    test_fraction: float = 0.0,
    min_count: int = 1,
    max_size: int | None = None,
    vocab: Vocab | None = None,
) -> Corpus:
    """Load a corpus from a directory or a single file (see the module docstring for the rule).

    ``path=None`` loads the embedded default corpus, :func:`default_corpus` with its defaults.
    The fractions apply only to single files; a directory's files are used as they are.
    """
    check_level(level)
    if path is None:
        text = default_corpus()
        return corpus_from_text(
            text, level, valid_fraction, test_fraction, min_count, max_size, vocab,
            source=_default_source(len(text)),
        )  # fmt: skip
    path = Path(path)
    if path.is_dir():
        found = _find_layout(path)
        if isinstance(found, tuple):
            parts = tuple(read_text(p) if p is not None else None for p in found)
            return corpus_from_text(
                parts, level, min_count=min_count, max_size=max_size, vocab=vocab, source=str(path)
            )
        path = found
    text = read_text(path)
    return corpus_from_text(
        text, level, valid_fraction, test_fraction, min_count, max_size, vocab, source=str(path)
    )


def _default_source(n_chars: int) -> str:
    return f"<python {sys.version.split()[0]} stdlib sources, {n_chars} chars>"


_EXCLUDED_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def _stdlib_sources(root: Path) -> list[Path]:
    files = []
    for p in root.rglob("*.py"):
        rel = p.relative_to(root)
        if _EXCLUDED_DIRS.intersection(rel.parts[:-1]) or rel.name.startswith("test_"):
            continue
        files.append(rel)
    return sorted(files, key=lambda r: r.as_posix())


def default_corpus(max_chars: int = 1_000_000, seed: int = 0) -> str:
    """The embedded default corpus: Python standard-library source code (no download).

    Rule: list the ``.py`` files under ``sysconfig.get_paths()["stdlib"]``, leaving out test
    directories (``test``, ``tests``, ``idle_test``), ``test_*.py`` files, ``site-packages``
    and ``__pycache__``; sort them by relative path; shuffle that list with
    ``random.Random(seed)``; then take whole files in that order, skipping any that would take the
    total past ``max_chars`` and any that are empty or not valid UTF-8, and concatenate them
    (newlines normalised, each file ending with ``"\\n"``). The result is deterministic for a given
    Python installation, at most ``max_chars`` characters, and about 1 MB by default.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    return _default_corpus(max_chars, seed)


@functools.lru_cache(maxsize=2)
def _default_corpus(max_chars: int, seed: int) -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = _stdlib_sources(root)
    if not files:
        raise FileNotFoundError(f"no Python source files found under {root}")
    random.Random(seed).shuffle(files)
    chunks: list[str] = []
    total = 0
    for rel in files:
        if max_chars - total < 1:
            break
        p = root / rel
        try:
            size = p.stat().st_size  # bytes; a UTF-8 text has between size/4 and size chars
            if size == 0 or size > 4 * (max_chars - total):
                continue
            text = p.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        if not text.endswith("\n"):
            text += "\n"
        if total + len(text) > max_chars:
            continue
        chunks.append(text)
        total += len(text)
    if not chunks:
        raise ValueError(f"max_chars={max_chars} is smaller than every source file under {root}")
    logger.info("default corpus: %d files, %d chars from %s", len(chunks), total, root)
    return "".join(chunks)
