"""Rolling training / validation / test windows (Algorithm 2, section 3.1).

Window ``i`` (0-based) trains on every year from ``first_year`` to the year before its
validation block (expanding), validates on the next ``valid_years`` years (rolling) and tests on
the single year after. The defaults give the paper's 30 windows: train 1957–1974 / valid
1975–1986 / test 1987, …, train 1957–2003 / valid 2004–2015 / test 2016.

Windows are realised as 0/1 row masks ``[W, N]`` over one panel, so that every window (and
every sweep point) reads the same device copy of ``X``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..core.errors import WindowError


@dataclasses.dataclass(frozen=True)
class Window:
    """Inclusive year ranges of one rolling window."""

    train: tuple[int, int]
    valid: tuple[int, int]
    test: int

    @property
    def years(self) -> tuple[int, ...]:
        return tuple(range(self.train[0], self.test + 1))

    def label(self) -> str:
        return (
            f"train {self.train[0]}-{self.train[1]} / valid {self.valid[0]}-{self.valid[1]}"
            f" / test {self.test}"
        )


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """Parameters of the rolling scheme; defaults reproduce the paper (section 3.1)."""

    first_year: int = 1957
    valid_years: int = 12
    first_test_year: int = 1987
    n_windows: int = 30

    def __post_init__(self):
        if self.valid_years < 1:
            raise WindowError(f"windows: valid_years must be >= 1, got {self.valid_years}")
        if self.n_windows < 1:
            raise WindowError(f"windows: n_windows must be >= 1, got {self.n_windows}")
        train_len = self.first_test_year - self.valid_years - self.first_year
        if train_len < 1:
            raise WindowError(
                f"windows: first_test_year {self.first_test_year} leaves no training year after "
                f"first_year {self.first_year} and {self.valid_years} validation years"
            )


def rolling_windows(spec: WindowSpec = WindowSpec()) -> list[Window]:
    """The windows of ``spec``, in test-year order (Algorithm 2, lines 3–5)."""
    out = []
    for i in range(spec.n_windows):
        test = spec.first_test_year + i
        valid = (test - spec.valid_years, test - 1)
        out.append(Window(train=(spec.first_year, valid[0] - 1), valid=valid, test=test))
    return out


def check_coverage(windows: Sequence[Window], years_available: Sequence[int] | np.ndarray) -> None:
    """Raise :class:`WindowError` naming every year the windows need but the data lacks."""
    have = {int(y) for y in np.asarray(years_available).ravel()}
    need = sorted({y for w in windows for y in w.years})
    missing = [y for y in need if y not in have]
    if missing:
        raise WindowError(
            f"windows need years {need[0]}-{need[-1]} but the data has no rows in "
            f"{_ranges(missing)} (data covers {_ranges(sorted(have)) or 'nothing'})"
        )


def window_masks(years: np.ndarray, windows: Sequence[Window]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean ``(train, valid, test)`` masks of shape ``[W, N]`` for rows in ``years``.

    Checks coverage first, so a window whose years are absent is an error, not an empty mask.
    """
    years = np.asarray(years)
    check_coverage(windows, np.unique(years))
    lo = np.array([[w.train[0], w.valid[0], w.test] for w in windows])
    hi = np.array([[w.train[1], w.valid[1], w.test] for w in windows])
    y = years[None, :]
    masks = [(y >= lo[:, j : j + 1]) & (y <= hi[:, j : j + 1]) for j in range(3)]
    return masks[0], masks[1], masks[2]


def _ranges(years: Sequence[int]) -> str:
    """``[1960, 1961, 1962, 1970]`` → ``'1960-1962, 1970'``."""
    parts, start, prev = [], None, None
    for y in years:
        if start is None:
            start = prev = y
        elif y == prev + 1:
            prev = y
        else:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = prev = y
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ", ".join(parts)
