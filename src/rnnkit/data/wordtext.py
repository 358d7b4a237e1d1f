"""Tokenised word-level text (WikiText, PTB) to readable text, and a user's text to such tokens.

WikiText (Merity et al. 2016) separates punctuation by spaces and writes the separators inside
numbers and words as ``@-@``, ``@,@`` and ``@.@`` (``1 @,@ 000``, ``state @-@ of @-@ the @-@ art``);
PTB lower-cases and splits clitics (``do n't``, ``it 's``). :func:`detokenize` undoes the spacing
line by line; :func:`retokenize` splits a prompt the same way, so that ``"The film's director,"``
finds the corpus's ``The film 's director ,``.

Example::

    >>> detokenize(' = Valkyria = \\n The game @-@ play , " in 1 @,@ 000 years " ( it \\'s ) .\\n')
    '= Valkyria =\\nThe game-play, "in 1,000 years" (it\\'s).\\n'
    >>> " ".join(retokenize("The film's state-of-the-art score, (1,000 notes)."))
    "The film 's state @-@ of @-@ the @-@ art score , ( 1 @,@ 000 notes ) ."
"""

from __future__ import annotations

import re

__all__ = ["detokenize", "detokenize_line", "retokenize"]

_JOINERS = re.compile(r" @([-,.])@ ")
_NO_SPACE_BEFORE = re.compile(r" (?=[,.;:!?%)\]}]|'s\b|'re\b|'ve\b|'m\b|'ll\b|'d\b|n't\b|' )")
_NO_SPACE_AFTER = re.compile(r"(?<=[(\[{$]) ")
_HEADING = re.compile(r"^(=(?: =)*) (.*?) ((?:= )*=)$")
_CLITICS = ("n't", "'s", "'re", "'ve", "'m", "'ll", "'d")
_PUNCT = ',.;:!?()[]{}"%$'


def detokenize_line(line: str) -> str:
    """One line of tokens as readable text: no space before punctuation and clitics, none after
    opening brackets, ``@-@``-style joiners closed up, ``"`` quotes paired open/close in order,
    ``= = Heading = =`` as ``== Heading ==``; leading and trailing spaces removed."""
    line = " ".join(line.split())
    heading = _HEADING.match(line)
    if heading:
        marks = heading.group(1).replace(" ", "")
        return f"{marks} {detokenize_line(heading.group(2))} {marks}"
    line = _JOINERS.sub(r"\1", f" {line} ").strip()
    words, out, opened = line.split(" "), [], False
    for w in words:
        if w == '"':
            if opened and out:
                out[-1] += '"'
            else:
                out.append('"')
            opened = not opened
            continue
        if out and out[-1] == '"' and opened:
            out[-1] += w
        else:
            out.append(w)
    line = " ".join(out)
    line = _NO_SPACE_BEFORE.sub("", line)
    return _NO_SPACE_AFTER.sub("", line)


def detokenize(text: str) -> str:
    """:func:`detokenize_line` on every line of ``text``, newlines kept."""
    return "\n".join(detokenize_line(line) for line in text.split("\n"))


def retokenize(text: str) -> list[str]:
    """Split a user's text into WikiText-style tokens (no ``<eos>``): whitespace first, then
    punctuation and clitics off each word and ``-``, ``,`` and ``.`` inside it as ``@-@``, ``@,@``
    and ``@.@`` (``1,000`` -> ``1 @,@ 000``; ``U.S.`` and ``e.g.`` keep their dots)."""
    tokens: list[str] = []
    for word in text.split():
        tokens.extend(_split_word(word))
    return tokens


def _split_word(word: str) -> list[str]:
    head: list[str] = []
    tail: list[str] = []
    while word and word[0] in _PUNCT:
        head.append(word[0])
        word = word[1:]
    while word and word[-1] in _PUNCT and not _is_abbreviation(word):
        tail.insert(0, word[-1])
        word = word[:-1]
    for clitic in _CLITICS:
        if word.lower().endswith(clitic) and len(word) > len(clitic):
            tail.insert(0, word[-len(clitic) :])
            word = word[: -len(clitic)]
            break
    if not word or _is_abbreviation(word):
        return head + ([word] if word else []) + tail
    pieces = re.split(r"(?<=\w)([-,.])(?=\w)", word)  # word, separator, word, ...
    middle = [f"@{t}@" if i % 2 else t for i, t in enumerate(pieces)]
    return head + middle + tail


def _is_abbreviation(word: str) -> bool:
    """``U.S.``, ``e.g.``: letters with a dot after each."""
    return bool(re.fullmatch(r"(?:[A-Za-z]\.){2,}", word))
