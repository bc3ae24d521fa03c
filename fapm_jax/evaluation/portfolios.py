"""Bottom-up portfolio forecasts (paper section 4.1, Algorithm 3, Equation (3), Tables 7–8).

Each test month ``t`` the stocks are sorted on their characteristics at ``t`` into the 30
portfolios of the paper: an S&P 500 proxy (the 500 largest stocks, value-weighted); the 24
long-only 2 × 3 subcomponents — size (median breakpoint, or NYSE breakpoints when exchange
codes are given) × the 30th/70th percentiles of book-to-market (growth / neutral / value),
operating profitability (weak / neutral / robust), asset growth (aggressive / neutral /
conservative: *low* growth is conservative) and momentum (down / medium / up); and the
long–short factors built from them as Fama and French do:

* HML = ½(small value + big value) − ½(small growth + big growth), and likewise
  RMW (robust − weak), CMA (conservative − aggressive), UMD (up − down);
* SMB = the mean over the value, profitability and investment sorts of
  (mean of the three small portfolios − mean of the three big ones) (Fama–French 2015).

A portfolio's realised return is the value-weighted (market equity at ``t``) mean of its stocks'
realised returns of ``t + 1``; its forecast is the same weights on each model's predicted
returns (Equation (3)), so every portfolio is a fixed linear map of the stock-level forecasts.

Characteristics (:class:`PortfolioSpec`): the paper's Algorithm 3 names ``bm, operprof, agr,
mom1m, mve1``; we follow it except for momentum, where we use the conventional 12-month
momentum ``mom12m`` (Fama–French's UMD sorts on months t−12…t−2); pass
``momentum="mom1m"`` for the paper's literal choice. Size is market equity at ``t``.
A sort whose characteristic the panel lacks is left out (and its portfolios with it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from ..core.errors import DataError

#: The four characteristic sorts: name → (attribute of :class:`PortfolioSpec` holding the
#: characteristic, labels of the low / middle / high terciles — unique across sorts, so each of
#: the 24 subcomponents has its own name — long–short factor, sign: +1 when the factor is high
#: minus low, −1 when low minus high).
SORTS: dict[str, tuple[str, tuple[str, str, str], str, int]] = {
    "value": ("value", ("growth", "neutral B/M", "value"), "HML", +1),
    "profitability": ("profitability", ("weak", "neutral OP", "robust"), "RMW", +1),
    "investment": ("investment", ("conservative", "neutral INV", "aggressive"), "CMA", -1),
    "momentum": ("momentum", ("down", "medium", "up"), "UMD", +1),
}
#: The sorts whose size legs make up SMB (Fama–French 2015).
SMB_SORTS = ("value", "profitability", "investment")


@dataclasses.dataclass(frozen=True)
class PortfolioSpec:
    """Which characteristics sort the portfolios, and the breakpoints (defaults: the paper's,
    with 12-month momentum; see the module docstring)."""

    value: str = "bm"
    profitability: str = "operprof"
    investment: str = "agr"
    momentum: str = "mom12m"
    size_breakpoint: float = 0.5
    low: float = 0.3
    high: float = 0.7
    sp500: int = 500


def _labels(x: pl.Expr, lo: pl.Expr, hi: pl.Expr, names: tuple[str, str, str]) -> pl.Expr:
    return (
        pl.when(x <= lo)
        .then(pl.lit(names[0]))
        .when(x > hi)
        .then(pl.lit(names[2]))
        .otherwise(pl.lit(names[1]))
    )


def assign(
    frame: pl.DataFrame, spec: PortfolioSpec = PortfolioSpec(), exchange: str | None = None
) -> pl.DataFrame:
    """``frame`` (``month, mktcap`` and the characteristics) with a ``size`` label (small / big)
    and one label column per available sort, breakpoints per month (among NYSE stocks,
    ``exchange == 1`` in CRSP's EXCHCD, when an ``exchange`` column is named — Fama and French's
    rule; a month without NYSE stocks falls back to all stocks), and an ``sp500`` flag (the
    ``spec.sp500`` largest stocks of the month)."""
    for col in ("month", "mktcap"):
        if col not in frame.columns:
            raise DataError(f"portfolios: column {col!r} missing")
    if exchange is not None and exchange not in frame.columns:
        raise DataError(f"portfolios: exchange column {exchange!r} missing")
    base = pl.col(exchange) == 1 if exchange else pl.lit(True)

    def breakpoint(x: pl.Expr, q: float) -> pl.Expr:
        at = x.filter(base).quantile(q, "linear").over("month")
        return pl.coalesce(at, x.quantile(q, "linear").over("month")) if exchange else at

    out = frame.with_columns(
        pl.when(pl.col("mktcap") <= breakpoint(pl.col("mktcap"), spec.size_breakpoint))
        .then(pl.lit("small"))
        .otherwise(pl.lit("big"))
        .alias("size"),
        (pl.col("mktcap").rank("ordinal", descending=True).over("month") <= spec.sp500).alias("sp500"),
    )
    labels = []
    for sort, (attr, names, _, _) in SORTS.items():
        col = getattr(spec, attr)
        if col not in frame.columns:
            continue
        x = pl.col(col)
        lo, hi = breakpoint(x, spec.low), breakpoint(x, spec.high)
        labels.append(_labels(x, lo, hi, names).alias(sort))
    return out.with_columns(labels)


def available_sorts(frame: pl.DataFrame) -> list[str]:
    return [s for s in SORTS if s in frame.columns]


def portfolio_returns(assigned: pl.DataFrame, values: Sequence[str]) -> pl.DataFrame:
    """Long format ``month, portfolio`` and the value-weighted mean of every column in
    ``values`` (the realised ``r`` and each model's forecast): the S&P 500 proxy, every
    size × tercile subcomponent of the available sorts, and the long–short factors."""
    assigned = assigned.with_columns([pl.col(c).cast(pl.Float64) for c in ("mktcap", *values)])
    vw = [((pl.col(v) * pl.col("mktcap")).sum() / pl.col("mktcap").sum()).alias(v) for v in values]
    parts = [
        assigned.filter(pl.col("sp500"))
        .group_by("month")
        .agg(vw)
        .with_columns(pl.lit("S&P500").alias("portfolio"))
    ]
    sorts = available_sorts(assigned)
    for sort in sorts:
        g = assigned.group_by("month", "size", sort).agg(vw)
        parts.append(
            g.select(
                "month", (pl.col("size").str.to_titlecase() + " " + pl.col(sort)).alias("portfolio"), *values
            )
        )
    long = pl.concat([p.select("month", "portfolio", *values) for p in parts])
    wide = {v: long.pivot(on="portfolio", index="month", values=v).sort("month") for v in values}
    months = wide[values[0]]["month"]
    rows = []
    for v in values:
        w = wide[v]

        def col(name):
            return w[name].to_numpy() if name in w.columns else np.full(w.height, np.nan)

        factors = {}
        for sort in sorts:
            _, (lo, _, hi), fac, sign = SORTS[sort]
            long_leg = 0.5 * (col(f"Small {hi}") + col(f"Big {hi}"))
            short_leg = 0.5 * (col(f"Small {lo}") + col(f"Big {lo}"))
            factors[fac] = sign * (long_leg - short_leg)
        smb = [
            np.mean([col(f"Small {n}") for n in SORTS[s][1]], axis=0)
            - np.mean([col(f"Big {n}") for n in SORTS[s][1]], axis=0)
            for s in SMB_SORTS
            if s in sorts
        ]
        if smb:
            factors["SMB"] = np.mean(smb, axis=0)
        rows.append(
            pl.DataFrame({"month": months, **factors}).unpivot(
                index="month", variable_name="portfolio", value_name=v
            )
        )
    fac = rows[0]
    for extra in rows[1:]:
        fac = fac.join(extra, on=["month", "portfolio"])
    return pl.concat([long, fac.select("month", "portfolio", *values)]).sort("portfolio", "month")


def portfolio_order(names: Sequence[str]) -> list[str]:
    """Table 7's row order: the S&P 500 proxy and the factors, then per sort (value, investment,
    profitability, momentum) big long leg, big short leg, big middle, and the same for small."""
    order = ["S&P500", "SMB", "HML", "RMW", "CMA", "UMD"]
    for sort in ("value", "investment", "profitability", "momentum"):
        _, (lo, mid, hi), _, sign = SORTS[sort]
        legs = (hi, lo, mid) if sign > 0 else (lo, hi, mid)
        order += [f"{size} {leg}" for size in ("Big", "Small") for leg in legs]
    known = [n for n in order if n in names]
    return known + sorted(n for n in names if n not in order)


def portfolio_r2(returns: pl.DataFrame, models: Sequence[str], realised: str = "r") -> pl.DataFrame:
    """Table 7: per portfolio and model, ``R²_oos = 1 − Σ(R − R̂)² / Σ R²`` over the months in
    which the portfolio has stocks (zero benchmark, as for stocks)."""
    out = (
        returns.drop_nulls(realised)
        .filter(pl.col(realised).is_not_nan())
        .group_by("portfolio")
        .agg(
            *[
                (1 - ((pl.col(realised) - pl.col(m)) ** 2).sum() / (pl.col(realised) ** 2).sum()).alias(m)
                for m in models
            ],
            pl.len().alias("months"),
        )
    )
    order = portfolio_order(out["portfolio"].to_list())
    return (
        out.with_columns(pl.col("portfolio").cast(pl.Enum(order)))
        .sort("portfolio")
        .with_columns(pl.col("portfolio").cast(pl.String))
    )


def sharpe(x: np.ndarray, periods: int = 12) -> float:
    """Annualised Sharpe ratio of monthly (excess) returns: ``mean / sd · sqrt(periods)``
    (sample standard deviation, ``ddof = 1``)."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if x.size < 2 or x.std(ddof=1) == 0:
        return float("nan")
    return float(x.mean() / x.std(ddof=1) * math.sqrt(periods))


