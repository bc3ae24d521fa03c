"""The French-portfolio panel against hand computations from the raw CSV.

References are plain Python over the file read with the ``csv`` module (``math.prod``,
``statistics.stdev``, pairwise rank counting), independent of the numpy/polars code under test.
Tolerances: raw characteristics are float64 sums/products of the same numbers in possibly
another order, so ``rel=1e-12``; panel values are float32, so ``1e-6`` absolute on the ranks in
``[−1, 1]`` and ``rel=1e-6`` on returns.
"""

import csv
import math
import re
import statistics

import numpy as np
import polars as pl
import pytest

from fapm_jax.core.config import TrainConfig
from fapm_jax.data.french import (
    FACTOR_NAMES,
    FRENCH_ASSETS,
    FRENCH_CHARS,
    FRENCH_SIZE_GROUP,
    DataError,
    _gkx_rank,
    french_characteristics,
    french_factors,
    french_panel,
    french_path,
)
from fapm_jax.data.macro import MACRO_NAMES, macro_panel
from fapm_jax.evaluation.metrics import size_group_flags
from fapm_jax.studies.rolling import run_rolling


def _read_raw(path=None):
    with open(path or french_path(), newline="") as f:
        rows = list(csv.DictReader(f))
    months = [int(r["dates"][:4]) * 100 + int(r["dates"][5:7]) for r in rows]
    return months, {m: {k: float(v) for k, v in r.items() if k != "dates"} for m, r in zip(months, rows)}


MONTHS, RAW = _read_raw()
POS = {m: i for i, m in enumerate(MONTHS)}


def ret(asset, month, lag=0):
    """Raw return of ``asset`` in the month ``lag`` months before ``month``."""
    return RAW[MONTHS[POS[month] - lag]][asset]


def hand_chars(asset, t):
    return {
        "mom1m": ret(asset, t),
        "mom12m": math.prod(1 + ret(asset, t, k) for k in range(1, 12)) - 1,
        "mom36m": math.prod(1 + ret(asset, t, k) for k in range(12, 36)) - 1,
        "retvol12m": statistics.stdev(ret(asset, t, k) for k in range(0, 12)),
        "maxret12m": max(ret(asset, t, k) for k in range(0, 12)),
    }


def sorted_by(asset):
    """``(size, "V" or "M", quintile)`` of a size-sorted portfolio, ``None`` for an industry."""
    m = re.fullmatch(r"S([135])([VM])([135])", asset)
    return (int(m[1]), m[2], int(m[3])) if m else None


def hand_rank(values):
    """GKX map by pairwise counting: rank = #smaller + (#equal + 1) / 2 among non-missing."""
    present = [v for v in values if v is not None]
    n = len(present)
    out = []
    for v in values:
        if v is None:
            out.append(0.0)
            continue
        rank = sum(u < v for u in present) + (sum(u == v for u in present) + 1) / 2
        out.append(2 * rank / (n + 1) - 1)
    return out


@pytest.fixture(scope="module")
def panel():
    return french_panel()


def rows_of(panel, month):
    idx = np.flatnonzero(panel.month == month)
    assert list(panel.permno[idx]) == list(range(1, 31))
    return idx


def test_shape_keys_and_names(panel):
    assert FRENCH_ASSETS == tuple(list(RAW[194901])[5:])  # the CSV's portfolio columns, in order
    assert len(FRENCH_ASSETS) == len(set(FRENCH_ASSETS)) == 30
    assert panel.name == "french" and panel.sic2 is None
    assert panel.n_rows == 30 * 720 and panel.X.shape == (21600, 16)
    assert panel.feature_names == FRENCH_CHARS + MACRO_NAMES and panel.macro_names == MACRO_NAMES
    assert not set(FRENCH_CHARS) & set(MACRO_NAMES)
    assert panel.month[0] == 195701 and panel.month[-1] == 201612
    assert np.unique(panel.month).size == 720 and set(panel.years) == set(range(1957, 2017))
    assert np.array_equal(panel.permno, np.tile(np.arange(1, 31), 720))


@pytest.mark.parametrize(
    "asset, month",
    [("NoDur", 195701), ("S1V5", 195701), ("S5M1", 198710), ("BusEq", 200003), ("S3V3", 201612)],
)
def test_raw_characteristics_by_hand(asset, month):
    got = french_characteristics(month, month).filter(pl.col("asset") == asset).row(0, named=True)
    assert got["permno"] == FRENCH_ASSETS.index(asset) + 1
    for name, want in hand_chars(asset, month).items():
        assert got[name] == pytest.approx(want, rel=1e-12, abs=1e-15), name


