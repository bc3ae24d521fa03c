"""A real embedded panel: 30 Ken French portfolios as assets, with the real macro predictors.

The simulated panel (:mod:`fapm_jax.data.embedded`) has a known truth but no real returns; the GKX
stock file is not redistributable. This module builds a small REAL panel from the copy of the
Kenneth French data library shipped in ``fapm_jax/data/french_portfolios_monthly.csv`` (monthly
returns 1949-01 to 2017-03, decimal, raw — not in excess of RF):

Assets (``permno = 1 + index`` into :data:`FRENCH_ASSETS`): the 12 industry portfolios
(1–12, ``NoDur`` … ``Other``), the 9 size × book-to-market portfolios (13–21, ``S1V1`` …
``S5V5``: size quintile 1/3/5 × B/M quintile 1/3/5) and the 9 size × prior-return portfolios
(22–30, ``S1M1`` … ``S5M5``: size quintile 1/3/5 × momentum quintile 1/3/5).

Rows are forecast origins ``t`` (``YYYYMM``), one per asset. With ``R_s`` the portfolio's raw
return of month ``s``, the characteristics of row ``t`` use returns up to ``R_t`` only:

- ``mom1m``     = ``R_t`` (1-month return, short-term reversal).
- ``mom12m``    = ``∏_{s=t−11}^{t−1} (1 + R_s) − 1`` (12–2 momentum: 11 months, skipping ``t``).
- ``mom36m``    = ``∏_{s=t−35}^{t−12} (1 + R_s) − 1`` (36–13 long-term reversal: 24 months).
- ``retvol12m`` = sample standard deviation (``ddof = 1``) of ``R_{t−11} … R_t`` (12 months).
- ``maxret12m`` = ``max(R_{t−11} … R_t)`` (12 months).
- ``size_bucket``  = the size quintile of the portfolio: 1 (``S1``, small), 3 (``S3``, mid),
  5 (``S5``, big); missing for the industry portfolios.
- ``value_bucket`` = the B/M quintile: 1 (``V1``, growth), 3 (``V3``), 5 (``V5``, value);
  missing except for the size × B/M portfolios.
- ``mom_bucket``   = the prior-return quintile: 1 (``M1``, losers), 3 (``M3``), 5 (``M5``,
  winners); missing except for the size × momentum portfolios.

``mom1m``, ``mom12m`` and ``mom36m`` mean what the GKX characteristics of those names mean;
``retvol12m`` and ``maxret12m`` are named apart from GKX's ``retvol`` and ``maxret``, which are
daily statistics within month ``t``. Each month every characteristic is ranked across the
assets like GKX: ``2 rank / (n + 1) − 1`` over the ``n`` non-missing values (average rank for
ties), missing → 0, the cross-sectional median. The oldest return row ``t`` needs is ``t − 35``;
the data start in 1949-01, so every origin from 1951-12 on (1957-01 by default) has full
history, and the builder refuses any row whose return history is incomplete rather than
letting the rank map turn a gap into a silent 0.

The eight Welch–Goyal predictors of month ``t`` (:func:`fapm_jax.data.macro.macro_panel`,
``macro_transform`` passed through) follow as factors. The target is the next month's excess
return ``r = R_{t+1} − RF_{t+1}``, RF from the French file, so the last origin is 2017-02.

``mktcap`` — the file carries no market values, so it holds an ORDINAL SIZE PROXY, not dollars:
the portfolio's size quintile, 1.0 (``S1``), 3.0 (``S3``), 5.0 (``S5``), and 3.0 for the
industry portfolios (which hold firms of every size: the median, as for ``size_bucket``).
Anything that value-weights by ``mktcap`` thus weights big portfolios 5× small ones. With
``size_group = FRENCH_SIZE_GROUP`` (6), the top / bottom R² rows are exactly the six ``S5`` /
six ``S1`` portfolios; the default third-of-the-cross-section (10) would mix in ties among the
mid-size and industry portfolios, broken by order of appearance. ``sic2`` is ``None``.
"""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from ..core.errors import DataError
from .macro import MACRO_NAMES, macro_panel
from .panel import Panel

