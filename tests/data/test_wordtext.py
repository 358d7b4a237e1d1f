"""WikiText/PTB tokens to readable text and back."""

from __future__ import annotations

import pytest

from rnnkit.data import detokenize, retokenize


@pytest.mark.parametrize(
    "tokens,text",
    [
        (" The game @-@ play , in 1 @,@ 000 years .", "The game-play, in 1,000 years."),
        ("a 3 @.@ 5 m wall ; it 's ( mostly ) fine !", "a 3.5 m wall; it's (mostly) fine!"),
        ('he said " hello there " and left', 'he said "hello there" and left'),
        ('" one " and " two "', '"one" and "two"'),
        (" = = Career = = ", "== Career =="),
        (" = Robert <unk> = ", "= Robert <unk> ="),
        ("they do n't know the players ' names", "they don't know the players' names"),
        ("", ""),
    ],
)
def test_detokenize_lines(tokens, text):
    assert detokenize(tokens) == text


def test_detokenize_keeps_lines():
    assert detokenize(" a , b \n\n c .\n") == "a, b\n\nc.\n"


@pytest.mark.parametrize(
    "text,tokens",
    [
        ("The film's score,", ["The", "film", "'s", "score", ","]),
        ("state-of-the-art", ["state", "@-@", "of", "@-@", "the", "@-@", "art"]),
        ("1,000 and 3.5", ["1", "@,@", "000", "and", "3", "@.@", "5"]),
        ('("quoted")', ["(", '"', "quoted", '"', ")"]),
        ("the U.S. don't", ["the", "U.S.", "do", "n't"]),
        ("  ", []),
    ],
)
def test_retokenize(text, tokens):
    assert retokenize(text) == tokens


def test_round_trip_of_a_wikitext_line():
    line = 'In 2004 he landed a role as " Craig " in a two @-@ part episode , worth $ 1 @,@ 000 .'
    assert " ".join(retokenize(detokenize(line))) == line
