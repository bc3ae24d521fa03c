"""R²_oos, its size groups and its yearly split, against hand computations."""

import numpy as np
import polars as pl
import pytest

from fapm_jax.evaluation.metrics import (
    DataError,
    default_size_group,
    r2_by_year,
    r2_oos,
    r2_summary,
    r2_table,
    size_group_flags,
)


@pytest.fixture
def pred():
    # Two months in 1990, one in 1991; four stocks a month with distinct market values.
    return pl.DataFrame(
        {
            "permno": [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4],
            "month": [199001] * 4 + [199002] * 4 + [199101] * 4,
            "r": [0.10, -0.20, 0.05, 0.00, 0.02, 0.03, -0.04, 0.01, 0.20, -0.10, 0.00, 0.05],
            "r_hat": [0.05, -0.10, 0.00, 0.01, 0.00, 0.01, 0.00, 0.00, 0.10, 0.00, 0.02, 0.05],
            "mktcap": [400.0, 300.0, 200.0, 100.0, 100.0, 200.0, 300.0, 400.0, 10.0, 40.0, 30.0, 20.0],
        }
    )


def hand_r2(r, rh):
    r, rh = np.array(r), np.array(rh)
    return 1 - np.sum((r - rh) ** 2) / np.sum(r**2)


def test_pooled_r2_by_hand():
    # 1 - ((0.1-0.05)^2 + (-0.2+0.1)^2) / (0.1^2 + 0.2^2) = 1 - 0.0125/0.05 = 0.75
    assert r2_oos([0.1, -0.2], [0.05, -0.1]) == pytest.approx(0.75, abs=1e-15)
    # Zero benchmark, not the mean: a constant forecast equal to the mean is not R² = 0.
    assert r2_oos([0.1, 0.3], [0.2, 0.2]) == pytest.approx(1 - 0.02 / 0.10, abs=1e-15)


def test_size_groups_by_hand(pred):
    table = dict(
        zip(*r2_table(pred, size_group=2).select("sample", "r2_oos").to_dict(as_series=False).values())
    )
    # Largest two each month: (1,2) in 199001, (4,3) in 199002, (2,3) in 199101.
    top = hand_r2([0.10, -0.20, 0.01, -0.04, -0.10, 0.00], [0.05, -0.10, 0.00, 0.00, 0.00, 0.02])
    bottom = hand_r2([0.05, 0.00, 0.02, 0.03, 0.20, 0.05], [0.00, 0.01, 0.00, 0.01, 0.10, 0.05])
    assert table["all"] == pytest.approx(hand_r2(pred["r"], pred["r_hat"]), abs=1e-12)
    assert table["top-2"] == pytest.approx(top, abs=1e-12)
    assert table["bottom-2"] == pytest.approx(bottom, abs=1e-12)
    flags = size_group_flags(pred, 2)
    assert flags["top"].sum() == 6 and flags["bottom"].sum() == 6
    assert not (flags["top"] & flags["bottom"]).any()


def test_by_year_and_summary(pred):
    yearly = r2_by_year(pred)
    assert yearly["year"].to_list() == [1990, 1991]
    assert yearly["n_obs"].to_list() == [8, 4]
    assert yearly["r2_oos"][0] == pytest.approx(hand_r2(pred["r"][:8], pred["r_hat"][:8]), abs=1e-12)
    summary = r2_summary(pred, size_group=2)
    mean_row = summary.filter(pl.col("sample") == "mean-of-years")
    assert mean_row["r2_oos"][0] == pytest.approx(yearly["r2_oos"].mean(), abs=1e-12)
    assert summary.filter(pl.col("sample") == "year")["year"].to_list() == [1990, 1991]
    assert summary.columns == ["sample", "year", "r2_oos", "n_obs"]


def test_group_larger_than_month_is_everything(pred):
    table = r2_table(pred, size_group=10)
    assert table["r2_oos"][1] == pytest.approx(table["r2_oos"][0], abs=1e-15)


def test_bad_predictions(pred):
    with pytest.raises(DataError, match="missing column.*mktcap"):
        r2_table(pred.drop("mktcap"), size_group=2)
    bad = pred.with_columns(
        pl.when(pl.col("permno") == 3).then(float("nan")).otherwise(pl.col("r_hat")).alias("r_hat")
    )
    with pytest.raises(DataError, match="non-finite r_hat at permno 3, month 199001"):
        r2_table(bad, size_group=None)


def test_default_size_group():
    assert default_size_group(np.repeat([199001, 199002], 3000)) == 1000
    assert default_size_group(np.repeat([199001, 199002], 300)) == 100
