"""Tests of fapm_jax/windows.py: the paper's rolling scheme, masks and coverage errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fapm_jax.data.windows import (
    Window,
    WindowError,
    WindowSpec,
    check_coverage,
    rolling_windows,
    window_masks,
)


def test_default_spec_is_the_papers_30_windows():
    ws = rolling_windows()
    assert len(ws) == 30
    assert ws[0] == Window(train=(1957, 1974), valid=(1975, 1986), test=1987)
    assert ws[-1] == Window(train=(1957, 2003), valid=(2004, 2015), test=2016)
    for i, w in enumerate(ws):
        assert w.test == 1987 + i
        assert w.train == (1957, w.test - 13)  # expanding training block
        assert w.valid == (w.test - 12, w.test - 1)  # 12 rolling validation years
        assert w.years == tuple(range(1957, w.test + 1))
    assert ws[0].label() == "train 1957-1974 / valid 1975-1986 / test 1987"


def test_custom_spec():
    ws = rolling_windows(WindowSpec(first_year=1990, valid_years=3, first_test_year=2000, n_windows=4))
    assert ws == [
        Window((1990, 1996), (1997, 1999), 2000),
        Window((1990, 1997), (1998, 2000), 2001),
        Window((1990, 1998), (1999, 2001), 2002),
        Window((1990, 1999), (2000, 2002), 2003),
    ]
    one = rolling_windows(WindowSpec(first_year=2000, valid_years=1, first_test_year=2002, n_windows=1))
    assert one == [Window((2000, 2000), (2001, 2001), 2002)]


def test_window_masks_match_hand_built_masks():
    rng = np.random.default_rng(0)
    years = rng.integers(2000, 2008, 500)  # unsorted on purpose
    ws = rolling_windows(WindowSpec(first_year=2000, valid_years=2, first_test_year=2004, n_windows=4))
    tr, va, te = window_masks(years, ws)
    assert tr.shape == va.shape == te.shape == (4, 500) and tr.dtype == bool
    for k, w in enumerate(ws):
        for j, y in enumerate(years):
            assert tr[k, j] == (w.train[0] <= y <= w.train[1])
            assert va[k, j] == (w.valid[0] <= y <= w.valid[1])
            assert te[k, j] == (y == w.test)
    # Blocks are disjoint and in time order.
    assert not (tr & va).any() and not (va & te).any() and not (tr & te).any()


def test_missing_years_are_named():
    years = np.array([y for y in range(1957, 2017) if y not in (1990, 1991, 1992)])
    with pytest.raises(WindowError, match=r"no rows in 1990-1992 \(data covers 1957-1989, 1993-2016\)"):
        check_coverage(rolling_windows(), years)
    years = np.array([y for y in range(1957, 2017) if y not in (1960, 1990, 1991, 2016)])
    with pytest.raises(WindowError, match=r"no rows in 1960, 1990-1991, 2016 \("):
        check_coverage(rolling_windows(), years)
    row_years = np.repeat(years, 3)
    with pytest.raises(WindowError, match="1990-1991"):
        window_masks(row_years, rolling_windows())
    with pytest.raises(WindowError, match="covers nothing"):
        check_coverage(rolling_windows(), [])
    # Years beyond the data's end: the last test year.
    with pytest.raises(WindowError, match=r"need years 1957-2016 .* no rows in 2016 "):
        check_coverage(rolling_windows(), np.arange(1957, 2016))


def test_full_coverage_passes():
    check_coverage(rolling_windows(), np.arange(1957, 2017))
    check_coverage(rolling_windows(), np.arange(1950, 2020))  # extra years are fine
    assert issubclass(WindowError, ValueError)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(valid_years=0), "valid_years must be >= 1, got 0"),
        (dict(n_windows=0), "n_windows must be >= 1, got 0"),
        (dict(first_test_year=1969), "first_test_year 1969 leaves no training year"),
        (dict(first_year=2000, valid_years=2, first_test_year=2002), "first_test_year 2002"),
    ],
)
def test_invalid_spec(kwargs, msg):
    with pytest.raises(WindowError, match=msg):
        WindowSpec(**kwargs)


def test_smallest_valid_spec_and_frozen():
    spec = WindowSpec(first_year=2000, valid_years=1, first_test_year=2002, n_windows=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.n_windows = 2  # type: ignore[misc]
