"""Diebold–Mariano comparison (GKX 2020, section 3.1 / Table 3).

Tolerances: statsmodels agreement 1e-10 relative; hand computations 1e-12 relative/absolute
(float64 sums of a handful of numbers).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

from fapm_jax.evaluation.diebold_mariano import (
    DataError,
    default_lag,
    dm_markdown,
    dm_table,
    dm_test,
    monthly_loss_differential,
    newey_west_se,
)


def _sm_se(x: np.ndarray, lag: int) -> float:
    fit = sm.OLS(x, np.ones((x.size, 1))).fit(
        cov_type="HAC", cov_kwds={"maxlags": lag, "use_correction": False}
    )
    return float(fit.bse[0])


@pytest.mark.parametrize("lag", [0, 1, 3, 7])
def test_newey_west_matches_statsmodels(lag):
    rng = np.random.default_rng(lag)
    e = rng.standard_normal(250)
    x = 0.3 + np.convolve(e, [1.0, 0.6, 0.3], mode="same")  # serially correlated
    assert newey_west_se(x, lag) == pytest.approx(_sm_se(x, lag), rel=1e-10)


def test_newey_west_lag0_is_plain_se():
    x = np.array([0.4, -1.2, 2.5, 0.1, 0.9, -0.3])
    assert newey_west_se(x, 0) == pytest.approx(np.std(x, ddof=0) / math.sqrt(x.size), rel=1e-12)


def test_newey_west_hand_lag1():
    x = np.array([1.0, 3.0, 2.0, 6.0])  # mean 3, e = [-2, 0, -1, 3]
    s = (4 + 0 + 1 + 9) + 2 * 0.5 * ((0 * -2) + (-1 * 0) + (3 * -1))  # 14 - 3 = 11
    assert s == 11
    assert newey_west_se(x, 1) == pytest.approx(math.sqrt(s) / 4, rel=1e-12)


def test_default_lag():
    assert [default_lag(t) for t in (12, 120, 360)] == [2, 4, 5]


def _tiny() -> pl.DataFrame:
    # months 1..3, two or three stocks; models m1, m2
    return pl.DataFrame(
        {
            "permno": [10, 20, 10, 20, 30, 10, 20],
            "month": [1, 1, 2, 2, 2, 3, 3],
            "r": [1.0, -1.0, 0.5, 0.0, 2.0, -0.5, 1.5],
            "m1": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            "m2": [1.0, -0.5, 0.5, 1.0, 1.0, 0.5, 1.5],
        }
    )


def _tiny_d() -> list[float]:
    # month 1: e1² = [1, 1], e2² = [0, 0.25]      -> d = mean([1, 0.75]) = 0.875
    # month 2: e1² = [0.25, 0, 4], e2² = [0, 1, 1] -> d = mean([0.25, -1, 3]) = 0.75
    # month 3: e1² = [0.25, 2.25], e2² = [1, 0]   -> d = mean([-0.75, 2.25]) = 0.75
    return [0.875, 0.75, 0.75]


def test_loss_differential_by_hand():
    out = monthly_loss_differential(_tiny().reverse(), "m1", "m2")  # order of rows irrelevant
    assert out.columns == ["month", "d"]
    assert out["month"].to_list() == [1, 2, 3]
    np.testing.assert_allclose(out["d"].to_numpy(), _tiny_d(), rtol=1e-12, atol=1e-12)


def test_dm_statistic_by_hand():
    d = np.array(_tiny_d())
    mean = d.mean()  # 0.791666...
    e = d - mean
    s = e @ e + 2 * 0.5 * (e[1:] @ e[:-1])  # lag 1, Bartlett weight 1/2
    se = math.sqrt(s) / 3
    res = dm_test(_tiny(), "m1", "m2", lag=1)
    assert res.lag == 1 and res.n_months == 3
    assert res.mean_diff == pytest.approx(mean, rel=1e-12)
    assert res.se == pytest.approx(se, rel=1e-12)
    assert res.statistic == pytest.approx(mean / se, rel=1e-12)
    assert res.p_value == pytest.approx(math.erfc(abs(mean / se) / math.sqrt(2)), rel=1e-12)
    assert dm_test(_tiny(), "m1", "m2").lag == default_lag(3)


def _panel(n_months=60, n_stocks=40, seed=0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    month = np.repeat(np.arange(n_months), n_stocks)
    permno = np.tile(np.arange(n_stocks), n_months)
    r = rng.standard_normal(month.size)
    return pl.DataFrame(
        {
            "permno": permno,
            "month": month,
            "r": r,
            "truth": r,
            "noisy": r + 0.5 * rng.standard_normal(r.size),
            "noisier": r + 1.0 * rng.standard_normal(r.size),
        }
    )


def test_antisymmetry_and_sign_convention():
    f = _panel()
    ab, ba = dm_test(f, "noisy", "truth"), dm_test(f, "truth", "noisy")
    assert ab.statistic == pytest.approx(-ba.statistic, rel=1e-12)
    assert ab.se == pytest.approx(ba.se, rel=1e-12)
    # positive = model 2 better: the exact forecast as model 2 wins decisively
    assert ab.statistic > 10 and ba.statistic < -10 and ab.p_value < 1e-10


def test_dm_table_and_markdown():
    f = _panel()
    models = ["noisier", "noisy", "truth"]
    t = dm_table(f, models, lag=2)
    assert t.columns == ["model", *models]
    assert t["model"].to_list() == models
    m = t.select(models).to_numpy()
    assert np.all(np.isnan(m.diagonal()))
    np.testing.assert_allclose(m, -m.T, rtol=1e-12)
    # row a, column b = DM(a, b): positive means the column model is better
    assert m[0, 2] == pytest.approx(dm_test(f, "noisier", "truth", lag=2).statistic, rel=1e-12)
    assert m[0, 1] > 1.96 and m[1, 2] > 1.96 and m[2, 0] < -1.96
    md = dm_markdown(t)
    lines = md.splitlines()
    assert len(lines) == 2 + len(models)
    assert lines[0] == "| | noisier | noisy | truth |"
    assert f"**{m[0, 2]:.2f}**\\*" in lines[2]
    assert "–" in lines[2]
    # marks: plain below 1.96, bold only in (1.96, 2.58], bold + \* above 2.58
    small = pl.DataFrame(
        {"model": ["x", "y"], "x": [None, -2.2], "y": [2.2, None]},
        schema={"model": pl.String, "x": pl.Float64, "y": pl.Float64},
    )
    assert "| x | – | **2.20** |" in dm_markdown(small)
    assert "| x | – | 2.20 |" in dm_markdown(small, levels=(0.01, 0.001))


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and msg
    return msg


def test_bad_inputs():
    f = _tiny()
    with pytest.raises(ValueError) as ei:
        dm_test(f.drop("r"), "m1", "m2")
    assert "r" in _one_line(ei) and "missing" in str(ei.value)
    with pytest.raises(DataError) as ei:
        dm_test(f, "m1", "m3")
    assert "m3" in _one_line(ei)
    nan_m2 = pl.when(pl.col("month") == 2).then(float("nan")).otherwise(pl.col("m2"))
    bad = f.with_columns(nan_m2.alias("m2"))
    with pytest.raises(DataError) as ei:
        monthly_loss_differential(bad, "m1", "m2")
    assert "m2" in _one_line(ei) and "month 2" in str(ei.value)
    nul = f.with_columns(pl.when(pl.col("month") == 3).then(None).otherwise(pl.col("r")).alias("r"))
    with pytest.raises(DataError) as ei:
        dm_test(nul, "m1", "m2")
    assert "non-finite r" in _one_line(ei) and "month 3" in str(ei.value)
    with pytest.raises(DataError) as ei:
        dm_test(f.filter(pl.col("month") == 1), "m1", "m2")
    assert "2 months" in _one_line(ei) and "month 1" in str(ei.value)
    with pytest.raises(DataError) as ei:
        dm_test(f, "m1", "m2", lag=3)
    assert "lag" in _one_line(ei)
    with pytest.raises(DataError):
        newey_west_se(np.array([1.0, 2.0]), -1)
    with pytest.raises(DataError):
        dm_table(f, ["m1"])
    with pytest.raises(DataError):
        dm_markdown(dm_table(f, ["m1", "m2"]), levels=(0.01, 0.05))


def test_identical_forecasts_give_nan():
    res = dm_test(_tiny(), "m1", "m1", lag=1)
    assert res.se == 0 and math.isnan(res.statistic) and math.isnan(res.p_value)
