"""Source/target string pairs for sequence-to-sequence models: dates, digit reversal, TSV files.

- :func:`date_pairs`: a human-written date (``"Tuesday, May 3rd, 1998"``, ``"03.05.98"``,
  ``"5/3/1998"``...) and its ISO form ``"1998-05-03"`` -- the date-normalisation exercise of the
  attention tutorials (Keras/Coursera's neural machine translation of dates). Every format is
  unambiguous: ``/`` with the year last is month/day/year (US), ``.`` is day.month.year, ``-`` and
  ``/`` with the year first are year-month-day, two-digit years ``69``-``99`` are 19xx and
  ``00``-``68`` 20xx (POSIX's and ``strptime``'s rule; dates are drawn from 1969-2068), weekdays
  are the true ones. Built with the
  standard library only (``datetime``; English month names spelled out here, not taken from the
  locale).
- :func:`reversal_pairs`: a string of digits and its reverse (a quick test of a model).
- :func:`read_pairs`: a user file of ``source<TAB>target`` lines, with errors naming the line.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "DATE_FORMATS",
    "date_pairs",
    "format_date",
    "read_pairs",
    "reversal_pairs",
]

log = logging.getLogger(__name__)

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]  # fmt: skip
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FIRST, LAST = dt.date(1969, 1, 1), dt.date(2068, 12, 31)  # two-digit years: strptime's %y


def _ordinal(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th') }"


def _fields(d: dt.date) -> dict[str, str]:
    month, weekday = MONTHS[d.month - 1], WEEKDAYS[d.weekday()]
    return {
        "Y": f"{d.year:04d}", "y": f"{d.year % 100:02d}", "m": str(d.month), "mm": f"{d.month:02d}",
        "d": str(d.day), "dd": f"{d.day:02d}", "do": _ordinal(d.day), "B": month, "b": month[:3],
        "A": weekday, "a": weekday[:3],
    }  # fmt: skip


# Templates over the fields of _fields; the renderer also varies the letter case of names.
DATE_FORMATS = [
    "{d} {B} {Y}", "{dd} {B} {Y}", "{d} {b} {Y}", "{B} {d}, {Y}", "{b} {d}, {Y}", "{B} {dd} {Y}",
    "{A}, {B} {d}, {Y}", "{a} {d} {b} {Y}", "{A} {d} {B} {Y}", "{a}, {dd} {b} {Y}",
    "{do} of {B} {Y}", "{B} {do}, {Y}", "{A}, {do} {B} {Y}", "{d} {b} {y}", "{b} {d} {y}",
    "{mm}/{dd}/{Y}", "{m}/{d}/{Y}", "{m}/{d}/{y}", "{d}.{m}.{Y}", "{dd}.{mm}.{Y}", "{dd}.{mm}.{y}",
    "{Y}/{mm}/{dd}", "{Y}-{mm}-{dd}", "{Y}{mm}{dd}", "{d}-{b}-{Y}", "{dd}-{b}-{y}", "{B} {Y}, {d}",
]  # fmt: skip
_CASES: list[Callable[[str], str]] = [
    str,
    str,
    str.lower,
    str.upper,
]  # original case twice as often


def format_date(d: dt.date, template: str, case: Callable[[str], str] = str) -> str:
    """``d`` written with a :data:`DATE_FORMATS` template, month/weekday names in ``case``."""
    f = _fields(d)
    for key in ("A", "a", "B", "b", "do"):
        f[key] = case(f[key])
    return template.format(**f)


def date_pairs(
    n: int, seed: int | None = 0, exclude: Iterable[str] = (), formats: list[str] | None = None
) -> list[tuple[str, str]]:
    """``n`` distinct ``(human date, "YYYY-MM-DD")`` pairs, dates uniform in 1969-2068, formats and
    letter case uniform; sources in ``exclude`` are skipped (to keep test sources out of training).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    formats = formats or DATE_FORMATS
    seen, out = set(exclude), []
    span = (LAST - FIRST).days
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 20 * n + 1000:
            raise ValueError(f"could not draw {n} distinct dates (got {len(out)})")
        d = FIRST + dt.timedelta(days=rng.randint(0, span))
        src = format_date(d, rng.choice(formats), rng.choice(_CASES))
        if src not in seen:
            seen.add(src)
            out.append((src, d.isoformat()))
    return out


def reversal_pairs(
    n: int, min_len: int = 3, max_len: int = 12, seed: int | None = 0, exclude: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """``n`` distinct ``(digits, reversed digits)`` pairs, lengths uniform in ``[min_len,
    max_len]``; sources in ``exclude`` are skipped."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len} and {max_len}")
    if n > 10**max_len // 2:
        raise ValueError(f"{n} distinct digit strings of length <= {max_len} are too many to draw")
    rng = random.Random(seed)
    seen, out = set(exclude), []
    while len(out) < n:
        src = "".join(rng.choice("0123456789") for _ in range(rng.randint(min_len, max_len)))
        if src not in seen:
            seen.add(src)
            out.append((src, src[::-1]))
    return out


def read_pairs(
    path: str | Path,
    max_source_len: int | None = None,
    max_target_len: int | None = None,
    length: Callable[[str], int] = len,
) -> list[tuple[str, str]]:
    """Read ``source<TAB>target`` lines (UTF-8; blank lines are skipped and counted in the log).

    ``length`` measures a side (characters by default; ``lambda s: len(s.split())`` for words).
    A line without exactly one tab, with an empty side, or with a side longer than its maximum is
    a ``ValueError`` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs file {path} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from None
    pairs, blank = [], 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            blank += 1
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(
                f"{path}:{line_no}: expected 'source<TAB>target', got {len(parts) - 1} tabs"
            )
        src, tgt = parts[0].strip(), parts[1].strip()
        if not src or not tgt:
            raise ValueError(f"{path}:{line_no}: empty {'source' if not src else 'target'}")
        for name, side, most in (("source", src, max_source_len), ("target", tgt, max_target_len)):
            if most is not None and length(side) > most:
                raise ValueError(
                    f"{path}:{line_no}: {name} of length {length(side)} is longer than the "
                    f"maximum {most} ({name} {side[:40]!r})"
                )
        pairs.append((src, tgt))
    if blank:
        log.info("%s: %d blank lines skipped", path, blank)
    if not pairs:
        raise ValueError(f"{path}: no source<TAB>target pairs")
    return pairs
