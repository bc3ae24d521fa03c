"""The raw-file statistics of ``fapm data check`` (:class:`FileStats`): missing values by
characteristic and decade, the rows dropped and why, the source of market equity — counted from
the frames in memory while a panel is built (:func:`char_statistics`, called by
:func:`~fapm_jax.data.preprocess.gkx_panel_and_stats`) or from the files
(:func:`~fapm_jax.data.check.file_statistics`), and stored with the cached panel. It lies below
both :mod:`~fapm_jax.data.preprocess` and :mod:`~fapm_jax.data.check`, so that neither imports
the other."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl

from .crsp_returns import _returns_month, check_returns, next_month
from .file_checks import NULL_TOKENS, existing, kind, read_header
from .gkx_files import GKX_CHARS

#: What a returns argument may be (as :data:`fapm_jax.data.preprocess.ReturnSource`).
ReturnSource = str | Path | pl.DataFrame


#: Why a row of the characteristics file (month ``t``) is not in the panel, in report order.
DROP_REASONS: dict[str, str] = {
    "no_crsp_row": "no CRSP row for the stock in month t + 1",
    "letter_code": "a letter code in RET at t + 1 (CRSP's A, B, C, …)",
    "ret_missing": "RET empty or missing at t + 1",
    "ret_code": "a numeric missing code in RET at t + 1 (−66, −77, −88, −99: below −100%)",
}


@dataclasses.dataclass(frozen=True)
class FileStats:
    """What the report needs from the raw files beyond the panel, as counts (a few kB).

    Computed by :func:`~fapm_jax.data.preprocess.gkx_panel_and_stats` while it builds the
    panel (the raw frames are in memory then) or by :func:`file_statistics` from the files, and
    stored with the cached panel, so that a cached ``fapm data check`` reads no raw file.

    Attributes:
        file_chars: GKX characteristics of the characteristics file, GKX order.
        file_rows: rows of the characteristics file.
        decades: decades of the panel's months (``1990`` …), ascending;
            ``decade_rows``: panel rows of each.
        missing: per file characteristic, panel rows of each decade whose raw value is missing.
        dropped: rows of the file not in the panel, by :data:`DROP_REASONS` key.
        me_source: panel rows with market equity from CRSP at ``t`` (``crsp``) or ``mvel1``.
    """

    file_chars: tuple[str, ...]
    file_rows: int
    decades: tuple[int, ...]
    decade_rows: tuple[int, ...]
    missing: Mapping[str, tuple[int, ...]]
    dropped: Mapping[str, int]
    me_source: Mapping[str, int]

    @property
    def panel_rows(self) -> int:
        return int(sum(self.decade_rows))

    def to_json(self) -> dict:
        return {
            "file_chars": list(self.file_chars),
            "file_rows": self.file_rows,
            "decades": list(self.decades),
            "decade_rows": list(self.decade_rows),
            "missing": {c: list(v) for c, v in self.missing.items()},
            "dropped": dict(self.dropped),
            "me_source": dict(self.me_source),
        }

    @classmethod
    def from_json(cls, blob: Mapping) -> FileStats:
        return cls(
            file_chars=tuple(blob["file_chars"]),
            file_rows=int(blob["file_rows"]),
            decades=tuple(int(d) for d in blob["decades"]),
            decade_rows=tuple(int(n) for n in blob["decade_rows"]),
            missing={c: tuple(int(n) for n in v) for c, v in blob["missing"].items()},
            dropped={k: int(v) for k, v in blob["dropped"].items()},
            me_source={k: int(v) for k, v in blob["me_source"].items()},
        )


def char_statistics(chars: pl.DataFrame, rets: pl.DataFrame, returns: ReturnSource) -> FileStats:
    """:func:`file_statistics` from the frames in memory while a panel is built: ``chars`` the
    whole characteristics frame as loaded (every column of the file), ``rets`` the loaded
    returns and ``returns`` what they were loaded from (re-read for the return status, which the
    loaded frame no longer tells). ``me_source`` is left empty: it needs the panel
    (:func:`me_source_counts`)."""
    file_chars = tuple(c for c in GKX_CHARS if c in chars.columns)
    # a row is in the panel when its stock has a return in t + 1 (the inner join of _build)
    nxt = rets.filter(pl.col("ret").is_not_null()).select("permno", pl.col("month").alias("_nxt"))
    rows = (
        chars.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"),
            "permno",
            next_month(pl.col("month")).cast(pl.Int32).alias("_nxt"),
        )
        .join(nxt, on=["permno", "_nxt"], how="semi")["_row"]
        .to_numpy()
    )
    mask = np.zeros(chars.height, bool)
    mask[rows] = True
    frame = chars.select("month", *file_chars).with_columns(pl.Series("_in", mask))
    decades, counts_rows, counts = _decade_counts(
        frame, [_is_missing(c, chars.schema[c]) for c in file_chars], "_in"
    )
    del frame
    return FileStats(
        file_chars=file_chars,
        file_rows=chars.height,
        decades=decades,
        decade_rows=counts_rows,
        missing={c: tuple(counts[i]) for i, c in enumerate(file_chars)},
        dropped=dropped_rows(chars.select("permno", "month"), return_status(returns)),
        me_source={},
    )


def me_source_counts(permno: np.ndarray, month: np.ndarray, rets: pl.DataFrame) -> dict[str, int]:
    """``FileStats.me_source`` of the panel rows ``(permno, month)`` given the loaded returns."""
    keys = pl.DataFrame({"permno": permno.astype(np.int64), "month": month.astype(np.int32)})
    return _me_counts(keys, rets)


def _is_missing(col: str, dtype: pl.DataType) -> pl.Expr:
    """True where the raw value of ``col`` is missing (null, or NaN in a float column)."""
    x = pl.col(col)
    return (x.is_null() | x.is_nan()) if dtype.is_float() else x.is_null()


def _decade_counts(frame: pl.DataFrame, missing: list[pl.Expr], counted: str | None):
    """Panel rows by decade and missing values by characteristic and decade among the rows of
    ``frame`` (``month`` and what ``missing``, one boolean expression per characteristic, read)
    whose boolean column ``counted`` is true (``None``: every row): ``(decades, rows [D],
    counts [C][D])``, decades without rows left out."""
    if counted is None:
        aggs = [pl.len().alias("_rows"), *[m.sum().alias(f"_c{i}") for i, m in enumerate(missing)]]
    else:
        c = pl.col(counted)
        aggs = [c.sum().alias("_rows"), *[(m & c).sum().alias(f"_c{i}") for i, m in enumerate(missing)]]
    by = (
        frame.group_by((pl.col("month") // 1000 * 10).alias("_decade"))
        .agg(*aggs)
        .filter(pl.col("_rows") > 0)
        .sort("_decade")
    )
    decades = tuple(int(d) for d in by["_decade"].to_list())
    rows = tuple(int(n) for n in by["_rows"].to_list())
    counts = [tuple(int(n) for n in by[f"_c{i}"].to_list()) for i in range(len(missing))]
    return decades, rows, counts


def return_status(returns: ReturnSource) -> pl.DataFrame:
    """``permno``, ``month`` and ``status`` of every row of a CRSP returns file.

    ``status`` is ``"ok"`` where :func:`~fapm_jax.data.crsp_returns.load_returns` reads a return,
    else why it reads none: ``"letter_code"`` (a non-numeric token such as CRSP's ``C``),
    ``"ret_missing"`` (empty or a missing token, :data:`~fapm_jax.data.file_checks.NULL_TOKENS`)
    or ``"ret_code"`` (a number below −1, CRSP's numeric missing codes). A loaded frame (the
    output form of ``load_returns``) only tells ``"ok"`` from ``"ret_missing"``. The file is
    assumed to have passed ``load_returns`` (its keys parse and are unique).
    """
    if isinstance(returns, pl.DataFrame):
        df = check_returns(returns)
        status = pl.when(pl.col("ret").is_null()).then(pl.lit("ret_missing")).otherwise(pl.lit("ok"))
        return df.select("permno", "month", status.alias("status"))
    path = existing(returns)
    lower = {c.lower(): c for c in read_header(path) if c.lower() in ("permno", "date", "ret")}
    cols = [lower["permno"], lower["date"], lower["ret"]]
    if kind(path) == "csv":
        raw = pl.read_csv(path, columns=cols, infer_schema=False)
    else:
        raw = pl.read_parquet(path, columns=cols)
    raw = raw.select(cols).rename({lower[k]: k for k in ("permno", "date", "ret")})
    permno = raw["permno"]
    if permno.dtype == pl.String:
        permno = permno.str.strip_chars()
    ret = raw["ret"]
    if ret.dtype == pl.String:
        text = ret.str.strip_chars()
        value = text.cast(pl.Float64, strict=False)
        absent = text.is_null() | text.is_in(list(NULL_TOKENS))
        letter = ~absent & value.is_null()
    else:
        value = ret.cast(pl.Float64)
        absent = value.is_null() | value.is_nan()
        letter = pl.Series([False] * raw.height)
    frame = pl.DataFrame(
        {
            "permno": permno.cast(pl.Int64),
            "month": _returns_month(raw["date"]),
            "_absent": absent.fill_null(True),
            "_letter": letter.fill_null(False),
            "_value": value,
        }
    )
    status = (
        pl.when(pl.col("_absent"))
        .then(pl.lit("ret_missing"))
        .when(pl.col("_letter"))
        .then(pl.lit("letter_code"))
        .when(pl.col("_value").is_nan())
        .then(pl.lit("ret_missing"))
        .when(pl.col("_value") < -1.0)
        .then(pl.lit("ret_code"))
        .otherwise(pl.lit("ok"))
    )
    return frame.select("permno", "month", status.alias("status"))


def dropped_rows(char_keys: pl.DataFrame, status: pl.DataFrame) -> dict[str, int]:
    """How many rows of the characteristics file have no return in ``t + 1``, by reason.

    ``char_keys``: ``permno``, ``month`` of every characteristics row; ``status``: the
    :func:`return_status` of the returns. A row is kept (as in ``preprocess._build``) when the
    returns have a usable return for its stock in the month after; otherwise it counts under
    one :data:`DROP_REASONS` key.
    """
    nxt = status.select(pl.col("permno"), pl.col("month").alias("_nxt"), pl.col("status"))
    joined = char_keys.select(
        pl.col("permno").cast(pl.Int64), next_month(pl.col("month")).cast(pl.Int32).alias("_nxt")
    ).join(nxt, on=["permno", "_nxt"], how="left")
    counts = dict(joined.group_by("status").len().iter_rows())
    out = {key: int(counts.get(key, 0)) for key in DROP_REASONS}
    out["no_crsp_row"] = int(counts.get(None, 0))
    return out


def _me_counts(keys: pl.DataFrame, rets: pl.DataFrame) -> dict[str, int]:
    me = keys.join(rets.select("permno", "month", "me"), on=["permno", "month"], how="left")["me"]
    n_crsp = int(me.is_not_null().sum())
    return {"crsp": n_crsp, "mvel1": keys.height - n_crsp}
