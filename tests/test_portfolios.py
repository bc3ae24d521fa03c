"""Bottom-up portfolios (fapm_jax/portfolios.py) and decile portfolios (fapm_jax/deciles.py)
against hand computations on small hand-built panels, Campbell–Thompson and Sharpe on known
series, decile ties and short months, and Newey–West alphas against statsmodels."""

import math

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from fapm_jax.evaluation.deciles import (
    alpha_table,
    assign_deciles,
    decile_returns,
    decile_table,
    hac_ols,
    long_short,
    max_drawdown,
    turnover,
)
from fapm_jax.evaluation.portfolios import (
    SORTS,
    DataError,
    PortfolioSpec,
    assign,
    campbell_thompson,
    portfolio_r2,
    portfolio_returns,
    sharpe,
    timing_gains,
)

# one month, 8 stocks: market equity 1..8 (median 4.5: stocks 1-4 small, 5-8 big); each
# characteristic is a permutation of 10..80 (30th / 70th percentiles 31 and 59), so both size
# groups hold low, middle and high stocks of every sort
MCAP = np.arange(1.0, 9.0)
BM = np.array([10.0, 40, 60, 20, 30, 50, 70, 80])
OP = np.array([80.0, 30, 50, 10, 60, 20, 40, 70])
AG = np.array([20.0, 70, 40, 60, 10, 50, 80, 30])
MOM = np.array([50.0, 10, 80, 30, 70, 40, 20, 60])
R = np.array([0.01, -0.02, 0.03, 0.05, -0.01, 0.02, 0.04, -0.03])


def _frame(months=(201001,), shift=0.0):
    rows = []
    for k, m in enumerate(months):
        rows.append(
            pl.DataFrame(
                {
                    "permno": np.arange(1, 9),
                    "month": [m] * 8,
                    "mktcap": MCAP,
                    "bm": BM,
                    "operprof": OP,
                    "agr": AG,
                    "mom12m": MOM,
                    "r": R + k * shift,
                    "model": 2.0 * (R + k * shift),
                }
            )
        )
    return pl.concat(rows)


def _vw(sel):
    sel = np.asarray(sel)
    return float(np.sum(MCAP[sel] * R[sel]) / np.sum(MCAP[sel]))


def _labels(x):
    lo, hi = np.quantile(x, [0.3, 0.7])
    return np.where(x <= lo, 0, np.where(x > hi, 2, 1))


def test_portfolios_equal_a_hand_computation():
    f = assign(_frame(), PortfolioSpec(sp500=3))
    small = MCAP <= 4.5
    assert f["size"].to_list() == ["small"] * 4 + ["big"] * 4
    assert f["sp500"].to_list() == [False] * 5 + [True] * 3
    assert f["value"].to_list() == [SORTS["value"][1][i] for i in _labels(BM)]
    ret = portfolio_returns(f, ["r", "model"])
    got = {p: v for p, v in zip(ret["portfolio"], ret["r"])}
    assert got["S&P500"] == pytest.approx(_vw([5, 6, 7]))
    hand = {}
    for sort, x in (("value", BM), ("profitability", OP), ("investment", AG), ("momentum", MOM)):
        names = SORTS[sort][1]
        lab = _labels(x)
        for sz, mask in (("Small", small), ("Big", ~small)):
            for t, name in enumerate(names):
                sel = np.flatnonzero(mask & (lab == t))
                key = f"{sz} {name}"
                assert sel.size > 0
                hand[key] = _vw(sel)
                assert got[key] == pytest.approx(hand[key]), key
    # a long-short factor whose leg is empty this month is NaN; the others by the FF formulas
    assert got["HML"] == pytest.approx(
        0.5 * (hand["Small value"] + hand["Big value"]) - 0.5 * (hand["Small growth"] + hand["Big growth"])
    )
    assert got["RMW"] == pytest.approx(
        0.5 * (hand["Small robust"] + hand["Big robust"]) - 0.5 * (hand["Small weak"] + hand["Big weak"])
    )
    cma = [hand[k] for k in ("Small conservative", "Big conservative", "Small aggressive", "Big aggressive")]
    assert got["CMA"] == pytest.approx(0.5 * (cma[0] + cma[1]) - 0.5 * (cma[2] + cma[3]))  # low growth long
    assert got["UMD"] == pytest.approx(
        0.5 * (hand["Small up"] + hand["Big up"]) - 0.5 * (hand["Small down"] + hand["Big down"])
    )
    smb = np.mean(
        [
            np.mean([hand[f"Small {n}"] for n in SORTS[s][1]])
            - np.mean([hand[f"Big {n}"] for n in SORTS[s][1]])
            for s in ("value", "profitability", "investment")
        ]
    )
    assert got["SMB"] == pytest.approx(smb)
    assert len(got) == 30  # S&P 500 + 24 subcomponents + 5 factors
    # the forecast portfolios are the same weights on the forecasts (here 2 r)
    np.testing.assert_allclose(ret["model"].to_numpy(), 2 * ret["r"].to_numpy(), rtol=1e-12)
    # float32 inputs (as the suite's forecasts are) give the same portfolios in float64
    f32 = assign(
        _frame().with_columns(pl.col("r", "model", "mktcap").cast(pl.Float32)), PortfolioSpec(sp500=3)
    )
    np.testing.assert_allclose(
        portfolio_returns(f32, ["r", "model"])["r"].to_numpy(), ret["r"].to_numpy(), rtol=1e-5, atol=1e-8
    )


