import json

import pytest
import torch

from rnnkit.data.text import (
    EOS,
    UNK,
    Vocab,
    build_char_vocab,
    build_word_vocab,
    tokenize,
)


def test_tokenize_char_is_characters():
    assert tokenize("ab\nc", "char") == ["a", "b", "\n", "c"]


def test_tokenize_word_ptb_style():
    text = "the cat  sat\n\na dog\n"
    assert tokenize(text, "word") == ["the", "cat", "sat", EOS, EOS, "a", "dog", EOS]
    # no final newline: the last line still ends with <eos>, like reading the file line by line
    assert tokenize("a b\nc", "word") == ["a", "b", EOS, "c", EOS]


def test_tokenize_rejects_unknown_level():
    with pytest.raises(ValueError, match="level"):
        tokenize("x", "byte")


def test_char_vocab_sorted_unique_and_roundtrip():
    text = "hello, world\n"
    vocab = build_char_vocab(text)
    assert vocab.tokens == sorted(set(text))
    assert len(vocab) == len(set(text))
    assert vocab.unk_index is None
    ids = vocab.encode(tokenize(text, "char"))
    assert ids == [vocab.tokens.index(c) for c in text]
    assert vocab.decode(ids) == text
    assert vocab.decode(torch.tensor(ids)) == text


def test_char_vocab_unknown_character_names_it_and_its_position():
    vocab = build_char_vocab("abc")
    with pytest.raises(ValueError, match=r"'z' at position 2"):
        vocab.encode(list("abzc"))


def test_word_vocab_specials_order_and_unk():
    tokens = tokenize("b a b\nc b a\nd\n", "word")
    vocab = build_word_vocab(tokens)
    # specials first, then by count (b:3, a:2), then alphabetically among equal counts (c, d: 1)
    assert vocab.tokens == [UNK, EOS, "b", "a", "c", "d"]
    assert vocab.unk_index == 0 and vocab.eos_index == 1
    assert vocab.encode(["a", "zebra", EOS]) == [3, 0, 1]


def test_word_vocab_min_count_and_max_size():
    tokens = ["x"] * 5 + ["y"] * 3 + ["z"] * 1 + ["w"] * 3
    assert build_word_vocab(tokens, min_count=3).tokens == [UNK, EOS, "x", "w", "y"]
    assert build_word_vocab(tokens, max_size=4).tokens == [UNK, EOS, "x", "w"]
    assert len(build_word_vocab(tokens, min_count=2, max_size=100)) == 5
    with pytest.raises(ValueError, match="max_size"):
        build_word_vocab(tokens, max_size=1)
    with pytest.raises(ValueError, match="min_count"):
        build_word_vocab(tokens, min_count=0)


def test_word_vocab_literal_unk_is_not_duplicated():
    vocab = build_word_vocab(["a", UNK, UNK, UNK, EOS])
    assert vocab.tokens == [UNK, EOS, "a"]


def test_word_decode_roundtrip_lines():
    text = "the cat sat\n\na dog\n"
    vocab = build_word_vocab(tokenize(text, "word"))
    assert vocab.decode(vocab.encode(tokenize(text, "word"))) == text
    # a trailing line without <eos> is kept without a newline; level can be forced
    ids = vocab.encode(["a", "dog"])
    assert vocab.decode(ids) == "a dog"
    assert vocab.decode(ids, level="char") == "adog"


def test_decode_rejects_out_of_range_ids():
    vocab = build_char_vocab("ab")
    with pytest.raises(ValueError, match="out of range"):
        vocab.decode([0, 2])


def test_vocab_dict_and_file_roundtrip(tmp_path):
    vocab = build_word_vocab(tokenize("héllo wörld\nhéllo\n", "word"))
    d = vocab.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert Vocab.from_dict(d) == vocab
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocab.load(path)
    assert loaded == vocab and loaded.level == "word"
    assert loaded.stoi == vocab.stoi


def test_vocab_validation_errors(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        Vocab(["a", "a"])
    with pytest.raises(ValueError, match="at least one"):
        Vocab([])
    with pytest.raises(ValueError, match="format"):
        Vocab.from_dict({"tokens": ["a"]})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json"):
        Vocab.load(bad)
    with pytest.raises(ValueError, match="empty"):
        build_char_vocab("")
