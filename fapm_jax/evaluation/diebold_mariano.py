"""Diebold–Mariano model comparison as in Gu, Kelly and Xiu (2020, section 3.1, Table 3).

For two models ``a`` (model 1) and ``b`` (model 2) with out-of-sample stock-level forecasts,
the loss differential of test month ``t`` is the cross-sectional average over the stocks of
that month::

    d_t = mean_i [ (r_it − r̂(a)_it)² − (r_it − r̂(b)_it)² ]

and the statistic is ``DM = mean(d) / se``, where ``se`` is the Newey–West (Bartlett kernel)
HAC standard error of the sample mean of ``d`` (:func:`newey_west_se`). Averaging over the
cross-section first makes ``d_t`` nearly serially uncorrelated even though the stock-level
errors are strongly cross-correlated, which is why GKX build the test this way.

Sign convention (GKX's): **a positive statistic means model ``b`` (model 2) is better** — its
squared errors are smaller. In :func:`dm_table` the entry in row ``a`` and column ``b`` is
``DM(a, b)``, so, as in GKX Table 3, a positive entry means the column model outperforms the
row model. ``DM(a, b) = −DM(b, a)`` exactly.

Lag default: GKX do not state the HAC lag. With ``lag=None`` this module uses the Newey and
West (1994) plug-in rule of thumb for the Bartlett kernel, ``floor(4 (T / 100)^(2/9))`` with
``T`` the number of test months (e.g. 360 months → 5, 120 → 4, 12 → 2); pass ``lag`` to fix
it instead. The p-value is two-sided against the standard normal (the asymptotic DM
distribution), with no small-sample correction.

All sums are in float64. Bad input raises :class:`DataError` (a ``ValueError``) with a one-line
message naming the column and month (or the count) at fault.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import polars as pl

from ..core.errors import DataError
from .hac import default_lag, long_run_covariance

KEY_COLUMNS = ("permno", "month", "r")


class DMResult(NamedTuple):
    """One Diebold–Mariano comparison of model ``a`` (1) against model ``b`` (2).

    ``statistic > 0`` means model ``b`` has the smaller squared errors (is better).
    ``statistic`` and ``p_value`` are NaN when ``se`` is 0 (e.g. identical forecasts).
    """

    statistic: float
    mean_diff: float
    se: float
    lag: int
    n_months: int
    p_value: float


def newey_west_se(x: np.ndarray, lag: int) -> float:
    """Newey–West HAC standard error of the sample mean of ``x``.

    With ``e = x − mean(x)`` and ``T = len(x)``::

        S  = Σ_t e_t² + 2 Σ_{l=1..lag} (1 − l / (lag + 1)) Σ_{t>l} e_t e_{t−l}
        se = sqrt(S) / T

    i.e. the long-run variance is divided by ``T`` (no ``T / (T − 1)`` or other small-sample
    correction). This is statsmodels' ``OLS(x, ones).fit(cov_type="HAC", cov_kwds={"maxlags":
    lag, "use_correction": False})`` standard error. With ``lag = 0`` it is
    ``std(x, ddof=0) / sqrt(T)``. The Bartlett weights keep ``S >= 0``.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 1:
        raise DataError(f"newey_west_se: x must be 1-D, got shape {x.shape}")
    n = x.size
    if n < 2:
        raise DataError(f"newey_west_se: need at least 2 observations, got {n}")
    if not np.all(np.isfinite(x)):
        raise DataError(f"newey_west_se: non-finite value at index {int(np.argmin(np.isfinite(x)))}")
    if isinstance(lag, bool) or int(lag) != lag or lag < 0 or lag >= n:
        raise DataError(f"newey_west_se: lag must be an integer in [0, {n - 1}], got {lag}")
    lag = int(lag)
    s = float(long_run_covariance(x - x.mean(), lag)[0, 0])
    return math.sqrt(max(s, 0.0)) / n


def _check(frame: pl.DataFrame, models: Sequence[str]) -> None:
    need = list(KEY_COLUMNS) + [m for m in models if m not in KEY_COLUMNS]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise DataError(f"diebold-mariano: missing column(s) {', '.join(missing)}")
    for c in ["r", *models]:
        v = pl.col(c).cast(pl.Float64)
        bad = frame.filter(v.is_null() | ~v.is_finite().fill_null(False))
        if bad.height:
            row = bad.row(0, named=True)
            raise DataError(
                f"diebold-mariano: non-finite {c} at permno {row['permno']}, month {row['month']}"
            )


def _differential(frame: pl.DataFrame, a: str, b: str) -> pl.DataFrame:
    r = pl.col("r").cast(pl.Float64)
    ea = r - pl.col(a).cast(pl.Float64)
    eb = r - pl.col(b).cast(pl.Float64)
    return frame.group_by("month").agg((ea * ea - eb * eb).mean().alias("d")).sort("month")


