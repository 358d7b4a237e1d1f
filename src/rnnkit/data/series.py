"""Time series for forecasting: readers (CSV, NumPy), built-in series, transforms, scaling, windows.

A :class:`Series` is a ``(T, C)`` float64 array of ``C`` columns observed at ``T`` regular times,
with column names and optional date labels. Sources:

- CSV (:func:`read_csv_series`): a header row (optional when every column is numeric), an optional
  date column (``date``/``time``/``timestamp``/... or a first column of ISO dates), numeric columns.
  Empty cells and ``NA``/``NaN`` are forward-filled and counted in the log; anything else that is
  not a number is a ``ValueError`` naming the file, line and column.
- NumPy (:func:`read_numpy_series`): ``.npy`` holding ``(T,)`` or ``(T, C)``, or ``.npz`` holding
  ``values`` (or a single array) with optional ``columns`` and ``dates``.
- Built-ins (:data:`BUILTIN_SERIES`, no download): ``co2`` (statsmodels' Mauna Loa weekly CO2,
  monthly means, forward-filled: 526 months, 1958-03 to 2001-12), ``sunspots`` (statsmodels' yearly
  sunspot numbers 1700-2008) and ``sine`` (the noisy sine wave of Chainer's LSTM examples).

Models see ``scaler(transform(y))``: ``transform`` is ``none``, ``diff`` (``y_t - y_{t-1}``) or
``seasonal_diff`` (``y_t - y_{t-m}``, Box & Jenkins' seasonal differencing); the :class:`Scaler`
is fitted on the training part only. :func:`invert_transform` turns forecast differences back
into levels, :func:`sliding_windows` cuts ``(input, target)`` pairs.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BUILTIN_SERIES",
    "TRANSFORMS",
    "Scaler",
    "Series",
    "apply_transform",
    "builtin_series",
    "co2_monthly",
    "future_dates",
    "infer_period",
    "invert_transform",
    "load_series",
    "noisy_sine",
    "parse_date",
    "read_csv_series",
    "read_numpy_series",
    "sliding_windows",
    "sunspots_yearly",
    "transform_offset",
]

log = logging.getLogger(__name__)

TRANSFORMS = ("none", "diff", "seasonal_diff")
DATE_NAMES = {"date", "time", "datetime", "timestamp", "ds", "month", "year", "period"}
MISSING = {"", "na", "nan", "null", "none", "?"}


@dataclass
class Series:
    """``values (T, C)`` float64, ``columns`` (C names), ``dates`` (T labels or None), source."""

    values: np.ndarray
    columns: list[str]
    dates: list[str] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=np.float64)
        self.values = v[:, None] if v.ndim == 1 else v
        if self.values.ndim != 2:
            raise ValueError(f"{self.source}: series values must be (T,) or (T, C), got {v.shape}")
        if len(self.columns) != self.values.shape[1]:
            raise ValueError(
                f"{self.source}: {len(self.columns)} names for {self.values.shape[1]} columns"
            )
        if self.dates is not None and len(self.dates) != len(self.values):
            raise ValueError(f"{self.source}: {len(self.dates)} dates for {len(self.values)} rows")

    def __len__(self) -> int:
        return len(self.values)

    def select(self, columns: Sequence[str]) -> Series:
        """The series restricted to ``columns`` (in that order)."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise ValueError(f"{self.source}: no column {missing}; it has {self.columns}")
        idx = [self.columns.index(c) for c in columns]
        return Series(self.values[:, idx], list(columns), self.dates, self.source)


# ---------------------------------------------------------------- readers


def _number(text: str) -> float | None:
    """The float in ``text``, None for a missing value; ValueError for anything else."""
    s = text.strip()
    if s.lower() in MISSING:
        return None
    return float(s)


def _is_number(text: str) -> bool:
    try:
        _number(text)
        return True
    except ValueError:
        return False