def test_nyse_breakpoints():
    f = _frame().with_columns(pl.Series("exch", [1, 3, 1, 3, 1, 3, 1, 1]))
    a = assign(f, PortfolioSpec(), exchange="exch")
    nyse_median = np.quantile(MCAP[[0, 2, 4, 6, 7]], 0.5)  # 5.0
    assert a["size"].to_list() == ["small" if m <= nyse_median else "big" for m in MCAP]
    lo, hi = np.quantile(BM[[0, 2, 4, 6, 7]], [0.3, 0.7])  # NYSE percentiles for the sorts too
    assert a["value"].to_list() == [SORTS["value"][1][0 if x <= lo else 2 if x > hi else 1] for x in BM]
    # a month without NYSE stocks falls back to all-stock breakpoints; an absent column is an error
    two = _frame((201001, 201002)).with_columns(pl.Series("exch", [1, 3, 1, 3, 1, 3, 1, 1] + [3] * 8))
    b = assign(two, PortfolioSpec(), exchange="exch")
    assert b["size"].to_list()[:8] == a["size"].to_list()
    assert b["size"].to_list()[8:] == assign(_frame()).select("size").to_series().to_list()
    with pytest.raises(DataError, match="exchange column 'exchcd' missing"):
        assign(_frame(), exchange="exchcd")


def test_missing_characteristic_leaves_its_sort_out_and_missing_columns_are_errors():
    ret = portfolio_returns(assign(_frame().drop("agr")), ["r"])
    assert "CMA" not in ret["portfolio"].to_list() and "HML" in ret["portfolio"].to_list()
    with pytest.raises(DataError, match="'mktcap' missing"):
        assign(_frame().drop("mktcap"))


def test_portfolio_r2_by_hand():
    ret = pl.DataFrame(
        {
            "month": [1, 2, 1, 2],
            "portfolio": ["A", "A", "SMB", "SMB"],
            "r": [0.02, -0.01, 0.01, 0.03],
            "m": [0.01, 0.0, 0.0, 0.01],
        }
    )
    t = portfolio_r2(ret, ["m"])
    assert t["portfolio"].to_list() == ["SMB", "A"]  # common factors first
    a = t.filter(pl.col("portfolio") == "A")["m"][0]
    assert a == pytest.approx(1 - (0.01**2 + 0.01**2) / (0.02**2 + 0.01**2))


def test_sharpe_and_campbell_thompson_on_known_series():
    x = np.array([0.01, 0.03, -0.01, 0.05])
    assert sharpe(x, 1) == pytest.approx(0.02 / np.std(x, ddof=1))
    assert sharpe(x) == pytest.approx(0.02 / np.std(x, ddof=1) * math.sqrt(12))
    assert campbell_thompson(0.5, 0.02) == pytest.approx(math.sqrt(0.27 / 0.98))
    assert math.isnan(campbell_thompson(0.5, -0.01))
    assert campbell_thompson(0.0, 0.0) == 0.0
    ret = pl.DataFrame({"month": [1, 2, 3, 4], "portfolio": ["A"] * 4, "r": x, "good": x * 0.5, "bad": -x})
    r2 = portfolio_r2(ret, ["good", "bad"])
    g = timing_gains(ret, r2, ["good", "bad"])
    sr = 0.02 / np.std(x, ddof=1)
    r2_good = 1 - np.sum((0.5 * x) ** 2) / np.sum(x**2)  # 0.75
    assert g["SR"][0] == pytest.approx(sr * math.sqrt(12))
    assert g["good"][0] == pytest.approx((math.sqrt((sr**2 + r2_good) / (1 - r2_good)) - sr) * math.sqrt(12))
    assert g["bad"][0] is None or math.isnan(g["bad"][0])


def _decile_frame():
    rng = np.random.default_rng(0)
    a = pl.DataFrame(
        {
            "permno": np.arange(100, 123),
            "month": [1] * 23,
            "mktcap": rng.uniform(1, 5, 23),
            "r": rng.normal(0, 0.05, 23),
            "m": np.repeat(np.arange(12.0), 2)[:23],
        }
    )  # ties in pairs
    b = pl.DataFrame(
        {
            "permno": np.arange(100, 105),
            "month": [2] * 5,
            "mktcap": np.ones(5),
            "r": np.zeros(5),
            "m": np.zeros(5),
        }
    )
    return pl.concat([a, b])