def monthly_loss_differential(frame: pl.DataFrame, a: str, b: str) -> pl.DataFrame:
    """Per test month, ``d = mean over stocks of (r − a)² − (r − b)²`` (float64).

    ``frame`` has columns ``permno``, ``month``, ``r`` and the forecast columns ``a`` and
    ``b``; every value must be finite. Returns columns ``month``, ``d`` sorted by month.
    ``d > 0`` in a month means model ``b`` had the smaller mean squared error there.
    """
    _check(frame, [a, b])
    if frame.height == 0:
        raise DataError("diebold-mariano: empty frame (0 months)")
    return _differential(frame, a, b)


def _dm(d: pl.DataFrame, lag: int | None) -> DMResult:
    x = d["d"].to_numpy().astype(np.float64)
    n = x.size
    if n < 2:
        month = d["month"][0] if n else None
        raise DataError(f"diebold-mariano: need at least 2 months, got {n} (month {month})")
    lag = default_lag(n) if lag is None else lag
    se = newey_west_se(x, lag)
    mean = float(x.mean())
    if se > 0:
        stat = mean / se
        p = math.erfc(abs(stat) / math.sqrt(2.0))
    else:
        stat = p = float("nan")
    return DMResult(float(stat), mean, float(se), int(lag), int(n), float(p))


def dm_test(frame: pl.DataFrame, a: str, b: str, lag: int | None = None) -> DMResult:
    """Diebold–Mariano test of model ``a`` (1) against model ``b`` (2), GKX style.

    ``statistic = mean(d) / newey_west_se(d, lag)`` with ``d`` from
    :func:`monthly_loss_differential`. **Positive means model ``b`` is better** (smaller
    squared errors); ``p_value`` is two-sided under the standard normal. ``lag=None`` uses
    :func:`default_lag` of the number of months. Needs at least 2 months.
    """
    return _dm(monthly_loss_differential(frame, a, b), lag)


def dm_table(frame: pl.DataFrame, models: list[str], lag: int | None = None) -> pl.DataFrame:
    """Pairwise DM statistics: row ``a``, column ``b`` holds ``DM(a, b)``.

    As in GKX Table 3, **a positive entry means the column model outperforms the row
    model**; the table is antisymmetric and the diagonal is null. Columns: ``model`` (the
    row model's name) then one float column per model. All pairs use the same lag
    (``lag=None``: :func:`default_lag` of the number of months).
    """
    if len(models) < 2 or len(set(models)) != len(models):
        raise DataError(f"dm_table: need at least 2 distinct models, got {list(models)}")
    _check(frame, models)
    stats: dict[tuple[str, str], float] = {}
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            s = _dm(_differential(frame, a, b), lag).statistic
            stats[(a, b)] = s
            stats[(b, a)] = -s
    cols: dict[str, list] = {"model": list(models)}
    for b in models:
        cols[b] = [None if a == b else stats[(a, b)] for a in models]
    return pl.DataFrame(cols, schema={"model": pl.String, **{m: pl.Float64 for m in models}})


def _normal_critical(level: float) -> float:
    """Two-sided standard-normal critical value ``z`` with ``P(|Z| > z) = level``."""
    lo, hi = 0.0, 40.0
    for _ in range(200):  # bisection on erfc: no scipy dependency
        mid = 0.5 * (lo + hi)
        if math.erfc(mid / math.sqrt(2.0)) > level:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def dm_markdown(table: pl.DataFrame, levels: tuple[float, float] = (0.05, 0.01), digits: int = 2) -> str:
    """Render a :func:`dm_table` as a markdown table with significance marks.

    Convention (two-sided normal critical values): an entry with ``|DM|`` above the
    ``levels[0]`` value (1.96 for 5 %) is **bold**; above the ``levels[1]`` value (2.58 for
    1 %) it is bold and followed by an escaped asterisk, e.g. ``**3.10**\\*``. The diagonal
    is ``–``; NaN prints as ``nan``. Positive entries mean the column model is better.
    """
    if len(levels) != 2 or not all(0 < x < 1 for x in levels) or levels[1] >= levels[0]:
        raise DataError(f"dm_markdown: levels must be two decreasing values in (0, 1), got {levels}")
    z5, z1 = _normal_critical(levels[0]), _normal_critical(levels[1])
    models = [c for c in table.columns if c != "model"]
    lines = [
        "| | " + " | ".join(models) + " |",
        "|---|" + "---:|" * len(models),
    ]
    for row in table.iter_rows(named=True):
        cells = []
        for m in models:
            v = row[m]
            if v is None:
                cells.append("–")
                continue
            s = f"{v:.{digits}f}"
            if math.isfinite(v) and abs(v) > z5:
                s = f"**{s}**" + ("\\*" if abs(v) > z1 else "")
            cells.append(s)
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