INDUSTRIES: tuple[str, ...] = (
    "NoDur",
    "Durbl",
    "Manuf",
    "Enrgy",
    "Chems",
    "BusEq",
    "Telcm",
    "Utils",
    "Shops",
    "Hlth",
    "Money",
    "Other",
)
SIZE_VALUE: tuple[str, ...] = tuple(f"S{s}V{v}" for s in (1, 3, 5) for v in (1, 3, 5))
SIZE_MOMENTUM: tuple[str, ...] = tuple(f"S{s}M{m}" for s in (1, 3, 5) for m in (1, 3, 5))
#: The 30 assets; the panel's ``permno`` of ``FRENCH_ASSETS[i]`` is ``i + 1``.
FRENCH_ASSETS: tuple[str, ...] = INDUSTRIES + SIZE_VALUE + SIZE_MOMENTUM
FACTOR_NAMES: tuple[str, ...] = ("MktRF", "SMB", "HML", "Mom", "RF")
#: Characteristic columns of :func:`french_panel`, in order (definitions in the module docstring).
FRENCH_CHARS: tuple[str, ...] = (
    "mom1m",
    "mom12m",
    "mom36m",
    "retvol12m",
    "maxret12m",
    "size_bucket",
    "value_bucket",
    "mom_bucket",
)
#: OLS-3's size, value and momentum columns on this panel (GKX use ``mvel1, bm, mom12m``).
OLS3_COLUMNS: tuple[str, str, str] = ("size_bucket", "value_bucket", "mom12m")
#: The ``size_group`` under which the top / bottom rows are the ``S5`` / ``S1`` portfolios.
FRENCH_SIZE_GROUP: int = 6

#: Months of return history before ``t`` that the characteristics read (``mom36m``: ``t − 35``).
HISTORY_MONTHS: int = 35
_TIME_SERIES_CHARS = FRENCH_CHARS[:5]


def french_path() -> Path:
    """Path of the French portfolio CSV shipped with the package."""
    return Path(str(resources.files("fapm_jax") / "data" / "french_portfolios_monthly.csv"))


def load_french(path: str | Path | None = None) -> pl.DataFrame:
    """The whole file by ``month`` (``YYYYMM``, Int32): factors, then the 30 portfolios.

    Checks that every column is present and numeric, no value is missing and the months run
    consecutively.
    """
    if path is None:
        data = (resources.files("fapm_jax") / "data" / "french_portfolios_monthly.csv").read_bytes()
        where = "packaged french_portfolios_monthly.csv"
    else:
        if not Path(path).exists():
            raise DataError(f"French data: no file at {path}")
        data, where = Path(path).read_bytes(), str(path)
    try:
        raw = pl.read_csv(io.BytesIO(data), infer_schema_length=None)
    except pl.exceptions.PolarsError as e:  # pragma: no cover - message passthrough
        raise DataError(f"French data {where}: cannot parse ({str(e).splitlines()[0]})") from None
    need = ("dates",) + FACTOR_NAMES + FRENCH_ASSETS
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise DataError(f"French data {where}: missing column(s) {', '.join(missing)}")
    bad = [c for c in need[1:] if not raw.schema[c].is_numeric()]
    if bad:
        raise DataError(f"French data {where}: non-numeric column(s) {', '.join(bad)}")
    dates = raw["dates"].cast(pl.String)
    bad_date = dates.filter(~dates.str.contains(r"^\d{4}-(0[1-9]|1[0-2])-").fill_null(True))
    if bad_date.len():
        raise DataError(f"French data {where}: date {bad_date[0]!r} is not YYYY-MM-DD")
    d = pl.col("dates").cast(pl.String)
    frame = raw.select(
        (d.str.slice(0, 4).cast(pl.Int32) * 100 + d.str.slice(5, 2).cast(pl.Int32)).alias("month"),
        *[pl.col(c).cast(pl.Float64) for c in need[1:]],
    )
    nulls = frame.filter(pl.any_horizontal(pl.all().is_null() | pl.all().is_nan()))
    if nulls.height:
        raise DataError(
            f"French data {where}: missing value in month {nulls['month'][0]} ({nulls.height} months)"
        )
    k = _month_index(frame["month"].to_numpy())
    gap = np.flatnonzero(np.diff(k) != 1)
    if gap.size:
        i = int(gap[0])
        raise DataError(
            f"French data {where}: months not consecutive at {frame['month'][i]} -> {frame['month'][i + 1]}"
        )
    return frame


