"""rnnkit.data.dates: date normalisation pairs, digit reversal, tab-separated pair files."""

from __future__ import annotations

import calendar
import datetime as dt
import logging

import pytest

from rnnkit.data.dates import DATE_FORMATS, date_pairs, format_date, read_pairs, reversal_pairs

# strptime equivalents of some templates (C locale: English names, case-insensitive parsing)
STRPTIME = {
    "{dd} {B} {Y}": "%d %B %Y",
    "{B} {d}, {Y}": "%B %d, %Y",
    "{a}, {dd} {b} {Y}": "%a, %d %b %Y",
    "{mm}/{dd}/{Y}": "%m/%d/%Y",
    "{dd}.{mm}.{y}": "%d.%m.%y",
    "{Y}{mm}{dd}": "%Y%m%d",
    "{dd}-{b}-{y}": "%d-%b-%y",
}


def test_sources_parse_back_to_the_target_with_strptime():
    for template, fmt in STRPTIME.items():
        for src, iso in date_pairs(200, seed=3, formats=[template]):
            assert dt.datetime.strptime(src, fmt).date().isoformat() == iso, (template, src)


def test_weekdays_ordinals_and_cases_are_right():
    d = dt.date(1998, 5, 3)  # a Sunday
    assert format_date(d, "{A}, {do} of {B} {Y}") == "Sunday, 3rd of May 1998"
    assert format_date(d, "{a} {d} {b} {y}", str.upper) == "SUN 3 MAY 98"
    assert format_date(dt.date(2011, 11, 11), "{do}") == "11th"
    assert format_date(dt.date(2021, 3, 22), "{do}") == "22nd"
    for src, iso in date_pairs(300, seed=5, formats=["{A} {d} {B} {Y}"]):
        day = dt.date.fromisoformat(iso)
        assert src.split()[0].lower() == calendar.day_name[day.weekday()].lower()


def test_date_pairs_are_distinct_deterministic_and_in_range():
    a, b = date_pairs(2000, seed=1), date_pairs(2000, seed=1)
    assert a == b and len({s for s, _ in a}) == 2000
    years = {int(t[:4]) for _, t in a}
    assert min(years) >= 1969 and max(years) <= 2068 and len(years) > 90
    two_digit = [(s, t) for s, t in date_pairs(500, seed=2, formats=["{m}/{d}/{y}"])]
    for s, t in two_digit:
        yy = int(s.split("/")[-1])
        assert int(t[:4]) == (1900 + yy if yy >= 69 else 2000 + yy)
    other = date_pairs(2000, seed=2, exclude=[s for s, _ in a])
    assert not {s for s, _ in a} & {s for s, _ in other}
    used = {f for f in DATE_FORMATS if any(format_date(dt.date.fromisoformat(t), f) == s
                                           for s, t in a[:400])}  # fmt: skip
    assert len(used) > len(DATE_FORMATS) // 2


def test_reversal_pairs():
    pairs = reversal_pairs(300, 2, 6, seed=0)
    assert all(t == s[::-1] and 2 <= len(s) <= 6 and s.isdigit() for s, t in pairs)
    assert len({s for s, _ in pairs}) == 300
    with pytest.raises(ValueError, match="min_len"):
        reversal_pairs(1, 5, 2)


def test_read_pairs(tmp_path, caplog):
    path = tmp_path / "p.tsv"
    path.write_text("a b\tx\n\nc\ty z\n", encoding="utf-8")
    with caplog.at_level(logging.INFO):
        assert read_pairs(path) == [("a b", "x"), ("c", "y z")]
    assert "1 blank lines skipped" in caplog.text
    words = read_pairs(path, max_target_len=2, length=lambda s: len(s.split()))
    assert len(words) == 2


@pytest.mark.parametrize(
    "text,message",
    [
        ("a\tb\nno tab here\n", r"p\.tsv:2: expected 'source<TAB>target', got 0 tabs"),
        ("a\tb\tc\n", r"p\.tsv:1: expected 'source<TAB>target', got 2 tabs"),
        ("a\tb\nc\t \n", r"p\.tsv:2: empty target"),
        (
            "a\tb\nc\tlonger than four\n",
            r"p\.tsv:2: target of length 16 is longer than the maximum 4",
        ),
        ("\n\n", r"p\.tsv: no source<TAB>target pairs"),
    ],
)
def test_read_pairs_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "p.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_pairs(path, max_target_len=4)


def test_read_pairs_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        read_pairs(tmp_path / "nope.tsv")