def test_buckets_raw_and_ranked(panel):
    raw = french_characteristics(200001, 200001)
    idx = rows_of(panel, 200001)
    for i, asset in enumerate(FRENCH_ASSETS):
        row, s = raw.row(i, named=True), sorted_by(asset)
        assert row["asset"] == asset
        assert row["size_bucket"] == (s[0] if s else None)
        assert row["value_bucket"] == (s[2] if s and s[1] == "V" else None)
        assert row["mom_bucket"] == (s[2] if s and s[1] == "M" else None)
    # Ranked: 18 size-sorted assets in three tied groups of 6 -> average ranks 3.5 / 9.5 / 15.5 of
    # n = 18; 9 assets per value / momentum bucket in groups of 3 -> 2 / 5 / 8 of n = 9; others 0.
    j = {c: panel.feature_names.index(c) for c in ("size_bucket", "value_bucket", "mom_bucket")}
    size_map = {1: -12 / 19, 3: 0.0, 5: 12 / 19}
    q_map = {1: -0.6, 3: 0.0, 5: 0.6}
    for i, asset in zip(idx, FRENCH_ASSETS):
        x, s = panel.X[i], sorted_by(asset)
        assert x[j["size_bucket"]] == pytest.approx(size_map[s[0]] if s else 0.0, abs=1e-6)
        assert x[j["value_bucket"]] == pytest.approx(q_map[s[2]] if s and s[1] == "V" else 0.0, abs=1e-6)
        assert x[j["mom_bucket"]] == pytest.approx(q_map[s[2]] if s and s[1] == "M" else 0.0, abs=1e-6)


@pytest.mark.parametrize("month", [195701, 198710, 201612])
def test_rank_map_on_a_month(panel, month):
    idx = rows_of(panel, month)
    for name in ("mom1m", "mom12m", "mom36m", "retvol12m", "maxret12m"):
        want = hand_rank([hand_chars(a, month)[name] for a in FRENCH_ASSETS])
        got = panel.X[idx, panel.feature_names.index(name)]
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=name)
        # Average ranks keep the rank sum n (n + 1) / 2, so the mapped values sum to 0.
        assert abs(float(np.sum(got, dtype=np.float64))) < 1e-5
    if month == 201612:  # the file has real ties: NoDur and S1M1 both returned 3.49%
        x = panel.X[idx, panel.feature_names.index("mom1m")]
        assert x[FRENCH_ASSETS.index("NoDur")] == x[FRENCH_ASSETS.index("S1M1")]


def test_rank_helper_ties_and_missing():
    x = np.array([[0.3, np.nan, 0.1, 0.3], [np.nan] * 4])
    # n = 3: 0.1 -> rank 1 -> -0.5; the two 0.3 share ranks 2, 3 -> 2.5 -> 0.25; NaN -> 0.
    np.testing.assert_allclose(_gkx_rank(x), [[0.25, 0.0, -0.5, 0.25], [0.0] * 4], atol=1e-15)


@pytest.mark.parametrize(
    "asset, t", [("NoDur", 195701), ("S1M5", 198709), ("Money", 200809), ("S5V5", 201612)]
)
def test_target_is_next_month_excess_return(panel, asset, t):
    i = rows_of(panel, t)[FRENCH_ASSETS.index(asset)]
    nxt = MONTHS[POS[t] + 1]
    assert panel.r[i] == pytest.approx(RAW[nxt][asset] - RAW[nxt]["RF"], rel=1e-6, abs=1e-9)


def test_no_look_ahead(tmp_path):
    t = 198106
    path = tmp_path / "perturbed.csv"
    rng = np.random.default_rng(0)
    with open(french_path(), newline="") as f:
        rows = list(csv.reader(f))
    for row in rows[1:]:
        if int(row[0][:4]) * 100 + int(row[0][5:7]) > t:  # every return and RF after month t
            row[1:] = [repr(float(v) + rng.normal(0, 0.05)) for v in row[1:]]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    kw = dict(first_month=198001, last_month=198312, macro_transform="raw")
    base, pert = french_panel(**kw), french_panel(**kw, path=path)
    upto = base.month <= t
    assert np.array_equal(base.X[upto], pert.X[upto])  # bit for bit
    assert np.array_equal(base.r[base.month < t], pert.r[pert.month < t])
    assert not np.any(base.r[base.month == t] == pert.r[pert.month == t])  # target is t + 1
    after = base.month == MONTHS[POS[t] + 1]
    assert not np.array_equal(base.X[after], pert.X[after])  # the perturbation does reach X


