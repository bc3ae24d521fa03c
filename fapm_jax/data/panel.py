"""The stock-month panel every model trains on.

One row per (stock, month ``t``): the factors known at the end of month ``t`` (firm
characteristics and macro predictors) and the excess return of month ``t + 1`` that they
predict (paper section 2.1, "Excess Return"). ``month`` is the forecast origin ``t`` as an
integer ``YYYYMM``; the rolling windows split rows by the year of ``t``, as the GKX file's
``DATE`` column does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import polars as pl

from ..core.errors import DataError


@dataclasses.dataclass(frozen=True, eq=False)
class Panel:
    """A stock-month panel, rows sorted by ``(month, permno)``.

    Attributes:
        X: ``[N, n]`` float32 factors, characteristics first then macro predictors.
        r: ``[N]`` float32 excess return of month ``t + 1``.
        permno: ``[N]`` int64 stock identifier.
        month: ``[N]`` int32 forecast origin ``t`` as ``YYYYMM``.
        mktcap: ``[N]`` float32 market equity at ``t`` (value weights, size cut-offs).
        feature_names: the ``n`` column names of ``X``.
        macro_names: the names in ``feature_names`` that are macro predictors.
        sic2: ``[N]`` int32 two-digit SIC industry code, or ``None``.
        exchange: ``[N]`` int32 CRSP exchange code at ``t`` (1 NYSE, 2 AMEX, 3 NASDAQ; −1
            unknown), or ``None``; when given, portfolio sorts use NYSE breakpoints.
        name: a short label of the data source, used in reports.
    """

    X: np.ndarray
    r: np.ndarray
    permno: np.ndarray
    month: np.ndarray
    mktcap: np.ndarray
    feature_names: tuple[str, ...]
    macro_names: tuple[str, ...] = ()
    sic2: np.ndarray | None = None
    name: str = "panel"
    exchange: np.ndarray | None = None

    def __post_init__(self):
        validate_panel(self)

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def year(self) -> np.ndarray:
        return self.month // 100

    @property
    def years(self) -> np.ndarray:
        """The distinct years present, sorted."""
        return np.unique(self.year)

    @property
    def char_names(self) -> tuple[str, ...]:
        return tuple(f for f in self.feature_names if f not in self.macro_names)

    def feature_index(self, names: Sequence[str]) -> np.ndarray:
        """Column indices of ``names``; an unknown name is a :class:`DataError`."""
        lookup = {f: i for i, f in enumerate(self.feature_names)}
        missing = [f for f in names if f not in lookup]
        if missing:
            raise DataError(f"panel '{self.name}': unknown factor(s) {', '.join(missing)}")
        return np.array([lookup[f] for f in names], dtype=np.int64)

    def select_features(self, names: Sequence[str]) -> Panel:
        """The same panel restricted to the factors ``names`` (in that order)."""
        idx = self.feature_index(names)
        return dataclasses.replace(
            self,
            X=np.ascontiguousarray(self.X[:, idx]),
            feature_names=tuple(names),
            macro_names=tuple(f for f in names if f in self.macro_names),
        )

    def with_sic2_dummies(self) -> Panel:
        """The panel with one-hot ``sic2_XX`` factor columns appended (one per code present,
        ascending; a negative code, unknown, gets none) — the SIC2 factor of the paper's
        section 3.2. A :class:`DataError` if the panel has no SIC2 codes."""
        if self.sic2 is None:
            raise DataError(f"panel '{self.name}': no sic2 codes, so no SIC2 dummies")
        codes = np.unique(self.sic2[self.sic2 >= 0])
        names = tuple(f"sic2_{int(c):02d}" for c in codes)
        clash = [f for f in names if f in self.feature_names]
        if clash:
            raise DataError(f"panel '{self.name}': already has SIC2 dummy columns ({clash[0]}, ...)")
        onehot = (self.sic2[:, None] == codes[None, :]).astype(self.X.dtype)
        return dataclasses.replace(
            self, X=np.concatenate([self.X, onehot], axis=1), feature_names=self.feature_names + names
        )

    def to_frame(self) -> pl.DataFrame:
        """The panel as a polars frame: keys, target, market equity and every factor."""
        cols = {
            "permno": self.permno,
            "month": self.month,
            "r": self.r,
            "mktcap": self.mktcap,
        }
        if self.sic2 is not None:
            cols["sic2"] = self.sic2
        if self.exchange is not None:
            cols["exchange"] = self.exchange
        frame = pl.DataFrame(cols)
        return frame.with_columns(pl.DataFrame(self.X, schema=list(self.feature_names), orient="row"))


def validate_panel(p: Panel) -> None:
    """Check shapes, dtypes, finiteness, sort order and key uniqueness; raise :class:`DataError`."""
    where = f"panel '{p.name}'"
    if p.X.ndim != 2:
        raise DataError(f"{where}: X must be 2-D [rows, factors], got shape {p.X.shape}")
    n_rows, n_feat = p.X.shape
    if len(p.feature_names) != n_feat:
        raise DataError(f"{where}: {len(p.feature_names)} feature names for {n_feat} columns of X")
    if len(set(p.feature_names)) != n_feat:
        dup = sorted({f for f in p.feature_names if p.feature_names.count(f) > 1})
        raise DataError(f"{where}: duplicate factor name(s) {', '.join(dup)}")
    unknown_macro = [m for m in p.macro_names if m not in p.feature_names]
    if unknown_macro:
        raise DataError(f"{where}: macro name(s) not among the factors: {', '.join(unknown_macro)}")
    optional = tuple(f for f in ("sic2", "exchange") if getattr(p, f) is not None)
    for field in ("r", "permno", "month", "mktcap") + optional:
        arr = getattr(p, field)
        if arr.shape != (n_rows,):
            raise DataError(f"{where}: {field} has shape {arr.shape}, expected ({n_rows},)")
    if p.X.dtype != np.float32 or p.r.dtype != np.float32:
        raise DataError(f"{where}: X and r must be float32 (got {p.X.dtype}, {p.r.dtype})")
    bad = ~np.isfinite(p.X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"{where}: non-finite factor '{p.feature_names[col]}' at permno {p.permno[row]}, "
            f"month {p.month[row]} ({int(bad.sum())} such values)"
        )
    for field in ("r", "mktcap"):
        arr = getattr(p, field)
        bad_rows = np.flatnonzero(~np.isfinite(arr))
        if bad_rows.size:
            i = bad_rows[0]
            raise DataError(
                f"{where}: non-finite {field} at permno {p.permno[i]}, month {p.month[i]} "
                f"({bad_rows.size} such rows)"
            )
    mm = p.month % 100
    if n_rows and ((mm < 1) | (mm > 12)).any():
        i = int(np.flatnonzero((mm < 1) | (mm > 12))[0])
        raise DataError(f"{where}: month {p.month[i]} at row {i} is not a YYYYMM date")
    key = p.month.astype(np.int64) * 10**10 + p.permno.astype(np.int64)
    if n_rows > 1:
        d = np.diff(key)
        if (d == 0).any():
            i = int(np.flatnonzero(d == 0)[0])
            raise DataError(f"{where}: duplicate key permno {p.permno[i]}, month {p.month[i]}")
        if (d < 0).any():
            raise DataError(f"{where}: rows must be sorted by (month, permno)")


def sort_panel_arrays(month: np.ndarray, permno: np.ndarray) -> np.ndarray:
    """The row order that sorts by ``(month, permno)``."""
    return np.lexsort((permno, month))