def parse_date(text: str) -> dt.datetime | None:
    """An ISO-like date (``2001-12-01``, ``2001-12-01 10:00``, ``2001-12``, ``2001/12/01``,
    ``2001``), or None when ``text`` is none of these."""
    s = text.strip().replace("/", "-")
    try:
        return dt.datetime.fromisoformat(s)
    except ValueError:
        pass
    for fmt in ("%Y-%m", "%Y"):
        try:
            return dt.datetime.strptime(s, fmt)
        except ValueError:
            pass
    return None


def _date_column(header: list[str], first: list[str], date_column: str | None) -> int | None:
    if date_column is None or date_column.lower() == "none":
        return None
    if date_column != "auto":
        if date_column not in header:
            raise ValueError(f"no date column {date_column!r}; the header has {header}")
        return header.index(date_column)
    for i, name in enumerate(header):
        if name.strip().lower() in DATE_NAMES:
            return i
    if first and not _is_number(first[0]) and parse_date(first[0]) is not None:
        return 0
    return None


def read_csv_series(
    path: str | Path, columns: Sequence[str] | None = None, date_column: str | None = "auto"
) -> Series:
    """Read a CSV file of one row per time step (module docstring: the format).

    Args:
        path: the file.
        columns: numeric columns to keep, in order (default: all but the date column).
        date_column: ``"auto"`` (detect it), a column name, or None/``"none"`` for no dates.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            numbered = list(enumerate(csv.reader(f), start=1))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from None
    rows = [(i, r) for i, r in numbered if any(c.strip() for c in r)]
    if len(rows) < len(numbered):
        log.info("%s: %d blank lines skipped", path, len(numbered) - len(rows))
    if not rows:
        raise ValueError(f"{path}: empty CSV file")
    first = rows[0][1]
    date_idx = _date_column(first, [], date_column) if date_column not in (None, "auto") else None
    has_header = not all(_is_number(c) for j, c in enumerate(first) if j != date_idx)
    if has_header:
        header = [c.strip() for c in first]
        rows = rows[1:]
        if not rows:
            raise ValueError(f"{path}: a header row and no data")
    else:
        header = [f"x{j}" for j in range(len(first))]
    date_idx = _date_column(header, rows[0][1], date_column)
    names = [h for j, h in enumerate(header) if j != date_idx]
    wanted = list(columns) if columns else names
    for c in wanted:
        if c not in names:
            raise ValueError(f"{path}: no numeric column {c!r}; the columns are {names}")
    idx = [header.index(c) for c in wanted]
    values = np.empty((len(rows), len(idx)))
    dates: list[str] | None = [] if date_idx is not None else None
    filled = 0
    for r, (line, row) in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"{path}:{line}: {len(row)} fields, expected {len(header)} ({header})")
        if dates is not None:
            dates.append(row[date_idx].strip())
        for k, j in enumerate(idx):
            try:
                x = _number(row[j])
            except ValueError:
                raise ValueError(
                    f"{path}:{line}: column {header[j]!r}: {row[j]!r} is not a number"
                ) from None
            if x is None or not math.isfinite(x):
                if r == 0:
                    raise ValueError(
                        f"{path}:{line}: column {header[j]!r} starts with a missing value"
                    )
                x, filled = values[r - 1, k], filled + 1
            values[r, k] = x
    if filled:
        log.warning("%s: %d missing values forward-filled", path, filled)
    return Series(values, wanted, dates, str(path))


def read_numpy_series(path: str | Path, columns: Sequence[str] | None = None) -> Series:
    """Read ``.npy`` (``(T,)`` or ``(T, C)``) or ``.npz`` (``values`` or its only array, optional
    ``columns`` and ``dates``); non-finite values are a ValueError naming the row."""
    path = Path(path)
    dates = names = None
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                key = "values" if "values" in keys else (keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise ValueError(
                        f"{path}: expected an array 'values' or a single array, got {keys}"
                    )
                values = z[key]
                names = [str(c) for c in z["columns"]] if "columns" in keys else None
                dates = [str(d) for d in z["dates"]] if "dates" in keys else None
        else:
            values = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a readable NumPy file ({e})") from None
    if values.ndim not in (1, 2) or not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"{path}: expected a numeric (T,) or (T, C) array, got {values.dtype} "
                         f"{values.shape}")  # fmt: skip
    values = values.astype(np.float64).reshape(len(values), -1)
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        raise ValueError(f"{path}: non-finite value at row {bad[0][0]}, column {bad[0][1]}")
    names = names or [f"x{j}" for j in range(values.shape[1])]
    series = Series(values, names, dates, str(path))
    return series.select(columns) if columns else series


def load_series(
    path: str | Path, columns: Sequence[str] | None = None, date_column: str | None = "auto"
) -> Series:
    """A series from a ``.csv``/``.tsv``/``.txt``, ``.npy`` or ``.npz`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"series file {path} not found")
    if path.suffix in (".npy", ".npz"):
        return read_numpy_series(path, columns)
    return read_csv_series(path, columns, date_column)


# ---------------------------------------------------------------- built-in series


def _statsmodels_data(name: str) -> Any:
    try:
        from statsmodels import datasets
    except ImportError:
        raise ImportError(
            f"the built-in {name!r} series ships with statsmodels: pip install statsmodels"
        ) from None
    return getattr(datasets, name).load_pandas().data


def co2_monthly() -> Series:
    """Mauna Loa CO2 (ppm): monthly means of statsmodels' weekly data, gaps forward-filled
    (526 months, 1958-03 to 2001-12)."""
    weekly = _statsmodels_data("co2")["co2"]
    monthly = weekly.resample("MS").mean().ffill()
    dates = [d.strftime("%Y-%m-%d") for d in monthly.index]
    return Series(monthly.to_numpy(), ["co2"], dates, "statsmodels co2 (monthly)")


def sunspots_yearly() -> Series:
    """Wolf's yearly sunspot numbers, 1700-2008 (statsmodels ``sunspots``)."""
    data = _statsmodels_data("sunspots")
    dates = [str(int(y)) for y in data["YEAR"]]
    return Series(data["SUNACTIVITY"].to_numpy(), ["sunspots"], dates, "statsmodels sunspots")


def noisy_sine(
    length: int = 1000, period: float = 25.0, noise: float = 0.1, seed: int = 0
) -> Series:
    """``sin(2 pi t / period) + noise * N(0, 1)`` for ``t = 0 .. length - 1`` (Chainer's LSTM)."""
    if length < 2 or period <= 0 or noise < 0:
        raise ValueError(
            f"need length >= 2, period > 0, noise >= 0; got {length}, {period}, {noise}"
        )
    t = np.arange(length)
    rng = np.random.default_rng(seed)
    y = np.sin(2 * np.pi * t / period) + noise * rng.standard_normal(length)
    return Series(y, ["sine"], None, f"noisy sine (period {period:g}, noise {noise:g})")


# name -> (loader, seasonal period)
BUILTIN_SERIES = {
    "co2": (co2_monthly, 12),
    "sunspots": (sunspots_yearly, 11),
    "sine": (noisy_sine, None),
}


def builtin_series(name: str, **kwargs: Any) -> Series:
    """A built-in series by name (``co2``, ``sunspots``, ``sine``; kwargs go to the generator)."""
    if name not in BUILTIN_SERIES:
        raise ValueError(
            f"unknown built-in series {name!r}; expected one of {sorted(BUILTIN_SERIES)}"
        )
    return BUILTIN_SERIES[name][0](**kwargs)


def _format_like(d: dt.datetime, label: str) -> str:
    n = len(label.strip())
    if n == 4:
        return d.strftime("%Y")
    if n == 7:
        return d.strftime("%Y-%m")
    return d.date().isoformat() if d.time() == dt.time() else d.isoformat(" ")


def future_dates(dates: Sequence[str], n: int) -> list[str]:
    """Labels of the ``n`` steps after ``dates``: calendar months (or years) when the last two
    dates are whole months apart on the same day, else the last step repeated; ``+1``, ``+2``...
    when the dates do not parse."""
    parsed = [parse_date(d) for d in dates[-2:]]
    if len(parsed) < 2 or parsed[0] is None or parsed[1] is None:
        return [f"+{h}" for h in range(1, n + 1)]
    a, b = parsed
    months = (b.year - a.year) * 12 + b.month - a.month
    calendar = months > 0 and a.day == b.day <= 28 and a.time() == b.time()
    out = []
    for h in range(1, n + 1):
        if calendar:
            m = b.month - 1 + months * h
            d = b.replace(year=b.year + m // 12, month=m % 12 + 1)
        else:
            d = b + (b - a) * h
        out.append(_format_like(d, dates[-1]))
    return out


def infer_period(dates: Sequence[str] | None) -> int:
    """A seasonal period guessed from the date step: 12 for monthly, 4 for quarterly, 7 for daily,
    24 for hourly data; 1 (no seasonality) otherwise or without dates."""
    parsed = [parse_date(d) for d in (dates or [])[-2:]]
    if len(parsed) < 2 or parsed[0] is None or parsed[1] is None:
        return 1
    a, b = parsed
    months = (b.year - a.year) * 12 + b.month - a.month
    if a.day == b.day and months in (1, 3):
        return {1: 12, 3: 4}[months]
    return {dt.timedelta(days=1): 7, dt.timedelta(hours=1): 24}.get(b - a, 1)


# ---------------------------------------------------------------- transforms, scaling, windows


def transform_offset(kind: str, period: int) -> int:
    """Leading steps a transform consumes: 0, 1 (diff) or ``period`` (seasonal_diff)."""
    if kind not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {kind!r}")
    return {"none": 0, "diff": 1, "seasonal_diff": period}[kind]


def apply_transform(y: np.ndarray, kind: str, period: int = 1) -> np.ndarray:
    """``(T, C) -> (T - offset, C)``: ``y``, ``y_t - y_{t-1}`` or ``y_t - y_{t-period}``."""
    off = transform_offset(kind, period)
    if off == 0:
        return y.copy()
    return y[off:] - y[:-off]


def invert_transform(history: np.ndarray, z: np.ndarray, kind: str, period: int = 1) -> np.ndarray:
    """Levels ``(H, C)`` continuing ``history (T, C)`` from transformed forecasts ``z (H, C)``."""
    off = transform_offset(kind, period)
    if off == 0:
        return z.copy()
    if len(history) < off:
        raise ValueError(f"inverting {kind} needs at least {off} history steps, got {len(history)}")
    out = np.concatenate([history[-off:], np.zeros_like(z)])
    for h in range(len(z)):
        out[off + h] = out[h] + z[h]
    return out[off:]


@dataclass
class Scaler:
    """Per-column standardisation ``(x - mean) / std``, fitted on the training part only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Scaler:
        """Fit on ``x (T, C)``; constant columns get ``std = 1``."""
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > 1e-12, std, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def inverse(self, x: np.ndarray) -> np.ndarray:
        return x * self.std + self.mean

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))


def sliding_windows(x: np.ndarray, length: int, stride: int = 1) -> np.ndarray:
    """All windows ``(N, length, C)`` of ``x (T, C)``, starting every ``stride`` steps (a copy)."""
    if length < 1 or stride < 1:
        raise ValueError(f"need length >= 1 and stride >= 1, got {length} and {stride}")
    if len(x) < length:
        return np.empty((0, length, x.shape[1]), dtype=x.dtype)
    view = np.lib.stride_tricks.sliding_window_view(x, length, axis=0)  # (N, C, length)
    return np.ascontiguousarray(view[::stride].transpose(0, 2, 1))
