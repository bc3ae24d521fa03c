"""Reading a user's data files: type by extension, header, null tokens, and the one-line
messages every loader raises (:class:`~fapm_jax.core.errors.DataError` naming the file, the column
and the first offending rows; rows counted from 1, the header excluded)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..core.errors import DataError

#: Tokens read as a missing value (besides an empty field).
NULL_TOKENS: tuple[str, ...] = ("", "NA", "NaN", "nan", "NAN", ".", "null", "NULL")
MAX_ROWS_NAMED = 3

Source = str | Path


def kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    raise DataError(f"{path}: unsupported file type (expected .csv, .csv.gz or .parquet)")


def existing(path: Source) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return path


def read_header(path: Path) -> dict[str, pl.DataType | None]:
    """Column names in file order with their stored dtype (``None`` for CSV: all text)."""
    try:
        if kind(path) == "csv":
            return {c: None for c in pl.read_csv(path, n_rows=0, infer_schema=False).columns}
        return dict(pl.read_parquet_schema(path))
    except pl.exceptions.PolarsError as e:
        raise DataError(f"{path}: cannot read the header ({first_line(e)})") from None


def first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def rows_note(rows: list[int], total: int, extra: list[str] | None = None) -> str:
    """``row 3 (permno 10003, DATE 20000131), row 7 (...) (5 such rows)``."""
    parts = []
    for i, r in enumerate(rows[:MAX_ROWS_NAMED]):
        parts.append(f"row {r}" + (f" ({extra[i]})" if extra else ""))
    return ", ".join(parts) + f" ({total} such row{'s' if total != 1 else ''})"


def bad_number(s: pl.Expr, integer: bool = False) -> pl.Expr:
    """True where the text ``s`` is neither a missing token nor a number."""
    t = s.str.strip_chars()
    parsed = t.cast(pl.Int64 if integer else pl.Float64, strict=False)
    return s.is_not_null() & ~t.is_in(list(NULL_TOKENS)) & parsed.is_null()


def as_text(path: Path) -> pl.LazyFrame:
    """The file with every column as text, for diagnosing values that did not parse."""
    if kind(path) == "csv":
        return pl.scan_csv(path, infer_schema=False)
    lf = pl.scan_parquet(path)
    return lf.select(pl.all().cast(pl.String))


def null_tokens_to_null(col: str) -> pl.Expr:
    c = pl.col(col)
    t = c.str.strip_chars()
    return pl.when(t.is_in(list(NULL_TOKENS))).then(None).otherwise(t).alias(col)
