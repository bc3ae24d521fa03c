"""Machine-learning portfolios (paper section 4.2, Table 9) and what an investor also asks of
them: cumulative returns, drawdown, turnover and factor alphas with Newey–West t-statistics.

Each test month the stocks are sorted into deciles of a model's predicted next-month return;
decile ``d`` holds the stocks of ordinal ranks ``[(d − 1) n / 10, d n / 10)`` among the month's
``n`` forecasts, ties broken by ``permno`` (so every month's assignment is unique and the deciles
differ in size by at most one stock). A month with fewer than 10 stocks cannot fill ten deciles
and is left out (:func:`decile_returns` reports how many). Deciles are value-weighted by market
equity at ``t`` (``weighting="equal"``: equal weights); H−L buys decile 10 and sells decile 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from ..core.errors import DataError
from .hac import long_run_covariance
from .portfolios import sharpe

WEIGHTINGS = ("value", "equal")


def assign_deciles(frame: pl.DataFrame, model: str) -> pl.DataFrame:
    """``frame`` with ``decile`` (1 … 10) by ``model``'s forecast within each month (ties by
    ``permno``); months with fewer than 10 stocks dropped."""
    for col in ("permno", "month", model):
        if col not in frame.columns:
            raise DataError(f"deciles: column {col!r} missing")
    f = frame.with_columns(pl.len().over("month").alias("_n")).filter(pl.col("_n") >= 10)
    f = f.sort("month", model, "permno").with_columns(pl.int_range(pl.len()).over("month").alias("_rank"))
    return f.with_columns(((pl.col("_rank") * 10) // pl.col("_n") + 1).cast(pl.Int32).alias("decile")).drop(
        "_n", "_rank"
    )


def decile_weights(assigned: pl.DataFrame, weighting: str = "value") -> pl.DataFrame:
    """``assigned`` with ``weight``: each stock's weight within its (month, decile)."""
    if weighting not in WEIGHTINGS:
        raise DataError(f"deciles: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if weighting == "equal":
        return assigned.with_columns((1.0 / pl.len().over("month", "decile")).alias("weight"))
    return assigned.with_columns(
        (pl.col("mktcap") / pl.col("mktcap").sum().over("month", "decile")).alias("weight")
    )


def decile_returns(
    frame: pl.DataFrame, model: str, realised: str = "r", weighting: str = "value"
) -> tuple[pl.DataFrame, int]:
    """Per month and decile: the weighted forecast (``pred``) and realised return; plus the
    number of months dropped for having fewer than 10 stocks."""
    out = weighted_returns(decile_weights(assign_deciles(frame, model), weighting), model, realised)
    return out, frame["month"].n_unique() - out["month"].n_unique()


def weighted_returns(weights: pl.DataFrame, model: str, realised: str = "r") -> pl.DataFrame:
    """Per month and decile of :func:`decile_weights`' output: the weighted forecast (``pred``)
    and realised return."""
    return (
        weights.group_by("month", "decile")
        .agg(
            (pl.col("weight") * pl.col(model)).sum().alias("pred"),
            (pl.col("weight") * pl.col(realised)).sum().alias("realised"),
        )
        .sort("month", "decile")
    )


def long_short(dec: pl.DataFrame) -> pl.DataFrame:
    """H−L per month: decile 10 minus decile 1, forecast and realised."""
    hi = dec.filter(pl.col("decile") == 10).select(
        "month", pl.col("pred").alias("p10"), pl.col("realised").alias("r10")
    )
    lo = dec.filter(pl.col("decile") == 1).select(
        "month", pl.col("pred").alias("p1"), pl.col("realised").alias("r1")
    )
    j = hi.join(lo, on="month").sort("month")
    return j.select(
        "month",
        (pl.col("p10") - pl.col("p1")).alias("pred"),
        (pl.col("r10") - pl.col("r1")).alias("realised"),
    )


def decile_table(dec: pl.DataFrame) -> pl.DataFrame:
    """Table 9 for one model: per decile (and H−L) the mean forecast, mean realised return and
    its standard deviation (monthly, in the returns' units) and the annualised Sharpe ratio."""
    rows = []
    hl = long_short(dec)
    for label, part in [(str(d), dec.filter(pl.col("decile") == d)) for d in range(1, 11)] + [("H-L", hl)]:
        x = part["realised"].to_numpy()
        rows.append(
            {
                "decile": label,
                "pred": float(part["pred"].mean()),
                "avg": float(x.mean()),
                "sd": float(x.std(ddof=1)),
                "SR": sharpe(x),
            }
        )
    return pl.DataFrame(rows)


def max_drawdown(returns: np.ndarray) -> float:
    """Largest peak-to-trough fall of the wealth ``Π(1 + r)`` (a fraction, 0 … 1)."""
    wealth = np.cumprod(1.0 + np.asarray(returns, np.float64))
    peak = np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
    return float(np.max(1.0 - wealth / peak)) if wealth.size else 0.0


def turnover(weights: pl.DataFrame, realised: str = "r", leg: int = 10) -> float:
    """Average monthly turnover of decile ``leg``: ``½ Σ_i |w_{i,t+1} − w̃_{i,t}|`` with
    ``w̃_{i,t} = w_{i,t}(1 + r_{i,t+1}) / Σ_j w_{j,t}(1 + r_{j,t+1})`` the weights drifted by the
    month's returns (GKX's definition, halved so a full replacement is 1). Returns are excess
    returns here, a close stand-in for total returns at monthly frequency."""
    w = weights.filter(pl.col("decile") == leg).select("permno", "month", "weight", realised)
    months = sorted(w["month"].unique().to_list())
    if len(months) < 2:
        return float("nan")
    grow = w.with_columns((pl.col("weight") * (1 + pl.col(realised))).alias("g"))
    grow = grow.with_columns((pl.col("g") / pl.col("g").sum().over("month")).alias("drift"))
    nxt = {m: months[i + 1] for i, m in enumerate(months[:-1])}
    prev = (
        grow.filter(pl.col("month").is_in(list(nxt)))
        .with_columns(pl.col("month").replace_strict(nxt).alias("month"))
        .select("permno", "month", "drift")
    )
    cur = w.filter(pl.col("month").is_in(months[1:])).select("permno", "month", "weight")
    both = cur.join(prev, on=["permno", "month"], how="full", coalesce=True).fill_null(0.0)
    per = both.group_by("month").agg((0.5 * (pl.col("weight") - pl.col("drift")).abs().sum()).alias("to"))
    return float(per["to"].mean())


def hac_ols(y: np.ndarray, X: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients of ``y`` on ``X`` (include a constant column yourself) and their
    Newey–West (Bartlett, ``lag``) standard errors, no small-sample correction — statsmodels'
    ``OLS(y, X).fit(cov_type="HAC", cov_kwds={"maxlags": lag, "use_correction": False})``."""
    y, X = np.asarray(y, np.float64), np.asarray(X, np.float64)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise DataError(f"hac_ols: X must be [T, k] with T = {y.shape[0]}, got {X.shape}")
    XtX_inv = np.linalg.inv(X.T @ X)
    beta = XtX_inv @ X.T @ y
    u = (y - X @ beta)[:, None] * X
    cov = XtX_inv @ long_run_covariance(u, lag) @ XtX_inv
    return beta, np.sqrt(np.diag(cov))


def alpha_table(
    hl: pl.DataFrame, factors: pl.DataFrame, models: dict[str, Sequence[str]], lag: int
) -> pl.DataFrame:
    """H−L alpha (monthly) and its Newey–West t-statistic against each factor set in ``models``
    (label → factor columns of ``factors``, joined on ``month``), with the factor loadings."""
    j = hl.join(factors, on="month").drop_nulls()
    rows = []
    for label, cols in models.items():
        X = np.column_stack([np.ones(j.height)] + [j[c].to_numpy() for c in cols])
        beta, se = hac_ols(j["realised"].to_numpy(), X, lag)
        rows.append(
            {
                "factors": label,
                "alpha": float(beta[0]),
                "t_alpha": float(beta[0] / se[0]),
                **{f"beta_{c}": float(b) for c, b in zip(cols, beta[1:])},
                "months": j.height,
            }
        )
    return pl.DataFrame(rows)


def cumulative_log(hl: pl.DataFrame) -> np.ndarray:
    """Cumulative log return ``Σ log(1 + r)`` of the H−L series, month by month."""
    return np.cumsum(np.log1p(hl["realised"].to_numpy().astype(np.float64)))