def test_deciles_ties_short_months_and_returns_by_hand():
    f = _decile_frame()
    d = assign_deciles(f, "m")
    assert d["month"].unique().to_list() == [1]  # 5 stocks cannot fill 10 deciles
    sizes = d.group_by("decile").len().sort("decile")["len"].to_list()
    assert sorted(set(sizes)) == [2, 3] and sum(sizes) == 23
    ranks = np.lexsort(
        (f.filter(pl.col("month") == 1)["permno"].to_numpy(), f.filter(pl.col("month") == 1)["m"].to_numpy())
    )
    want = np.empty(23, int)
    want[ranks] = np.arange(23) * 10 // 23 + 1
    got = d.sort("permno")["decile"].to_numpy()
    np.testing.assert_array_equal(got, want[np.argsort(f.filter(pl.col("month") == 1)["permno"].to_numpy())])
    dec, dropped = decile_returns(f, "m")
    assert dropped == 1
    m1 = f.filter(pl.col("month") == 1).sort("permno")
    for k in (1, 10):
        sel = got == k
        w = m1["mktcap"].to_numpy()[sel]
        assert dec.filter(pl.col("decile") == k)["realised"][0] == pytest.approx(
            np.sum(w * m1["r"].to_numpy()[sel]) / w.sum()
        )
    ew, _ = decile_returns(f, "m", weighting="equal")
    sel = got == 10
    assert ew.filter(pl.col("decile") == 10)["realised"][0] == pytest.approx(m1["r"].to_numpy()[sel].mean())
    hl = long_short(dec)
    assert hl["realised"][0] == pytest.approx(dec["realised"][9] - dec["realised"][0])
    two = pl.concat([dec, dec.with_columns(pl.col("month") + 1, pl.col("realised") * 2)])
    t = decile_table(two)
    assert t["decile"].to_list() == [str(i) for i in range(1, 11)] + ["H-L"]
    x = np.array([1.0, 2.0]) * hl["realised"][0]
    row = t.filter(pl.col("decile") == "H-L").row(0, named=True)
    assert row["avg"] == pytest.approx(x.mean()) and row["sd"] == pytest.approx(x.std(ddof=1))
    assert row["SR"] == pytest.approx(sharpe(x)) and row["pred"] == pytest.approx(hl["pred"][0])
    with pytest.raises(DataError, match="weighting"):
        decile_returns(f, "m", weighting="rank")


def test_drawdown_and_turnover_by_hand():
    assert max_drawdown(np.array([0.1, -0.5, 0.2])) == pytest.approx(0.5)
    assert max_drawdown(np.array([0.01, 0.02])) == 0.0
    # decile 10 holds stocks 1 and 2 (weights 0.5/0.5) in month 1, then stocks 2 and 3 (0.5/0.5)
    w = pl.DataFrame(
        {
            "permno": [1, 2, 2, 3],
            "month": [1, 1, 2, 2],
            "decile": [10] * 4,
            "weight": [0.5, 0.5, 0.5, 0.5],
            "r": [0.1, -0.1, 0.0, 0.0],
        }
    )
    drift = np.array([0.5 * 1.1, 0.5 * 0.9]) / 1.0  # stock 1: 0.55, stock 2: 0.45
    want = 0.5 * (abs(0.0 - drift[0]) + abs(0.5 - drift[1]) + abs(0.5 - 0.0))
    assert turnover(w) == pytest.approx(want)


def test_newey_west_alpha_equals_statsmodels():
    rng = np.random.default_rng(3)
    T = 120
    mkt = rng.normal(0.005, 0.04, T)
    smb = rng.normal(0.0, 0.03, T)
    y = 0.004 + 0.3 * mkt - 0.2 * smb + rng.normal(0, 0.02, T)
    y[1:] += 0.3 * y[:-1]  # serial correlation
    X = sm.add_constant(np.column_stack([mkt, smb]))
    ref = sm.OLS(y, X).fit(cov_type="HAC", cov_kwds={"maxlags": 4, "use_correction": False})
    beta, se = hac_ols(y, X, 4)
    np.testing.assert_allclose(beta, ref.params, rtol=1e-10)
    np.testing.assert_allclose(se, ref.bse, rtol=1e-10)
    hl = pl.DataFrame({"month": np.arange(T), "realised": y})
    fac = pl.DataFrame({"month": np.arange(T), "mkt": mkt, "smb": smb})
    t = alpha_table(hl, fac, {"market": ["mkt"], "mkt+smb": ["mkt", "smb"]}, 4)
    assert t["alpha"][1] == pytest.approx(ref.params[0]) and t["t_alpha"][1] == pytest.approx(ref.tvalues[0])
    assert t["months"].to_list() == [T, T]
