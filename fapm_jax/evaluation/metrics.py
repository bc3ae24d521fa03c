"""Out-of-sample evaluation as the paper reports it (section 3.1, Table 1).

``R²_oos = 1 − Σ (r − r̂)² / Σ r²`` over test stock-months, against a zero forecast (Equation
FAPM: R²_oos). Reported pooled over all test years (the paper's "spliced" 30-year series), per
test year, as the mean of the yearly values (Algorithm 2, line 17), and within the top and
bottom ``n`` stocks by market value each month (Table 1's top-1000 / bottom-1000 rows).

These are post-processing functions on a predictions table (polars, float64 sums).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ..core.errors import DataError

PREDICTION_COLUMNS = ("permno", "month", "r", "r_hat")


def r2_oos(r: np.ndarray, r_hat: np.ndarray) -> float:
    """Pooled ``1 − Σ (r − r̂)² / Σ r²`` in float64 (zero benchmark, no demeaning)."""
    r = np.asarray(r, np.float64)
    r_hat = np.asarray(r_hat, np.float64)
    denom = np.sum(r * r)
    if r.size == 0 or denom == 0:
        return float("nan")
    return float(1.0 - np.sum((r - r_hat) ** 2) / denom)


def _r2_expr() -> pl.Expr:
    r = pl.col("r").cast(pl.Float64)
    e = r - pl.col("r_hat").cast(pl.Float64)
    return (1.0 - (e * e).sum() / (r * r).sum()).alias("r2_oos")


def _check(pred: pl.DataFrame, need: tuple[str, ...]) -> None:
    missing = [c for c in need if c not in pred.columns]
    if missing:
        raise DataError(f"predictions: missing column(s) {', '.join(missing)}")
    for c in ("r", "r_hat"):
        bad = pred.filter(~pl.col(c).cast(pl.Float64).is_finite())
        if bad.height:
            row = bad.row(0, named=True)
            raise DataError(
                f"predictions: non-finite {c} at permno {row.get('permno')}, month {row.get('month')}"
            )


def size_group_flags(pred: pl.DataFrame, n: int) -> pl.DataFrame:
    """Add boolean columns ``top`` and ``bottom``: among each month's rows, the ``n`` largest
    and the ``n`` smallest stocks by ``mktcap`` (ties broken by order of appearance)."""
    _check(pred, PREDICTION_COLUMNS + ("mktcap",))
    if n < 1:
        raise DataError(f"size group: n must be >= 1, got {n}")
    by = pl.col("mktcap")
    return pred.with_columns(
        (by.rank("ordinal", descending=True).over("month") <= n).alias("top"),
        (by.rank("ordinal").over("month") <= n).alias("bottom"),
    )


def r2_table(pred: pl.DataFrame, size_group: int | None = 1000) -> pl.DataFrame:
    """Table 1's rows for one model: ``sample`` (``all``, ``top-n``, ``bottom-n``),
    ``r2_oos`` (fraction, not percent) and ``n_obs``. ``size_group=None`` skips the size rows."""
    need = PREDICTION_COLUMNS + (("mktcap",) if size_group else ())
    _check(pred, need)
    rows = [pred.select(pl.lit("all").alias("sample"), _r2_expr(), pl.len().alias("n_obs"))]
    if size_group:
        flagged = size_group_flags(pred, size_group)
        for name in ("top", "bottom"):
            sub = flagged.filter(pl.col(name))
            rows.append(
                sub.select(
                    pl.lit(f"{name}-{size_group}").alias("sample"), _r2_expr(), pl.len().alias("n_obs")
                )
            )
    return pl.concat(rows).with_columns(pl.col("n_obs").cast(pl.Int64))


def r2_by_year(pred: pl.DataFrame) -> pl.DataFrame:
    """``R²_oos`` of each test year: columns ``year``, ``r2_oos``, ``n_obs``."""
    _check(pred, PREDICTION_COLUMNS)
    return (
        pred.group_by((pl.col("month") // 100).alias("year"))
        .agg(_r2_expr(), pl.len().alias("n_obs"))
        .sort("year")
        .with_columns(pl.col("year").cast(pl.Int32), pl.col("n_obs").cast(pl.Int64))
    )


def r2_summary(pred: pl.DataFrame, size_group: int | None = 1000) -> pl.DataFrame:
    """One long table: the pooled rows of :func:`r2_table`, ``mean-of-years`` (Algorithm 2,
    line 17) and one row per test year (``sample = "year"``, ``year`` set)."""
    pooled = r2_table(pred, size_group).with_columns(pl.lit(None, pl.Int32).alias("year"))
    yearly = r2_by_year(pred)
    mean_row = pl.DataFrame(
        {
            "sample": ["mean-of-years"],
            "r2_oos": [float(yearly["r2_oos"].mean())],
            "n_obs": [int(yearly["n_obs"].sum())],
            "year": [None],
        },
        schema={"sample": pl.String, "r2_oos": pl.Float64, "n_obs": pl.Int64, "year": pl.Int32},
    )
    per_year = yearly.select(pl.lit("year").alias("sample"), "r2_oos", "n_obs", "year")
    return pl.concat([pooled, mean_row, per_year]).select("sample", "year", "r2_oos", "n_obs")


def default_size_group(pred_or_month: pl.DataFrame | np.ndarray) -> int:
    """The paper's 1,000, or a third of the median monthly cross-section when months hold fewer
    than 2,000 stocks (so that the top and bottom groups are disjoint and informative)."""
    month = pred_or_month["month"].to_numpy() if isinstance(pred_or_month, pl.DataFrame) else pred_or_month
    _, counts = np.unique(np.asarray(month), return_counts=True)
    median = int(np.median(counts)) if counts.size else 0
    return 1000 if median >= 2000 else max(1, median // 3)
