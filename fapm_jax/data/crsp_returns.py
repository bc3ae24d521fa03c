"""CRSP monthly returns (the file GKX's characteristics do not contain): ``PERMNO``, ``date``,
``RET`` and ``PRC``/``SHROUT`` for market equity, ``EXCHCD`` when present (NYSE breakpoints).
Every bad input raises a one-line :class:`~fapm_jax.core.errors.DataError`."""

from __future__ import annotations

import numpy as np
import polars as pl

from ..core.errors import DataError
from .file_checks import (
    MAX_ROWS_NAMED,
    Source,
    existing,
    first_line,
    kind,
    null_tokens_to_null,
    read_header,
    rows_note,
)

_RET_COLS = ("permno", "date", "ret", "prc", "shrout", "exchcd")


def load_returns(path: Source) -> pl.DataFrame:
    """A CRSP monthly stock file (CSV, ``.csv.gz`` or parquet) as ``permno``, ``month``, ``ret``, ``me``
    (and ``exchcd`` when the file has it).

    Input columns (matched case-insensitively, so CRSP's ``PERMNO``, ``DATE``/``date``, ``RET``,
    ``PRC``, ``SHROUT``, ``EXCHCD`` work): ``permno``, ``date``, ``ret`` required; ``prc``,
    ``shrout`` and ``exchcd`` optional; any other column (``SHRCD``, ``RETX`` ...) is ignored. ``date`` is a
    ``YYYYMMDD`` integer or an ISO ``YYYY-MM-DD`` string (or a parquet date). CRSP's letter
    codes in ``RET`` (``A``, ``B``, ``C``, ... any non-numeric token) read as missing; a
    non-numeric ``PRC`` or ``SHROUT`` is an error.

    Output (sorted by ``month, permno``): ``permno`` Int64, ``month`` Int32 ``YYYYMM``,
    ``ret`` Float64 (simple monthly return, decimal; a value below −1, one of CRSP's numeric
    missing codes −66/−77/−88/−99, reads as missing), ``me`` Float64 = ``|PRC| × SHROUT``
    (market equity in $ thousands, as CRSP's SHROUT is in thousands; CRSP marks a bid/ask
    midpoint by a negative price, hence the absolute value), null when either is missing, when
    ``PRC`` is 0 (CRSP: no price) or when the file has no ``PRC``/``SHROUT``; ``exchcd`` Int32,
    CRSP's exchange code of the month (1 NYSE, 2 AMEX, 3 NASDAQ, ...; null where missing), only
    when the file has an ``EXCHCD`` column — it gives the portfolios their NYSE breakpoints.
    """
    path = existing(path)
    header = read_header(path)
    lower: dict[str, str] = {}
    for c in header:
        if c.lower() in _RET_COLS:
            if c.lower() in lower:
                raise DataError(f"{path}: columns '{lower[c.lower()]}' and '{c}' are ambiguous")
            lower[c.lower()] = c
    missing = [k for k in ("permno", "date", "ret") if k not in lower]
    if missing:
        raise DataError(f"{path}: missing required column(s) {', '.join(repr(m) for m in missing)}")
    has_me = "prc" in lower and "shrout" in lower
    cols = [
        lower[k] for k in _RET_COLS if k in lower and (k in ("permno", "date", "ret", "exchcd") or has_me)
    ]
    try:
        if kind(path) == "csv":
            raw = pl.read_csv(path, columns=cols, infer_schema=False)
        else:
            raw = pl.read_parquet(path, columns=cols)
    except pl.exceptions.PolarsError as e:
        raise DataError(f"{path}: cannot read ({first_line(e)})") from None
    raw = raw.rename({lower[k]: k for k in lower if lower[k] in cols}).with_row_index("_row", offset=1)

    def fail(col_key: str, bad: pl.Series, what: str):
        sub = raw.filter(bad)
        extra = [
            f"permno {p}, date {d}, value {v!r}"
            for p, d, v in zip(
                sub["permno"].head(MAX_ROWS_NAMED),
                sub["date"].head(MAX_ROWS_NAMED),
                sub[col_key].head(MAX_ROWS_NAMED),
            )
        ]
        raise DataError(
            f"{path}: column '{lower[col_key]}': {what} in "
            f"{rows_note(sub['_row'].to_list(), sub.height, extra)}"
        )

    def number(key: str, integer: bool = False) -> pl.Series:
        s = raw[key]
        if s.dtype == pl.String:
            s = raw.select(null_tokens_to_null(key))[key]
            out = s.cast(pl.Int64 if integer else pl.Float64, strict=False)
            if key != "ret":
                bad = s.is_not_null() & out.is_null()
                if bad.any():
                    fail(key, bad, "non-integer value" if integer else "non-numeric value")
            return out
        if not s.dtype.is_numeric():
            fail(key, s.is_not_null(), f"non-numeric {s.dtype} value")
        if not integer:
            return s.cast(pl.Float64).fill_nan(None)
        if s.dtype.is_float():
            bad = s.is_not_null() & (s != s.round())
            if bad.any():
                fail(key, bad, "non-integer value")
        return s.cast(pl.Int64)

    permno = number("permno", integer=True)
    if permno.is_null().any():
        fail("permno", permno.is_null(), "missing permno")
    month = _returns_month(raw["date"])
    if month.is_null().any():
        fail("date", month.is_null(), "unparseable date (want YYYYMMDD or YYYY-MM-DD)")
    ret = number("ret")
    # A simple return cannot fall below -100%: what does is one of CRSP's numeric missing codes
    # (-66, -77, -88, -99 in some exports) and reads as missing, like the letter codes.
    ret = pl.select(pl.when(ret < -1.0).then(None).otherwise(ret)).to_series().alias("ret")
    cols_out = {"permno": permno, "month": month, "ret": ret}
    if has_me:
        prc, shrout = number("prc"), number("shrout")
        for key, s in (("prc", prc), ("shrout", shrout)):
            if s.is_infinite().any():
                fail(key, s.is_infinite(), "infinite value")
        # PRC = 0 is CRSP's "no price that month": no market equity rather than a zero one.
        cols_out["me"] = pl.select(pl.when(prc != 0).then(prc.abs() * shrout)).to_series().alias("me")
    else:
        cols_out["me"] = pl.Series("me", [None] * raw.height, dtype=pl.Float64)
    if ret.is_infinite().any():
        fail("ret", ret.is_infinite(), "infinite value")
    if "exchcd" in lower:
        cols_out["exchcd"] = number("exchcd", integer=True).cast(pl.Int32)
    out = pl.DataFrame({k: v.alias(k) for k, v in cols_out.items()})
    key = out["month"].cast(pl.Int64) * 10**10 + out["permno"]
    dup = key.is_duplicated()
    if dup.any():
        fail("permno", dup, "duplicate (permno, month)")
    return out.sort("month", "permno")