def french_factors(
    first_month: int = 194901, last_month: int = 201703, *, path: str | Path | None = None
) -> pl.DataFrame:
    """The Fama–French–Carhart factors of ``[first_month, last_month]``: ``month`` (Int32),
    ``MktRF``, ``SMB``, ``HML``, ``Mom``, ``RF`` (decimal monthly returns)."""
    frame = load_french(path)
    lo, hi = int(frame["month"][0]), int(frame["month"][-1])
    data_first, data_last = "the first month of the data", "the last month of the data"
    _check_range(first_month, last_month, lo, hi, data_first, data_last)
    return frame.filter(pl.col("month").is_between(first_month, last_month)).select("month", *FACTOR_NAMES)


def french_characteristics(
    first_month: int = 195701, last_month: int = 201612, *, path: str | Path | None = None
) -> pl.DataFrame:
    """The raw (unranked) characteristics of every asset and origin in the range: ``month``,
    ``permno``, ``asset`` and :data:`FRENCH_CHARS` (null where a bucket does not apply),
    sorted by ``(month, permno)``."""
    frame = load_french(path)
    months, C = _characteristics(frame, first_month, last_month, need_next=False)
    return _long_frame(months, C)


def french_panel(
    *,
    first_month: int = 195701,
    last_month: int = 201612,
    macro_transform: str = "rank",
    path: str | Path | None = None,
) -> Panel:
    """The French-portfolio panel (name ``"french"``) of origins ``first_month … last_month``:
    30 assets × the months, ranked :data:`FRENCH_CHARS` then the Welch–Goyal predictors
    (``macro_transform``: see :func:`fapm_jax.data.macro.transform_expanding`), target
    ``R_{t+1} − RF_{t+1}``, ``mktcap`` the ordinal size proxy of the module docstring.
    ``path`` replaces the packaged CSV (a file of the same layout)."""
    frame = load_french(path)
    months, C = _characteristics(frame, first_month, last_month, need_next=True)
    T, A = len(months), len(FRENCH_ASSETS)

    month_all = frame["month"].to_numpy()
    pos = np.searchsorted(month_all, months) + 1  # row of month t + 1
    R = frame.select(FRENCH_ASSETS).to_numpy()
    rf = frame["RF"].to_numpy()
    r = R[pos] - rf[pos, None]  # [T, A]

    ranked = np.stack([_gkx_rank(C[..., j]) for j in range(C.shape[-1])], axis=-1)
    macro = macro_panel(first_month, last_month, transform=macro_transform)
    if not np.array_equal(macro["month"].to_numpy(), months):  # pragma: no cover - macro_panel checks
        raise DataError(f"French panel: macro months do not match {first_month}-{last_month}")
    M = macro.select(MACRO_NAMES).to_numpy()  # [T, 8]
    X = np.concatenate([ranked, np.broadcast_to(M[:, None, :], (T, A, M.shape[1]))], axis=-1)

    size = _buckets("S")
    mktcap = np.where(np.isnan(size), 3.0, size)
    return Panel(
        X=X.reshape(T * A, -1).astype(np.float32),
        r=r.reshape(-1).astype(np.float32),
        permno=np.tile(np.arange(1, A + 1, dtype=np.int64), T),
        month=np.repeat(months, A).astype(np.int32),
        mktcap=np.tile(mktcap, T).astype(np.float32),
        feature_names=FRENCH_CHARS + MACRO_NAMES,
        macro_names=MACRO_NAMES,
        sic2=None,
        name="french",
    )


# --- internals ---------------------------------------------------------------------------


