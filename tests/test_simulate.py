"""The embedded simulated panel: structure, GKX-style characteristics, and a truth that
describes the data exactly."""

import numpy as np
import polars as pl
import pytest

from fapm_jax.data.embedded import CORE_CHARS, SimConfig, simulate_panel
from fapm_jax.data.macro import MACRO_NAMES, macro_panel


@pytest.fixture(scope="module")
def small():
    return simulate_panel(SimConfig(n_stocks=60, n_chars=12, first_month=198001, last_month=198912, seed=3))


def test_structure(small):
    panel, _ = small
    assert panel.n_rows == 60 * 120
    assert panel.feature_names[: len(CORE_CHARS)] == CORE_CHARS
    assert panel.feature_names[-8:] == MACRO_NAMES and panel.macro_names == MACRO_NAMES
    frame = pl.DataFrame({"month": panel.month, "permno": panel.permno})
    assert frame.n_unique() == panel.n_rows  # unique (permno, month) keys
    assert (frame.group_by("month").len()["len"] == 60).all()
    assert panel.sic2 is not None and panel.sic2.min() >= 1 and (panel.mktcap > 0).all()
    # Stocks leave and are replaced: more identifiers than slots.
    assert np.unique(panel.permno).size > 60


def test_characteristics_are_cross_sectional_ranks(small):
    panel, _ = small
    n = 60
    grid = 2.0 * np.arange(1, n + 1) / (n + 1) - 1.0
    for m in np.unique(panel.month)[:5]:
        rows = panel.month == m
        for j in range(12):
            x = panel.X[rows, j].astype(np.float64)
            present = x != 0.0  # missing values sit at the median, 0
            # Every present value is one of GKX's rank points, each used at most once.
            dist = np.abs(x[present, None] - grid[None, :]).min(axis=1)
            assert dist.max() < 1e-6  # float32 storage
            assert np.unique(np.round(x[present], 5)).size == present.sum()


def test_characteristics_are_persistent(small):
    panel, _ = small
    frame = pl.DataFrame({"permno": panel.permno, "month": panel.month, "c": panel.X[:, 2]})
    frame = frame.sort("permno", "month").with_columns(pl.col("c").shift(1).over("permno").alias("lag"))
    frame = frame.drop_nulls().filter((pl.col("c") != 0) & (pl.col("lag") != 0))
    # AR(1) latents with rho in [0.9, 1] give rank autocorrelations well above 0.8.
    assert np.corrcoef(frame["c"], frame["lag"])[0, 1] > 0.8


def test_macro_columns_are_the_real_series(small):
    panel, _ = small
    macro = macro_panel(198001, 198912)
    by_month = dict(zip(macro["month"].to_list(), macro.select(MACRO_NAMES).to_numpy()))
    for i in (0, 1000, panel.n_rows - 1):
        np.testing.assert_allclose(panel.X[i, -8:], by_month[int(panel.month[i])], atol=1e-6)


def test_truth_reproduces_g_from_the_factors(small):
    panel, truth = small
    col = {f: panel.X[:, i].astype(np.float64) for i, f in enumerate(panel.feature_names)}
    g = truth.bias + sum(c * col[f] for f, c in truth.linear.items())
    g = g + sum(c * col[a] * col[b] for (a, b), c in truth.interactions.items())
    g = g + sum(c * col[f] ** 2 for f, c in truth.squares.items())
    np.testing.assert_allclose(g, truth.g, atol=1e-8)  # X is stored as float32: ~1e-9 effect
    B = truth.interaction_matrix(panel.feature_names)
    assert np.allclose(B, B.T) and np.all(np.diag(B) == 0)
    i, j = panel.feature_names.index("bm"), panel.feature_names.index("bm_macro")
    assert B[i, j] == truth.interactions[("bm", "bm_macro")]
    assert np.count_nonzero(np.triu(B)) == len(truth.interactions)
    w = truth.linear_weights(panel.feature_names)
    assert w[panel.feature_names.index("mom1m")] == truth.linear["mom1m"]


def test_oracle_r2_is_calibrated():
    panel, truth = simulate_panel(
        SimConfig(n_stocks=200, n_chars=10, first_month=197001, last_month=199912, target_r2=0.04, seed=5)
    )
    # The noise scale is set from the sample's E[g^2]; the realised R² differs by sampling
    # error of the fat-tailed noise (~0.4 percentage points at 72,000 rows).
    assert truth.oracle_r2(panel.r) == pytest.approx(0.04, abs=0.006)
    resid = panel.r - truth.g
    assert abs(resid.mean()) < 3 * resid.std() / np.sqrt(resid.size) + 2e-3


def test_same_seed_same_panel():
    cfg = SimConfig(n_stocks=20, n_chars=8, first_month=199001, last_month=199112, seed=11)
    (a, _), (b, _) = simulate_panel(cfg), simulate_panel(cfg)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.r, b.r) and np.array_equal(a.permno, b.permno)
    c, _ = simulate_panel(SimConfig(n_stocks=20, n_chars=8, first_month=199001, last_month=199112, seed=12))
    assert not np.array_equal(a.r, c.r)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"n_stocks": 3}, "n_stocks"),
        ({"n_chars": 2}, "n_chars"),
        ({"target_r2": 0.0}, "target_r2"),
        ({"first_month": 200001, "last_month": 199901}, "last_month"),
        ({"noise_df": 2.0}, "noise_df"),
    ],
)
def test_bad_config(kwargs, field):
    with pytest.raises(ValueError, match=f"SimConfig.{field}"):
        SimConfig(**kwargs)