def campbell_thompson(sr: float, r2: float) -> float:
    """``SR* = sqrt((SR² + R²) / (1 − R²))`` (Campbell and Thompson 2008, Equation (4)), for
    per-period ``SR`` and ``R²``; NaN when ``R² < 0`` (no timing gain; the paper's "–")."""
    if not np.isfinite(r2) or r2 < 0 or r2 >= 1:
        return float("nan")
    return math.sqrt((sr * sr + r2) / (1.0 - r2))


def timing_gains(
    returns: pl.DataFrame, r2: pl.DataFrame, models: Sequence[str], realised: str = "r"
) -> pl.DataFrame:
    """Table 8: per portfolio, the buy-and-hold annualised Sharpe ratio ``SR`` of its realised
    monthly returns over the test months and, per model, the annualised gain ``SR* − SR`` of a
    market timer using the model's forecasts (monthly SR and R² in Equation (4), both then
    annualised by ``sqrt(12)``); NaN where the model's R²_oos < 0."""
    rows = []
    for p in r2["portfolio"].to_list():
        x = returns.filter(pl.col("portfolio") == p)[realised].to_numpy()
        sr_m = sharpe(x, 1)
        row = {"portfolio": p, "SR": sr_m * math.sqrt(12)}
        for m in models:
            star = campbell_thompson(sr_m, float(r2.filter(pl.col("portfolio") == p)[m][0]))
            row[m] = (star - sr_m) * math.sqrt(12) if np.isfinite(star) else float("nan")
        rows.append(row)
    return pl.DataFrame(rows)