def _month_index(month: np.ndarray | int) -> np.ndarray | int:
    return (month // 100) * 12 + month % 100 - 1


def _check_month(m: int, what: str) -> None:
    if not isinstance(m, (int, np.integer)) or not (1 <= m % 100 <= 12) or m < 100000:
        raise DataError(f"French data: {what} {m!r} is not a YYYYMM month")


def _check_range(first: int, last: int, lo: int, hi: int, lo_is: str, hi_is: str) -> None:
    _check_month(first, "first_month")
    _check_month(last, "last_month")
    if first > last:
        raise DataError(f"French data: first_month {first} is after last_month {last}")
    if first < lo:
        raise DataError(f"French data: first_month {first} precedes {lo}, {lo_is}")
    if last > hi:
        raise DataError(f"French data: last_month {last} is after {hi}, {hi_is}")


def _characteristics(frame: pl.DataFrame, first: int, last: int, *, need_next: bool):
    """Origins in ``[first, last]`` and their raw characteristics ``[T, 30, 8]`` (NaN = missing)."""
    month_all = frame["month"].to_numpy()
    k = _month_index(month_all)
    lo_k, hi_k = int(k[0]) + HISTORY_MONTHS, int(k[-1]) - int(need_next)
    lo, hi = (lo_k // 12) * 100 + lo_k % 12 + 1, (hi_k // 12) * 100 + hi_k % 12 + 1
    span = f"(data {month_all[0]}-{month_all[-1]})"
    lo_is = f"the first origin with the {HISTORY_MONTHS} prior months that mom36m reads {span}"
    hi_is = "the last origin with a next-month return " if need_next else "the last month "
    hi_is += span
    _check_range(first, last, lo, hi, lo_is, hi_is)

    R = frame.select(FRENCH_ASSETS).to_numpy()  # [T_all, 30]
    ts = {
        "mom1m": R,
        "mom12m": _trailing(1.0 + R, 11, 1, lambda w: np.prod(w, axis=-1)) - 1.0,
        "mom36m": _trailing(1.0 + R, 35, 12, lambda w: np.prod(w, axis=-1)) - 1.0,
        "retvol12m": _trailing(R, 11, 0, lambda w: np.std(w, axis=-1, ddof=1)),
        "maxret12m": _trailing(R, 11, 0, lambda w: np.max(w, axis=-1)),
    }
    rows = (month_all >= first) & (month_all <= last)
    months = month_all[rows]
    C = np.empty((rows.sum(), len(FRENCH_ASSETS), len(FRENCH_CHARS)))
    for j, name in enumerate(_TIME_SERIES_CHARS):
        C[..., j] = ts[name][rows]
    # Guaranteed by the range check; kept so that a gap can never become a silent rank of 0.
    assert np.isfinite(C[..., : len(_TIME_SERIES_CHARS)]).all(), "incomplete return history"
    for j, letter in zip(range(len(_TIME_SERIES_CHARS), len(FRENCH_CHARS)), "SVM"):
        C[..., j] = _buckets(letter)[None, :]
    return months, C


def _trailing(x: np.ndarray, start_lag: int, end_lag: int, fn) -> np.ndarray:
    """``out[t] = fn(x[t − start_lag … t − end_lag])`` along axis 0 (window on the last axis);
    NaN for the first ``start_lag`` rows, which lack history."""
    L = start_lag - end_lag + 1
    win = np.lib.stride_tricks.sliding_window_view(x, L, axis=0)  # [T − L + 1, ..., L]
    out = np.full(x.shape, np.nan)
    out[start_lag:] = fn(win[: x.shape[0] - start_lag])
    return out


def _buckets(letter: str) -> np.ndarray:
    """Quintile digit following ``letter`` in each asset name (``S3V5`` → S: 3, V: 5), else NaN."""
    out = np.full(len(FRENCH_ASSETS), np.nan)
    for i, name in enumerate(FRENCH_ASSETS):
        if name not in INDUSTRIES and letter in name:
            out[i] = float(name[name.index(letter) + 1])
    return out


def _gkx_rank(x: np.ndarray) -> np.ndarray:
    """Row-wise GKX rank map of ``x [T, A]``: ``2 rank / (n + 1) − 1`` over the ``n`` finite
    values (average rank for ties), NaN → 0."""
    out = np.zeros_like(x, dtype=np.float64)
    for t in range(x.shape[0]):
        ok = np.isfinite(x[t])
        n = int(ok.sum())
        if n == 0:
            continue
        _, inv, cnt = np.unique(x[t, ok], return_inverse=True, return_counts=True)
        avg = np.cumsum(cnt) - (cnt - 1) / 2.0  # average of the ranks each distinct value spans
        out[t, ok] = 2.0 * avg[inv] / (n + 1) - 1.0
    return out


def _long_frame(months: np.ndarray, C: np.ndarray) -> pl.DataFrame:
    T, A, _ = C.shape
    cols = {
        "month": np.repeat(months, A).astype(np.int32),
        "permno": np.tile(np.arange(1, A + 1, dtype=np.int64), T),
        "asset": np.tile(np.array(FRENCH_ASSETS), T),
    }
    cols.update({name: C[..., j].reshape(-1) for j, name in enumerate(FRENCH_CHARS)})
    return pl.DataFrame(cols).with_columns(pl.col(FRENCH_CHARS).fill_nan(None))
