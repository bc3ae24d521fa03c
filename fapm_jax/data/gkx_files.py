"""Loaders of the real Gu–Kelly–Xiu (2020) data: the characteristics file and CRSP returns.

* :func:`scan_characteristics` / :func:`load_characteristics` read GKX's ``datashare.csv``
  (Dacheng Xiu's site; about 4.1 million rows, 3.6 GB) or a parquet copy: ``permno``,
  ``DATE`` (a month-end ``YYYYMMDD`` integer), the 94 characteristics of GKX Internet Appendix
  Table A.6 (already lagged: the row dated month ``t`` pairs with the return of month
  ``t + 1``, GKX section 2.1) and ``sic2``. Values are RAW here; the cross-sectional ranking
  of GKX section 2.1 is :mod:`fapm_jax.data.preprocess`.
* :func:`load_returns` reads a CRSP monthly stock file (``PERMNO``, ``date``, ``RET``, and
  ``PRC``/``SHROUT`` for market equity), which the GKX file does not contain.

Every bad input raises a one-line :class:`DataError` naming the file, the column and the
first offending rows. Rows are counted from 1, the header excluded (row ``k`` of a CSV file is
its line ``k + 1``).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from ..core.errors import DataError


def gkx_characteristic_names() -> tuple[str, ...]:
    """The 94 characteristic names of the GKX ``datashare.csv`` header, in file order."""
    text = (resources.files("fapm_jax") / "data" / "gkx_datashare_columns.txt").read_text()
    cols = [c.strip() for c in text.strip().split(",")]
    return tuple(c for c in cols if c not in ("permno", "DATE", "sic2"))


#: The 94 GKX characteristics in ``datashare.csv`` header order.
GKX_CHARS: tuple[str, ...] = gkx_characteristic_names()
#: Tokens read as a missing value (besides an empty field).
NULL_TOKENS: tuple[str, ...] = ("", "NA", "NaN", "nan", "NAN", ".", "null", "NULL")
_MAX_ROWS_NAMED = 3

Source = str | Path


# --------------------------------------------------------------------------- helpers


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    raise DataError(f"{path}: unsupported file type (expected .csv, .csv.gz or .parquet)")


def _existing(path: Source) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return path


def _header(path: Path) -> dict[str, pl.DataType | None]:
    """Column names in file order with their stored dtype (``None`` for CSV: all text)."""
    try:
        if _kind(path) == "csv":
            return {c: None for c in pl.read_csv(path, n_rows=0, infer_schema=False).columns}
        return dict(pl.read_parquet_schema(path))
    except pl.exceptions.PolarsError as e:
        raise DataError(f"{path}: cannot read the header ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _rows_note(rows: list[int], total: int, extra: list[str] | None = None) -> str:
    """``row 3 (permno 10003, DATE 20000131), row 7 (...) (5 such rows)``."""
    parts = []
    for i, r in enumerate(rows[:_MAX_ROWS_NAMED]):
        parts.append(f"row {r}" + (f" ({extra[i]})" if extra else ""))
    return ", ".join(parts) + f" ({total} such row{'s' if total != 1 else ''})"


def _bad_number(s: pl.Expr, integer: bool = False) -> pl.Expr:
    """True where the text ``s`` is neither a missing token nor a number."""
    t = s.str.strip_chars()
    parsed = t.cast(pl.Int64 if integer else pl.Float64, strict=False)
    return s.is_not_null() & ~t.is_in(list(NULL_TOKENS)) & parsed.is_null()


def _as_text(path: Path) -> pl.LazyFrame:
    """The file with every column as text, for diagnosing values that did not parse."""
    if _kind(path) == "csv":
        return pl.scan_csv(path, infer_schema=False)
    lf = pl.scan_parquet(path)
    return lf.select(pl.all().cast(pl.String))


def _null_tokens_to_null(col: str) -> pl.Expr:
    c = pl.col(col)
    t = c.str.strip_chars()
    return pl.when(t.is_in(list(NULL_TOKENS))).then(None).otherwise(t).alias(col)


# --------------------------------------------------------------------------- characteristics


def _char_columns(path: Path, header: dict) -> tuple[str, str, list[str], bool]:
    """Check the header of a characteristics file; return (permno, DATE names, chars, has sic2)."""
    lower = {c.lower(): c for c in header}
    missing = [k for k in ("permno", "DATE") if k.lower() not in lower]
    if missing:
        raise DataError(f"{path}: missing required column(s) {', '.join(repr(m) for m in missing)}")
    key_p, key_d = lower["permno"], lower["date"]
    known = set(GKX_CHARS) | {key_p, key_d, "sic2"}
    unknown = [c for c in header if c not in known]
    if unknown:
        raise DataError(
            f"{path}: unknown column(s) {', '.join(repr(c) for c in unknown[:10])}"
            f"{' ...' if len(unknown) > 10 else ''} (not among permno, DATE, sic2 and the 94 GKX "
            "characteristics)"
        )
    chars = [c for c in GKX_CHARS if c in header]
    if not chars:
        raise DataError(f"{path}: no GKX characteristic column (only {', '.join(header)})")
    return key_p, key_d, chars, "sic2" in header


def _month_from_yyyymmdd(d: pl.Expr) -> pl.Expr:
    """``YYYYMM`` of a ``YYYYMMDD`` integer; null when it is not a calendar-like date."""
    y, m, day = d // 10000, (d // 100) % 100, d % 100
    ok = (y >= 1800) & (y <= 2200) & (m >= 1) & (m <= 12) & (day >= 1) & (day <= 31)
    return pl.when(ok).then(d // 100).otherwise(None).cast(pl.Int32)


def scan_characteristics(path: Source) -> pl.LazyFrame:
    """Lazily scan GKX's characteristics file (``.csv``, ``.csv.gz`` or ``.parquet``).

    The result has columns ``permno`` (Int64), ``month`` (Int32 ``YYYYMM`` of ``DATE``), the
    characteristics present (Float32, RAW values, in GKX header order whatever the file's order)
    and ``sic2`` (Int32, nullable) when the file has it. Values are cast to Float32 as they are
    read, so the full file (≈4.1M rows) occupies ≈1.6 GB in memory, not a float64 copy.

    Columns: ``permno`` and ``DATE`` are required (either order; matched case-insensitively);
    ``sic2`` is optional; at least one of the 94 GKX characteristics is required; any OTHER
    column is an error naming it (a typo must not silently drop a characteristic). Missing
    values may be empty, ``NA``, ``NaN`` or ``.`` (see :data:`NULL_TOKENS`); float NaN reads
    as missing too.

    The header is checked now; values are checked by :func:`load_characteristics`, which
    collects the scan (a plain ``collect()`` of this frame raises polars' own errors and
    truncates a non-integral ``sic2``, which :func:`load_characteristics` reports instead).
    """
    return _scan(_existing(path), sic_as_read=False)


def _scan(path: Path, sic_as_read: bool) -> pl.LazyFrame:
    """:func:`scan_characteristics`; ``sic_as_read`` keeps ``sic2`` Float64 for checking."""
    header = _header(path)
    key_p, key_d, chars, has_sic = _char_columns(path, header)
    if _kind(path) == "csv":
        schema = {c: pl.Float32 for c in header}
        schema.update({key_p: pl.Int64, key_d: pl.Int64})
        if has_sic:
            schema["sic2"] = pl.Float64  # some copies write "39.0"; must be integral
        lf = pl.scan_csv(path, schema=schema, null_values=list(NULL_TOKENS))
        num = {c: pl.col(c) for c in header}
    else:
        lf = pl.scan_parquet(path)
        num = {}
        for c, dt in header.items():
            e = _null_tokens_to_null(c) if dt == pl.String else pl.col(c)
            if c == key_d and dt in (pl.Date, pl.Datetime):
                e = (
                    e.dt.year().cast(pl.Int64) * 10000
                    + e.dt.month().cast(pl.Int64) * 100
                    + e.dt.day().cast(pl.Int64)
                )
            num[c] = e
    out = [
        num[key_p].cast(pl.Int64).alias("permno"),
        _month_from_yyyymmdd(num[key_d].cast(pl.Int64)).alias("month"),
    ]
    out += [num[c].cast(pl.Float32).fill_nan(None).alias(c) for c in chars]
    if has_sic:
        sic = num["sic2"].cast(pl.Float64).fill_nan(None)
        out.append((sic if sic_as_read else sic.cast(pl.Int32)).alias("sic2"))
    return lf.select(out)


def load_characteristics(source: Source | pl.LazyFrame) -> pl.DataFrame:
    """Collect :func:`scan_characteristics` and check every value (see :func:`check_characteristics`).

    ``source`` is a path or a frame from :func:`scan_characteristics`. A value that does not
    parse (a word in a characteristic column, a non-integer ``permno`` or ``DATE``) is a
    :class:`DataError` naming the file, column and first rows.
    """
    path = None
    if isinstance(source, pl.LazyFrame):
        lf, where = source, "characteristics frame"
    else:
        path = _existing(source)
        lf, where = _scan(path, sic_as_read=True), str(path)
    # Plain CSV: the in-memory engine was faster at the same peak (3.6 GB file: 21 s, 2.2 GiB
    # against 26 s, 2.1 GiB); a gzip file is decompressed whole by it, so that one streams.
    gz = path is not None and path.name.lower().endswith(".gz")
    try:
        df = lf.collect(engine="streaming" if gz else "in-memory")
    except pl.exceptions.PolarsError as e:
        if path is None:
            raise DataError(f"{where}: cannot read ({_first_line(e)})") from None
        raise _diagnose_parse(path, e) from None
    return _finish_characteristics(df, where, path)


def _finish_characteristics(df: pl.DataFrame, where: str, path: Path | None) -> pl.DataFrame:
    if "sic2" in df.columns and df.schema["sic2"].is_float():
        s = df["sic2"]
        bad = s.is_not_null() & (s != s.round())
        if bad.any():
            raise DataError(_value_message(df, where, "sic2", bad, "non-integer value", path))
    if "sic2" in df.columns:
        df = df.with_columns(pl.col("sic2").cast(pl.Int32))
    check_characteristics(df, where, path)
    return df


def check_characteristics(
    df: pl.DataFrame, where: str = "characteristics frame", path: Path | None = None
) -> None:
    """Check a loaded characteristics frame: key columns present and non-null, ``month`` a
    ``YYYYMM`` date, no duplicate ``(permno, month)``, characteristics numeric and finite.

    Raises :class:`DataError` (one line, naming ``where``, the column and the first rows).
    """
    for col in ("permno", "month"):
        if col not in df.columns:
            raise DataError(f"{where}: missing required column '{col}'")
    chars = [c for c in GKX_CHARS if c in df.columns]
    if not chars:
        raise DataError(f"{where}: no GKX characteristic column")
    date_col = "DATE" if path is not None else "month"
    for col, what in (
        ("permno", "missing permno"),
        ("month", "missing or unparseable date (want a YYYYMMDD integer)"),
    ):
        bad = df[col].is_null()
        if col == "month" and not bad.any():
            mm = df["month"] % 100
            bad = (mm < 1) | (mm > 12)
        if bad.any():
            raise DataError(_value_message(df, where, date_col if col == "month" else col, bad, what, path))
    for c in chars:
        if not df.schema[c].is_float():
            raise DataError(f"{where}: column '{c}' is {df.schema[c]}, not numeric")
        bad = df[c].is_infinite()
        if bad.any():
            raise DataError(_value_message(df, where, c, bad, "infinite value", path))
    key = df["month"].cast(pl.Int64) * 10**10 + df["permno"]
    dup = key.is_duplicated()
    if dup.any():
        rows = np.flatnonzero(dup.to_numpy())
        first = rows[0]
        raise DataError(
            f"{where}: column 'permno'/'{date_col}': duplicate (permno, month) "
            f"({df['permno'][int(first)]}, {df['month'][int(first)]}) in "
            f"{_rows_note([int(r) + 1 for r in rows], rows.size)}"
        )


def _value_message(
    df: pl.DataFrame, where: str, col: str, bad: pl.Series, what: str, path: Path | None
) -> str:
    rows = np.flatnonzero(bad.to_numpy())
    head = rows[:_MAX_ROWS_NAMED]
    raw = None
    if path is not None and col == "DATE":  # the parsed month is null: show the raw text
        text = _as_text(path).with_row_index("_row").filter(pl.col("_row").is_in(head.tolist()))
        raw = text.collect()
        date_name = next(c for c in raw.columns if c.lower() == "date")
        raw_vals = dict(zip(raw["_row"].to_list(), raw[date_name].to_list()))
    extra = []
    for r in head:
        r = int(r)
        if raw is not None:
            extra.append(f"permno {df['permno'][r]}, value {raw_vals.get(r)!r}")
        elif col == "permno":
            extra.append(f"month {df['month'][r]}")
        else:
            extra.append(f"permno {df['permno'][r]}, month {df['month'][r]}, value {df[col][r]!r}")
    return f"{where}: column '{col}': {what} in {_rows_note([int(r) + 1 for r in rows], rows.size, extra)}"


def _diagnose_parse(path: Path, err: BaseException) -> DataError:
    """Find the column and first rows behind a parse failure by re-reading them as text."""
    header = _header(path)
    lower = {c.lower(): c for c in header}
    named = re.search(r"column '([^']+)'", str(err))
    cols = [named.group(1)] if named and named.group(1) in header else list(header)
    text = _as_text(path).with_row_index("_row", offset=1)
    for col in cols:
        integer = col in (lower.get("permno"), lower.get("date"))
        found = (
            text.filter(_bad_number(pl.col(col), integer=integer))
            .select(
                "_row",
                pl.col(col),
                pl.col(lower["permno"]).alias("_permno"),
                pl.col(lower["date"]).alias("_date"),
                pl.len().alias("_n"),
            )
            .head(_MAX_ROWS_NAMED)
            .collect(engine="streaming")
        )
        if found.height:
            extra = [
                f"permno {p}, DATE {d}, value {v!r}"
                for p, d, v in zip(found["_permno"], found["_date"], found[col])
            ]
            what = (
                "unparseable date (want a YYYYMMDD integer)"
                if col == lower.get("date")
                else "non-integer value"
                if integer
                else "non-numeric value"
            )
            return DataError(
                f"{path}: column '{col}': {what} in "
                f"{_rows_note(found['_row'].to_list(), int(found['_n'][0]), extra)}"
            )
    return DataError(f"{path}: cannot read ({_first_line(err)})")


# --------------------------------------------------------------------------- returns


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
    path = _existing(path)
    header = _header(path)
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
        if _kind(path) == "csv":
            raw = pl.read_csv(path, columns=cols, infer_schema=False)
        else:
            raw = pl.read_parquet(path, columns=cols)
    except pl.exceptions.PolarsError as e:
        raise DataError(f"{path}: cannot read ({_first_line(e)})") from None
    raw = raw.rename({lower[k]: k for k in lower if lower[k] in cols}).with_row_index("_row", offset=1)

    def fail(col_key: str, bad: pl.Series, what: str):
        sub = raw.filter(bad)
        extra = [
            f"permno {p}, date {d}, value {v!r}"
            for p, d, v in zip(
                sub["permno"].head(_MAX_ROWS_NAMED),
                sub["date"].head(_MAX_ROWS_NAMED),
                sub[col_key].head(_MAX_ROWS_NAMED),
            )
        ]
        raise DataError(
            f"{path}: column '{lower[col_key]}': {what} in "
            f"{_rows_note(sub['_row'].to_list(), sub.height, extra)}"
        )

    def number(key: str, integer: bool = False) -> pl.Series:
        s = raw[key]
        if s.dtype == pl.String:
            s = raw.select(_null_tokens_to_null(key))[key]
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
                f"{where}: column 'exchcd': non-integer value in {_rows_note((rows + 1).tolist(), rows.size)}"
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
                f"{where}: column '{col}': missing value in {_rows_note((rows + 1).tolist(), rows.size)}"
            )
    for col in ("ret", "me"):
        rows = np.flatnonzero(df[col].is_infinite().to_numpy())
        if rows.size:
            raise DataError(
                f"{where}: column '{col}': infinite value in {_rows_note((rows + 1).tolist(), rows.size)}"
            )
    key = df["month"].cast(pl.Int64) * 10**10 + df["permno"]
    rows = np.flatnonzero(key.is_duplicated().to_numpy())
    if rows.size:
        raise DataError(
            f"{where}: column 'permno': duplicate (permno, month) in "
            f"{_rows_note((rows + 1).tolist(), rows.size)}"
        )
    return df