def _returns_month(date: pl.Series) -> pl.Series:
    """``YYYYMM`` of a CRSP date column (``YYYYMMDD`` integer or text, ISO text, or a date)."""
    if date.dtype in (pl.Date, pl.Datetime):
        d = date
    else:
        t = date.cast(pl.String).str.strip_chars()
        d = pl.select(
            pl.coalesce(t.str.to_date("%Y%m%d", strict=False), t.str.to_date("%Y-%m-%d", strict=False))
        ).to_series()
    return (d.dt.year().cast(pl.Int32) * 100 + d.dt.month().cast(pl.Int32)).cast(pl.Int32).alias("month")


def check_returns(df: pl.DataFrame, where: str = "returns frame") -> pl.DataFrame:
    """Check an already-loaded returns frame (the output form of :func:`load_returns`).

    Requires ``permno``, ``month``, ``ret``; adds a null ``me`` when absent; keeps an ``exchcd``
    column (as Int32) when present. Raises
    :class:`DataError` on missing columns, null keys, infinite values or duplicate keys.
    """
    missing = [c for c in ("permno", "month", "ret") if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing required column(s) {', '.join(repr(m) for m in missing)}")
    if "me" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.Float64).alias("me"))
    exch = []
    if "exchcd" in df.columns:
        bad = df["exchcd"].is_not_null() & df["exchcd"].cast(pl.Int32, strict=False).is_null()
        if bad.any():
            rows = np.flatnonzero(bad.to_numpy())
            raise DataError(
                f"{where}: column 'exchcd': non-integer value in {rows_note((rows + 1).tolist(), rows.size)}"
            )
        exch = [pl.col("exchcd").cast(pl.Int32, strict=False)]
    df = df.select(
        pl.col("permno").cast(pl.Int64),
        pl.col("month").cast(pl.Int32),
        pl.col("ret").cast(pl.Float64).fill_nan(None),
        pl.col("me").cast(pl.Float64).fill_nan(None),
        *exch,
    )
    for col in ("permno", "month"):
        rows = np.flatnonzero(df[col].is_null().to_numpy())
        if rows.size:
            raise DataError(
                f"{where}: column '{col}': missing value in {rows_note((rows + 1).tolist(), rows.size)}"
            )
    for col in ("ret", "me"):
        rows = np.flatnonzero(df[col].is_infinite().to_numpy())
        if rows.size:
            raise DataError(
                f"{where}: column '{col}': infinite value in {rows_note((rows + 1).tolist(), rows.size)}"
            )
    key = df["month"].cast(pl.Int64) * 10**10 + df["permno"]
    rows = np.flatnonzero(key.is_duplicated().to_numpy())
    if rows.size:
        raise DataError(
            f"{where}: column 'permno': duplicate (permno, month) in "
            f"{rows_note((rows + 1).tolist(), rows.size)}"
        )
    return df


def next_month(month: pl.Expr) -> pl.Expr:
    """``YYYYMM`` of the month after ``month`` (``200012 → 200101``), in ``month``'s dtype."""
    return pl.when(month % 100 == 12).then(month + 89).otherwise(month + 1)
