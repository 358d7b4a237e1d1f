"""Number sequences for the sorting task: generator, character form, text-lines reader."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rnnkit.data.synthetic import (
    CHAR_VOCAB,
    decode_chars,
    encode_chars,
    numbers_to_text,
    random_sequences,
    read_number_lines,
    text_to_numbers,
)


def test_random_sequences_respect_ranges_and_seed():
    seqs = random_sequences(500, 3, 17, 2, 6, seed=[4, 1])
    assert len(seqs) == 500
    lengths = [len(s) for s in seqs]
    assert min(lengths) == 2 and max(lengths) == 6  # both ends drawn in 500 tries
    values = np.concatenate(seqs)
    assert values.min() == 3 and values.max() == 16 and values.dtype == np.int64
    again = random_sequences(500, 3, 17, 2, 6, seed=[4, 1])
    assert all(np.array_equal(a, b) for a, b in zip(seqs, again))
    other = random_sequences(500, 3, 17, 2, 6, seed=[4, 2])
    assert not all(len(a) == len(b) and np.array_equal(a, b) for a, b in zip(seqs, other))
    assert random_sequences(0, 0, 5, 1, 1) == []


@pytest.mark.parametrize(
    "args,match",
    [
        ((5, 3, 3, 1, 2), "low < high"),
        ((5, 0, 3, 3, 2), "min_len <= max_len"),
        ((-1, 0, 3, 1, 2), "n"),
    ],
)
def test_random_sequences_reject_bad_ranges(args, match):
    with pytest.raises(ValueError, match=match):
        random_sequences(*args)


def test_character_form_round_trips_and_pads():
    text = numbers_to_text([548, 30, 7], pad_to=12)
    assert text == "548 30 7    "
    assert text_to_numbers(text) == [548, 30, 7]
    ids = encode_chars(text)
    assert ids.tolist()[:3] == [5, 4, 8] and ids[3] == CHAR_VOCAB.index(" ")
    assert decode_chars(ids) == text
    assert numbers_to_text([1, 2], pad_to=1) == "1 2"  # never truncated
    with pytest.raises(ValueError, match="'x' in '1x' is not in the vocabulary"):
        encode_chars("1x")


def test_read_number_lines(tmp_path, caplog):
    path = tmp_path / "seqs.txt"
    path.write_text("3 1 2\n\n5,4\t9\n   \n7\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="rnnkit.data.synthetic"):
        seqs = read_number_lines(path)
    assert [s.tolist() for s in seqs] == [[3, 1, 2], [5, 4, 9], [7]]
    assert "skipped 2 empty lines" in caplog.text


@pytest.mark.parametrize(
    "text,kwargs,match",
    [
        ("1 2\n3 x 4\n", {}, r"seqs.txt:2: 'x' is not a non-negative integer"),
        ("1 -2\n", {}, r"seqs.txt:1: '-2'"),
        ("1 2\n1 200\n", {"max_value": 100}, r"seqs.txt:2: number 200 is out of range.*0..99"),
        ("1 2 3 4\n", {"max_len": 3}, r"seqs.txt:1: 4 numbers, more than the maximum 3"),
        ("\n\n", {}, r"seqs.txt: no sequences found"),
    ],
)
def test_read_number_lines_errors_name_file_and_line(tmp_path, text, kwargs, match):
    path = tmp_path / "seqs.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        read_number_lines(path, **kwargs)


def test_read_number_lines_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt: no such file"):
        read_number_lines(tmp_path / "nope.txt")