def test_1957_rows_have_full_history():
    # mom36m reads t-35: for 1957-01 that is 1954-02, after the data start 1949-01.
    assert MONTHS[POS[195701] - 35] == 195402 >= MONTHS[0] == 194901
    first = french_characteristics(195701, 195712)
    assert first.select(pl.col(FRENCH_CHARS[:5]).null_count()).sum_horizontal().item() == 0
    assert french_characteristics(195112, 195112).null_count()["mom36m"].item() == 0
    with pytest.raises(DataError, match="195111 precedes 195112"):
        french_characteristics(195111, 195112)


def test_macro_columns_equal_macro_panel(panel):
    m = macro_panel(195701, 201612, transform="rank")
    got = panel.X[:, -8:].reshape(720, 30, 8)
    want = m.select(MACRO_NAMES).to_numpy().astype(np.float32)
    assert np.array_equal(got, np.broadcast_to(want[:, None, :], got.shape))
    raw = french_panel(first_month=199001, last_month=199012, macro_transform="raw")
    want_raw = macro_panel(199001, 199012, transform="raw").select(MACRO_NAMES).to_numpy()
    assert np.array_equal(raw.X[::30, -8:], want_raw.astype(np.float32))


def test_mktcap_is_the_size_quintile_proxy(panel):
    want = [float(sorted_by(a)[0]) if sorted_by(a) else 3.0 for a in FRENCH_ASSETS]
    assert np.array_equal(panel.mktcap, np.tile(np.asarray(want, np.float32), 720))


def test_factors_frame():
    f = french_factors()
    assert f.columns == ["month", *FACTOR_NAMES] and f.height == len(MONTHS) == 819
    assert f["month"].dtype == pl.Int32 and f["month"].to_list() == MONTHS
    sub = french_factors(198701, 198712)
    assert sub["month"].to_list() == list(range(198701, 198713))
    for m in (194901, 198710, 201703):
        row = f.filter(pl.col("month") == m).row(0, named=True)
        for name in FACTOR_NAMES:
            assert row[name] == RAW[m][name]  # decimal, unchanged from the file
    assert RAW[198710]["MktRF"] < -0.2  # the 1987 crash, in decimal not percent


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: french_panel(first_month=195001), "first_month 195001 precedes 195112"),
        (
            lambda: french_panel(last_month=201703),
            "last_month 201703 is after 201702, the last origin with a next-month return",
        ),
        (lambda: french_panel(first_month=200001, last_month=199912), "200001 is after last_month 199912"),
        (lambda: french_panel(first_month=195713), "195713 is not a YYYYMM month"),
        (lambda: french_factors(194812, 195012), "first_month 194812 precedes 194901"),
        (lambda: french_factors(201001, 201704), "last_month 201704 is after 201703"),
        (lambda: french_characteristics(201701, 201612), "201701 is after last_month 201612"),
    ],
)
def test_bad_requests(call, match):
    with pytest.raises(DataError, match=match) as err:
        call()
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda rows: rows.pop(100), "months not consecutive at 195703 -> 195705"),  # row 0: header
        (lambda rows: rows[5].__setitem__(7, ""), "missing value in month 194905"),
        (lambda rows: rows[3].__setitem__(0, "1949-13-01"), "date '1949-13-01' is not YYYY-MM-DD"),
    ],
)
def test_bad_file(tmp_path, corrupt, match):
    with open(french_path(), newline="") as f:
        rows = list(csv.reader(f))
    corrupt(rows)
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(DataError, match=match):
        french_panel(path=path)


def test_rolling_end_to_end(panel):
    run = run_rolling(panel, TrainConfig(epochs=3, rank=2))
    pred = run.predictions
    assert [w.test for w in run.windows] == list(range(1987, 2017))
    per_year = pred.group_by(pl.col("month") // 100).len().sort("month")
    assert per_year["month"].to_list() == list(range(1987, 2017))
    assert (per_year["len"] == 30 * 12).all()
    assert np.isfinite(pred["r_hat"].to_numpy()).all() and not run.diverged.any()
    assert np.isfinite(run.r2["r2_oos"].to_numpy()).all()
    # Under FRENCH_SIZE_GROUP the size rows are exactly the S5 (top) and S1 (bottom) portfolios.
    flags = size_group_flags(pred, FRENCH_SIZE_GROUP)
    names = np.array(FRENCH_ASSETS)[flags["permno"].to_numpy() - 1]
    assert set(names[flags["top"].to_numpy()]) == {a for a in FRENCH_ASSETS if re.match("S5[VM]", a)}
    assert set(names[flags["bottom"].to_numpy()]) == {a for a in FRENCH_ASSETS if re.match("S1[VM]", a)}
    assert flags["top"].sum() == flags["bottom"].sum() == 6 * 12 * 30
