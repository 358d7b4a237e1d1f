"""rnnkit.data.series: readers, built-in series, transforms, scaling, windows."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rnnkit.data.series import (
    Scaler,
    apply_transform,
    co2_monthly,
    future_dates,
    infer_period,
    invert_transform,
    load_series,
    noisy_sine,
    sliding_windows,
    sunspots_yearly,
)


def write(tmp_path, text, name="s.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_date_column_and_header(tmp_path):
    path = write(tmp_path, "date,a,b\n2020-01-01,1,10\n2020-02-01,2,20\n2020-03-01,3.5,30\n")
    s = load_series(path)
    assert s.columns == ["a", "b"]
    assert s.dates == ["2020-01-01", "2020-02-01", "2020-03-01"]
    np.testing.assert_array_equal(s.values, [[1, 10], [2, 20], [3.5, 30]])
    assert load_series(path, columns=["b"]).values[:, 0].tolist() == [10, 20, 30]


def test_csv_without_header_or_dates(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        s = load_series(write(tmp_path, "1.5\n\n2\n-3e2\n"))
    assert "1 blank lines skipped" in caplog.text
    assert s.columns == ["x0"] and s.dates is None
    assert s.values[:, 0].tolist() == [1.5, 2.0, -300.0]


def test_csv_first_column_of_iso_dates_is_detected(tmp_path):
    s = load_series(write(tmp_path, "when,y\n2001-01,5\n2001-02,6\n"))
    assert s.columns == ["y"] and s.dates == ["2001-01", "2001-02"]


def test_csv_missing_values_forward_filled_and_counted(tmp_path, caplog):
    path = write(tmp_path, "y,z\n1,5\n,6\nNA,7\n4,\n")
    s = load_series(path)
    np.testing.assert_array_equal(s.values, [[1, 5], [1, 6], [1, 7], [4, 7]])
    assert "3 missing values forward-filled" in caplog.text


def test_csv_non_numeric_value_names_file_line_and_column(tmp_path):
    path = write(tmp_path, "date,y\n2020-01-01,1\n2020-02-01,abc\n")
    with pytest.raises(ValueError, match=r"s\.csv:3: column 'y': 'abc' is not a number"):
        load_series(path)


def test_csv_ragged_row_and_leading_gap_are_errors(tmp_path):
    with pytest.raises(ValueError, match=r":3: 1 fields, expected 2"):
        load_series(write(tmp_path, "a,b\n1,2\n3\n"))
    with pytest.raises(ValueError, match=r":2: column 'a' starts with a missing value"):
        load_series(write(tmp_path, "a,b\n,1\n2,3\n"))


def test_csv_unknown_column_and_missing_file(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"no numeric column 'c'"):
        load_series(path, columns=["c"])
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_series(tmp_path / "nope.csv")


def test_numpy_files(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(6.0).reshape(3, 2))
    s = load_series(tmp_path / "a.npy")
    assert s.columns == ["x0", "x1"] and s.values.shape == (3, 2)
    np.savez(tmp_path / "b.npz", values=np.arange(4.0), columns=np.array(["v"]),
             dates=np.array(["2001", "2002", "2003", "2004"]))  # fmt: skip
    s = load_series(tmp_path / "b.npz")
    assert s.columns == ["v"] and s.dates[-1] == "2004"
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"junk\.npy: not a readable NumPy file"):
        load_series(tmp_path / "junk.npy")
    np.save(tmp_path / "bad.npy", np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match=r"bad\.npy: non-finite value at row 1"):
        load_series(tmp_path / "bad.npy")


def test_co2_is_the_issue_series():
    s = co2_monthly()
    assert len(s) == 526 and s.dates[0] == "1958-03-01" and s.dates[-1] == "2001-12-01"
    assert np.isfinite(s.values).all()
    assert 310 < s.values.min() < 320 and 370 < s.values.max() < 375


def test_sunspots_and_sine():
    s = sunspots_yearly()
    assert len(s) == 309 and s.dates[0] == "1700"
    a, b = noisy_sine(200, 20, 0.0), noisy_sine(200, 20, 0.1, seed=1)
    np.testing.assert_allclose(a.values[:20, 0], a.values[20:40, 0], atol=1e-12)  # periodic
    assert 0.05 < np.std(b.values - a.values) < 0.15


@pytest.mark.parametrize("kind,period", [("none", 1), ("diff", 1), ("seasonal_diff", 4)])
def test_transform_round_trip(kind, period):
    y = np.random.default_rng(0).normal(size=(30, 2)).cumsum(0)
    z = apply_transform(y, kind, period)
    off = {"none": 0, "diff": 1, "seasonal_diff": 4}[kind]
    assert z.shape == (30 - off, 2)
    # continuing the first 20 steps with the true transformed future gives back the levels
    np.testing.assert_allclose(invert_transform(y[:20], z[20 - off :], kind, period), y[20:])


def test_scaler_fits_given_part_only():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [100.0, 0.0]])
    sc = Scaler.fit(x[:2])
    np.testing.assert_allclose(sc.mean, [2.0, 5.0])
    np.testing.assert_allclose(sc.std, [1.0, 1.0])  # constant column: std 1
    np.testing.assert_allclose(sc.inverse(sc.transform(x)), x)
    back = Scaler.from_dict(sc.to_dict())
    np.testing.assert_allclose(back.transform(x), sc.transform(x))


def test_sliding_windows():
    x = np.arange(10.0).reshape(5, 2)
    w = sliding_windows(x, 3)
    assert w.shape == (3, 3, 2)
    np.testing.assert_array_equal(w[1], x[1:4])
    assert sliding_windows(x, 6).shape == (0, 6, 2)


def test_dates_ahead_and_period_guess():
    assert future_dates(["2001-11-01", "2001-12-01"], 2) == ["2002-01-01", "2002-02-01"]
    assert future_dates(["2007", "2008"], 2) == ["2009", "2010"]
    assert future_dates(["2020-01-01", "2020-01-08"], 1) == ["2020-01-15"]
    assert future_dates(["a", "b"], 2) == ["+1", "+2"]
    assert infer_period(["2001-01-01", "2001-02-01"]) == 12
    assert infer_period(["2001-01", "2001-04"]) == 4
    assert infer_period(["2001-01-01", "2001-01-02"]) == 7
    assert infer_period(None) == 1
