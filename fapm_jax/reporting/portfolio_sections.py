"""The paper's section 4: the 30 bottom-up portfolios' R²_oos (Table 7, Figure 16),
market-timing Sharpe gains (Table 8, Figure 17), the machine-learning decile portfolios
(Table 9) and the investor's view of each model's H−L portfolio (cumulative return, drawdown,
turnover, alphas with Newey–West t-statistics), for every model of the suite.

Composes :mod:`~fapm_jax.evaluation.portfolios` and :mod:`~fapm_jax.evaluation.deciles` on the
test forecasts the rolling runs already produced.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from ..data.panel import Panel
from ..data.preprocess import next_month
from ..evaluation.deciles import (
    alpha_table,
    assign_deciles,
    cumulative_log,
    decile_table,
    decile_weights,
    long_short,
    max_drawdown,
    turnover,
    weighted_returns,
)
from ..evaluation.hac import default_lag
from ..evaluation.portfolios import (
    SORTS,
    PortfolioSpec,
    assign,
    portfolio_r2,
    portfolio_returns,
    sharpe,
    timing_gains,
)
from . import paper
from .figures import cumulative_figure, matrix_figure
from .markdown import Section, md_table

#: The alphas' factors on ``--data french``: the real ones, not factors built from 30 portfolios.
FRENCH_FACTOR_NOTE = (
    "Factors: the Fama–French–Carhart factors of the Ken French data library (shipped with the package)."
)


def stock_frame(
    frame: pl.DataFrame, panel: Panel, test_rows: np.ndarray, spec: PortfolioSpec
) -> pl.DataFrame:
    """The suite's test-row frame (``permno, month, r, mktcap`` and forecasts) with the sorting
    characteristics of ``spec`` that the panel has, and its ``exchange`` codes when it has them."""
    cols = [getattr(spec, attr) for attr, *_ in SORTS.values()]
    have = [c for c in dict.fromkeys(cols) if c in panel.feature_names]
    X = (
        panel.X[np.asarray(test_rows)][:, panel.feature_index(have)]
        if have
        else np.zeros((len(test_rows), 0))
    )
    extra = [pl.Series(c, X[:, i].astype(np.float64)) for i, c in enumerate(have)]
    if panel.exchange is not None:
        extra.append(pl.Series("exchange", panel.exchange[np.asarray(test_rows)]))
    return frame.with_columns(extra)


def _paper_model(m: str, fapm_m: str | None) -> str:
    return "FAPM-7" if m == fapm_m and fapm_m == "FAPM-7" else m


def _table7_text(spec: PortfolioSpec, nyse: bool, missing: Sequence[str]) -> str:
    chars = ", ".join(f"{s}: {getattr(spec, a)}" for s, (a, *_) in SORTS.items())
    breaks = (
        "among NYSE stocks (CRSP EXCHCD = 1 at t; all stocks in a month without NYSE stocks)"
        if nyse
        else "among all test stocks (no exchange codes in the data)"
    )
    note = (
        f"Each test month, value-weighted (market equity at t) portfolios of the test stocks: the "
        f"{spec.sp500} largest (S&P 500 proxy); size (median) × 30/70 percentiles of {chars}, breakpoints "
        f"{breaks} (12-month momentum, where the paper's Algorithm 3 names mom1m); and SMB, HML, RMW, "
        "CMA, UMD as Fama and French build them. Forecast = the same weights on the model's stock "
        "forecasts (Equation (3)). R²_oos against zero over the test months; ours (paper's in brackets, "
        "CRSP)."
    )
    if missing:
        note += f" Not built (characteristic not in the panel): the sorts on {', '.join(missing)}."
    return note


def portfolio_sections(
    frame: pl.DataFrame,
    panel: Panel,
    test_rows: np.ndarray,
    models: Sequence[str],
    *,
    factors: pl.DataFrame | None = None,
    factor_note: str = "",
    fapm_m: str | None = None,
    spec: PortfolioSpec = PortfolioSpec(),
    weighting: str = "value",
) -> list[Section]:
    """Tables 7–9, Figures 16–17 and the H−L investor analytics for ``models`` (columns of
    ``frame``). ``factors``: ``month`` (the return month) and factor returns for the alphas —
    by default the market (value-weighted test stocks) and the long–short factors built here.
    ``weighting``: of the decile portfolios (``"value"``, the paper's, or ``"equal"``)."""
    stocks = stock_frame(frame, panel, test_rows, spec)
    nyse = "exchange" in stocks.columns
    ret = portfolio_returns(assign(stocks, spec, exchange="exchange" if nyse else None), ["r", *models])
    present = ret["portfolio"].unique().to_list()
    missing = [
        getattr(spec, attr) for attr, *_ in SORTS.values() if getattr(spec, attr) not in stocks.columns
    ]
    r2 = portfolio_r2(ret, models)
    gains = timing_gains(ret, r2, models)
    pcols = {
        m: paper.PORTFOLIO_MODELS.index(_paper_model(m, fapm_m))
        for m in models
        if _paper_model(m, fapm_m) in paper.PORTFOLIO_MODELS
    }

    def cell(m, value, p, table, scale):
        ours = "–" if value is None or not np.isfinite(value) else f"{scale * value:.2f}"
        ref = table.get(p)
        return (
            ours
            if ref is None or m not in pcols
            else f"{ours} ({'–' if ref[pcols[m]] is None else f'{ref[pcols[m]]:.2f}'})"
        )

    rows7, rows8 = [], []
    for p in r2["portfolio"].to_list():
        r7 = r2.filter(pl.col("portfolio") == p).row(0, named=True)
        r8 = gains.filter(pl.col("portfolio") == p).row(0, named=True)
        row7, row8 = [p, r7["months"]], [p, f"{r8['SR']:.2f}"]
        for m in models:
            row7.append(cell(m, r7[m], p, paper.TABLE7, 100))
            row8.append(cell(m, r8[m], p, paper.TABLE8, 1))
        rows7.append(row7)
        rows8.append(row8)
    f16 = matrix_figure(r2, models, "Portfolio R²_oos (%)")
    f17 = matrix_figure(
        gains.with_columns([pl.col(m).fill_nan(None) for m in models]),
        models,
        "Market-timing gain SR* − SR (annualised)",
        scale=1.0,
    )
    sections = [
        Section(
            "Table 7 and Figure 16: portfolio R²_oos (%)",
            _table7_text(spec, nyse, missing)
            + "\n\n"
            + md_table(["portfolio", "months", *models], rows7)
            + "\n\n![Figure 16](figure16_portfolio_r2.png)\n\n"
            f"Files: table7_portfolio_r2.csv, portfolio_returns.parquet ({len(present)} portfolios, "
            "realised and forecast).",
            tables={"portfolio_returns.parquet": ret, "table7_portfolio_r2.csv": r2},
            figures={"figure16_portfolio_r2.png": f16},
        ),
        Section(
            "Table 8 and Figure 17: market-timing Sharpe gains",
            "Annualised Sharpe ratio SR of buying and holding each portfolio over the test months, and per "
            "model the gain SR* − SR of a market timer, SR* = sqrt((SR² + R²)/(1 − R²)) (Campbell and "
            'Thompson) with monthly SR and R²_oos, both annualised by √12; "–" where R²_oos < 0 (paper\'s in '
            "brackets).\n\n"
            + md_table(["portfolio", "SR (buy and hold)", *models], rows8)
            + "\n\n![Figure 17](figure17_timing_gains.png)\n\n"
            "File: table8_timing_gains.csv.",
            tables={"table8_timing_gains.csv": gains},
            figures={"figure17_timing_gains.png": f17},
        ),
    ]
    sections += decile_sections(
        stocks,
        models,
        factors=factors,
        factor_note=factor_note,
        fapm_m=fapm_m,
        ret=ret,
        weighting=weighting,
    )
    return sections


def built_factors(stocks: pl.DataFrame, ret: pl.DataFrame) -> pl.DataFrame:
    """Market (value-weighted mean of all test stocks) and the long–short factors built from the
    stocks, indexed by the return month (``t + 1``)."""
    mkt = stocks.group_by("month").agg(
        ((pl.col("r") * pl.col("mktcap")).sum() / pl.col("mktcap").sum()).alias("MKT")
    )
    fac = ret.filter(pl.col("portfolio").is_in(["SMB", "HML", "RMW", "CMA", "UMD"])).pivot(
        on="portfolio", index="month", values="r"
    )
    return (
        mkt.join(fac, on="month", how="left")
        .with_columns(next_month(pl.col("month")).alias("month"))
        .sort("month")
    )


_DECILE_HEAD = [
    "model",
    "pred (%)",
    "avg (%)",
    "sd (%)",
    "SR",
    "max drawdown (%)",
    "turnover long (%)",
    "turnover short (%)",
    "α market (%, t)",
    "α all factors (%, t)",
]


def decile_sections(
    stocks: pl.DataFrame,
    models: Sequence[str],
    *,
    factors: pl.DataFrame | None,
    factor_note: str,
    fapm_m: str | None,
    ret: pl.DataFrame,
    weighting: str = "value",
) -> list[Section]:
    """Table 9 and the H−L analytics for every model."""
    if factors is None:
        factors = built_factors(stocks, ret)
        factor_note = (
            "Factors built from the test stocks: MKT (value-weighted mean excess return) and SMB, HML, RMW, "
            "CMA, UMD of Table 7."
        )
    fcols = [c for c in factors.columns if c != "month"]
    mkt = fcols[0]
    sets = {"market": [mkt], "all factors": fcols}
    summary, tables, cum = [], [], {}
    dropped = 0
    for m in models:
        w = decile_weights(assign_deciles(stocks, m), weighting)
        dec = weighted_returns(w, m)
        dropped = stocks["month"].n_unique() - dec["month"].n_unique()
        t = decile_table(dec)
        tables.append(t.with_columns(pl.lit(m).alias("model")))
        hl = long_short(dec).with_columns(next_month(pl.col("month")).alias("month"))
        lag = default_lag(hl.height)
        alphas = alpha_table(hl, factors, sets, lag)
        x = hl["realised"].to_numpy()
        cum[m] = cumulative_log(hl)
        a_m, a_f = alphas.row(0, named=True), alphas.row(1, named=True)
        summary.append(
            [
                m,
                f"{100 * float(hl['pred'].mean()):.2f}",
                f"{100 * x.mean():.2f}",
                f"{100 * x.std(ddof=1):.2f}",
                f"{sharpe(x):.2f}",
                f"{100 * max_drawdown(x):.1f}",
                f"{100 * turnover(w, leg=10):.0f}",
                f"{100 * turnover(w, leg=1):.0f}",
                f"{100 * a_m['alpha']:.2f} ({a_m['t_alpha']:.1f})",
                f"{100 * a_f['alpha']:.2f} ({a_f['t_alpha']:.1f})",
            ]
        )
    fcum = cumulative_figure(cum, f"Machine-learning H−L portfolios ({weighting}-weighted)")
    lag_note = f"Newey–West lag {default_lag(len(next(iter(cum.values()))))} (Newey–West 1994 rule)"
    sections = [
        Section(
            "Table 9: machine-learning portfolios (H−L) and the investor's view",
            "Each test month the stocks are sorted into deciles of each model's forecast (ties by permno; "
            f"months with fewer than 10 stocks left out: {dropped}); {weighting}-weighted deciles, H−L = "
            "decile 10 − decile 1. Monthly pred / avg / sd in %, SR annualised; maximum drawdown of the H−L "
            "wealth; average monthly turnover of each leg (half the sum of absolute weight changes after "
            f"drift); monthly alpha with its {lag_note} t-statistic. {factor_note}\n\n"
            + md_table(_DECILE_HEAD, summary)
            + "\n\n![H−L cumulative](hl_cumulative_log_returns.png)\n\nFile: table9_deciles.csv (every "
            "decile of every model).",
            tables={"table9_deciles.csv": pl.concat(tables)},
            figures={"hl_cumulative_log_returns.png": fcum},
        )
    ]
    if weighting != "value":
        return sections
    for m, t in zip(models, tables):
        pm = _paper_model(m, fapm_m)
        if pm not in paper.TABLE9:
            continue
        ref = paper.TABLE9[pm]
        rows = [
            [
                d,
                f"{100 * p:.2f} ({ref[i][0]:.2f})",
                f"{100 * a:.2f} ({ref[i][1]:.2f})",
                f"{100 * s:.2f} ({ref[i][2]:.2f})",
                f"{sr:.2f} ({ref[i][3]:.2f})",
            ]
            for i, (d, p, a, s, sr) in enumerate(zip(t["decile"], t["pred"], t["avg"], t["sd"], t["SR"]))
        ]
        sections.append(
            Section(
                f"Table 9: {m} deciles",
                "Ours (paper's in brackets), monthly % and annualised SR.\n\n"
                + md_table(["decile", "pred", "avg", "sd", "SR"], rows),
            )
        )
    return sections
