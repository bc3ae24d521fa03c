"""Loaders of the real Gu–Kelly–Xiu (2020) data: the characteristics file and CRSP returns.

* :func:`scan_characteristics` / :func:`load_characteristics` read GKX's ``datashare.csv``
  (Dacheng Xiu's site; about 4.1 million rows, 3.6 GB) or a parquet copy: ``permno``,
  ``DATE`` (a month-end ``YYYYMMDD`` integer), the 94 characteristics of GKX Internet Appendix
  Table A.6 (already lagged: the row dated month ``t`` pairs with the return of month
  ``t + 1``, GKX section 2.1) and ``sic2``. Values are RAW here; the cross-sectional ranking
  of GKX section 2.1 is :mod:`fapm_jax.data.preprocess`.
* CRSP returns, which the GKX file does not contain, are read by
  :mod:`~fapm_jax.data.crsp_returns`.

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
from .file_checks import (
    MAX_ROWS_NAMED,
    NULL_TOKENS,
    Source,
    as_text,
    bad_number,
    existing,
    first_line,
    kind,
    null_tokens_to_null,
    read_header,
    rows_note,
)


def gkx_characteristic_names() -> tuple[str, ...]:
    """The 94 characteristic names of the GKX ``datashare.csv`` header, in file order."""
    text = (resources.files("fapm_jax") / "data" / "gkx_datashare_columns.txt").read_text()
    cols = [c.strip() for c in text.strip().split(",")]
    return tuple(c for c in cols if c not in ("permno", "DATE", "sic2"))


#: The 94 GKX characteristics in ``datashare.csv`` header order.
GKX_CHARS: tuple[str, ...] = gkx_characteristic_names()


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
    characteristics present (Float64, RAW values, in GKX header order whatever the file's order)
    and ``sic2`` (Int32, nullable) when the file has it. Values are parsed as Float64, so a
    finite value beyond float32's range (``1e308``) stays what the file says and large raw
    values keep their order (no ties the data do not have); the ranks are stored in float32
    (:func:`~fapm_jax.data.preprocess.rank_expr`). The full file (≈4.1M rows) occupies ≈3.1 GB
    in memory while it is ranked.

    Columns: ``permno`` and ``DATE`` are required (either order; matched case-insensitively);
    ``sic2`` is optional; at least one of the 94 GKX characteristics is required; any OTHER
    column is an error naming it (a typo must not silently drop a characteristic). Missing
    values may be empty, ``NA``, ``NaN`` or ``.`` (see :data:`NULL_TOKENS`); float NaN reads
    as missing too.

    The header is checked now; values are checked by :func:`load_characteristics`, which
    collects the scan (a plain ``collect()`` of this frame raises polars' own errors and
    truncates a non-integral ``sic2``, which :func:`load_characteristics` reports instead).
    """
    return _scan(existing(path), sic_as_read=False)


def _scan(path: Path, sic_as_read: bool) -> pl.LazyFrame:
    """:func:`scan_characteristics`; ``sic_as_read`` keeps ``sic2`` Float64 for checking."""
    header = read_header(path)
    key_p, key_d, chars, has_sic = _char_columns(path, header)
    if kind(path) == "csv":
        schema = {c: pl.Float64 for c in header}
        schema.update({key_p: pl.Int64, key_d: pl.Int64})
        if has_sic:
            schema["sic2"] = pl.Float64  # some copies write "39.0"; must be integral
        lf = pl.scan_csv(path, schema=schema, null_values=list(NULL_TOKENS))
        num = {c: pl.col(c) for c in header}
    else:
        lf = pl.scan_parquet(path)
        num = {}
        for c, dt in header.items():
            e = null_tokens_to_null(c) if dt == pl.String else pl.col(c)
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
    out += [num[c].cast(pl.Float64).fill_nan(None).alias(c) for c in chars]
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
        path = existing(source)
        lf, where = _scan(path, sic_as_read=True), str(path)
    # Plain CSV: the in-memory engine was faster at the same peak (3.6 GB file: 21 s, 2.2 GiB
    # against 26 s, 2.1 GiB); a gzip file is decompressed whole by it, so that one streams.
    gz = path is not None and path.name.lower().endswith(".gz")
    try:
        df = lf.collect(engine="streaming" if gz else "in-memory")
    except pl.exceptions.PolarsError as e:
        if path is None:
            raise DataError(f"{where}: cannot read ({first_line(e)})") from None
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
            f"{rows_note([int(r) + 1 for r in rows], rows.size)}"
        )


def _value_message(
    df: pl.DataFrame, where: str, col: str, bad: pl.Series, what: str, path: Path | None
) -> str:
    rows = np.flatnonzero(bad.to_numpy())
    head = rows[:MAX_ROWS_NAMED]
    raw = None
    if path is not None and col == "DATE":  # the parsed month is null: show the raw text
        text = as_text(path).with_row_index("_row").filter(pl.col("_row").is_in(head.tolist()))
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
    return f"{where}: column '{col}': {what} in {rows_note([int(r) + 1 for r in rows], rows.size, extra)}"


def _diagnose_parse(path: Path, err: BaseException) -> DataError:
    """Find the column and first rows behind a parse failure by re-reading them as text."""
    header = read_header(path)
    lower = {c.lower(): c for c in header}
    named = re.search(r"column '([^']+)'", str(err))
    cols = [named.group(1)] if named and named.group(1) in header else list(header)
    text = as_text(path).with_row_index("_row", offset=1)
    for col in cols:
        integer = col in (lower.get("permno"), lower.get("date"))
        found = (
            text.filter(bad_number(pl.col(col), integer=integer))
            .select(
                "_row",
                pl.col(col),
                pl.col(lower["permno"]).alias("_permno"),
                pl.col(lower["date"]).alias("_date"),
                pl.len().alias("_n"),
            )
            .head(MAX_ROWS_NAMED)
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
                f"{rows_note(found['_row'].to_list(), int(found['_n'][0]), extra)}"
            )
    return DataError(f"{path}: cannot read ({first_line(err)})")
