"""Tests of fapm_jax/panel.py: construction, validation errors, feature selection, frames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fapm_jax.core.errors import DataError
from fapm_jax.data.panel import Panel, sort_panel_arrays

MONTHS = [198701, 198702, 198801]
PERMNOS = [10001, 10002, 10005, 10007]
FEATURES = ("mom1m", "bm", "dp", "tbl")


def make_kwargs(**over):
    """A valid panel's fields: 3 months × 4 stocks, sorted by (month, permno)."""
    rng = np.random.default_rng(0)
    month = np.repeat(np.array(MONTHS, np.int32), len(PERMNOS))
    permno = np.tile(np.array(PERMNOS, np.int64), len(MONTHS))
    n = month.size
    kw = dict(
        X=rng.normal(size=(n, len(FEATURES))).astype(np.float32),
        r=rng.normal(scale=0.1, size=n).astype(np.float32),
        permno=permno,
        month=month,
        mktcap=rng.uniform(1, 100, n).astype(np.float32),
        feature_names=FEATURES,
        macro_names=("tbl",),
        sic2=rng.integers(1, 99, n).astype(np.int32),
        name="toy",
    )
    kw.update(over)
    return kw


def test_valid_panel_and_properties():
    kw = make_kwargs()
    p = Panel(**kw)
    assert p.n_rows == 12 and p.n_features == 4
    np.testing.assert_array_equal(p.year, [1987] * 8 + [1988] * 4)
    np.testing.assert_array_equal(p.years, [1987, 1988])
    assert p.char_names == ("mom1m", "bm", "dp")
    Panel(**make_kwargs(sic2=None, macro_names=()))  # optional fields


def _bad(match, **over):
    with pytest.raises(DataError, match=match):
        Panel(**make_kwargs(**over))


def test_non_finite_factor_names_factor_permno_month():
    X = make_kwargs()["X"].copy()
    X[5, 2] = np.nan  # row 5 = month 198702, permno 10002; column 'dp'
    _bad(r"panel 'toy': non-finite factor 'dp' at permno 10002, month 198702 \(1 such values\)", X=X)
    X = make_kwargs()["X"].copy()
    X[9, 1] = np.inf
    X[11, 0] = -np.inf
    _bad(r"non-finite factor 'bm' at permno 10002, month 198801 \(2 such values\)", X=X)


@pytest.mark.parametrize("field", ["r", "mktcap"])
def test_non_finite_target_or_mktcap(field):
    arr = make_kwargs()[field].copy()
    arr[3] = np.nan  # month 198701, permno 10007
    arr[7] = np.inf
    _bad(rf"non-finite {field} at permno 10007, month 198701 \(2 such rows\)", **{field: arr})


def test_duplicate_key():
    permno = make_kwargs()["permno"].copy()
    permno[5] = permno[4]  # month 198702: 10001, 10001
    _bad(r"duplicate key permno 10001, month 198702", permno=permno)


def test_unsorted_rows():
    kw = make_kwargs()
    order = np.arange(12)
    order[[4, 5]] = order[[5, 4]]  # swap two stocks within a month
    _bad(
        r"rows must be sorted by \(month, permno\)",
        **{k: kw[k][order] for k in ("X", "r", "permno", "month", "mktcap", "sic2")},
    )
    month = kw["month"][::-1].copy()  # months out of order
    _bad(r"sorted", month=month)


def test_wrong_dtypes():
    kw = make_kwargs()
    _bad(r"X and r must be float32 \(got float64, float32\)", X=kw["X"].astype(np.float64))
    _bad(r"X and r must be float32 \(got float32, float64\)", r=kw["r"].astype(np.float64))


def test_wrong_shapes():
    kw = make_kwargs()
    _bad(r"X must be 2-D \[rows, factors\], got shape \(48,\)", X=kw["X"].ravel())
    _bad(r"r has shape \(11,\), expected \(12,\)", r=kw["r"][:11])
    _bad(r"month has shape \(12, 1\), expected \(12,\)", month=kw["month"][:, None])
    _bad(r"sic2 has shape \(10,\), expected \(12,\)", sic2=kw["sic2"][:10])
    _bad(r"3 feature names for 4 columns of X", feature_names=FEATURES[:3])


@pytest.mark.parametrize("bad_month", [198713, 198700])
def test_month_not_yyyymm(bad_month):
    month = make_kwargs()["month"].copy()
    month[8:] = bad_month  # the last month block, still sorted
    _bad(rf"month {bad_month} at row 8 is not a YYYYMM date", month=month)


def test_duplicate_and_unknown_names():
    _bad(r"duplicate factor name\(s\) bm", feature_names=("mom1m", "bm", "bm", "tbl"))
    _bad(r"macro name\(s\) not among the factors: gdp", macro_names=("gdp",))


def test_feature_index_and_select_features():
    p = Panel(**make_kwargs())
    np.testing.assert_array_equal(p.feature_index(["tbl", "mom1m"]), [3, 0])
    with pytest.raises(DataError, match=r"unknown factor\(s\) foo, bar"):
        p.feature_index(["bm", "foo", "bar"])
    q = p.select_features(["tbl", "bm"])
    assert q.feature_names == ("tbl", "bm")
    assert q.macro_names == ("tbl",)
    assert q.char_names == ("bm",)
    np.testing.assert_array_equal(q.X, p.X[:, [3, 1]])
    assert q.X.flags.c_contiguous
    np.testing.assert_array_equal(q.r, p.r)
    assert q.name == "toy"
    assert p.select_features(["bm"]).macro_names == ()
    with pytest.raises(DataError, match="unknown factor"):
        p.select_features(["nope"])


def test_to_frame_round_trip():
    p = Panel(**make_kwargs())
    f = p.to_frame()
    assert f.columns == ["permno", "month", "r", "mktcap", "sic2", *FEATURES]
    assert f.height == 12
    for col in ("permno", "month", "r", "mktcap", "sic2"):
        np.testing.assert_array_equal(f[col].to_numpy(), getattr(p, col))
    np.testing.assert_array_equal(f.select(list(FEATURES)).to_numpy(), p.X)
    # Rebuild the panel from the frame: it validates and equals the original.
    back = Panel(
        X=f.select(list(FEATURES)).to_numpy().astype(np.float32),
        r=f["r"].to_numpy(),
        permno=f["permno"].to_numpy(),
        month=f["month"].to_numpy(),
        mktcap=f["mktcap"].to_numpy(),
        feature_names=FEATURES,
        macro_names=("tbl",),
        sic2=f["sic2"].to_numpy(),
        name="toy",
    )
    for field in ("X", "r", "permno", "month", "mktcap", "sic2"):
        np.testing.assert_array_equal(getattr(back, field), getattr(p, field))
    assert "sic2" not in Panel(**make_kwargs(sic2=None)).to_frame().columns


def test_sort_panel_arrays():
    rng = np.random.default_rng(1)
    month = rng.choice(MONTHS, 30).astype(np.int32)
    permno = rng.integers(1, 50, 30)
    order = sort_panel_arrays(month, permno)
    ref = sorted(range(30), key=lambda i: (month[i], permno[i], i))
    keys = list(zip(month[order], permno[order]))
    assert keys == [(month[i], permno[i]) for i in ref]


def test_panel_is_immutable():
    p = Panel(**make_kwargs())
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "x"  # type: ignore[misc]


def test_with_sic2_dummies():
    from fapm_jax import SimConfig, simulate_panel

    p, _ = simulate_panel(SimConfig(n_stocks=20, n_chars=6, first_month=200001, last_month=200012))
    q = p.with_sic2_dummies()
    codes = np.unique(p.sic2)
    assert q.feature_names[: p.n_features] == p.feature_names
    assert q.feature_names[p.n_features :] == tuple(f"sic2_{c:02d}" for c in codes)
    D = q.X[:, p.n_features :]
    np.testing.assert_array_equal(D.sum(axis=1), 1.0)  # one-hot
    np.testing.assert_array_equal(codes[D.argmax(axis=1)], p.sic2)
    with pytest.raises(DataError, match="already has SIC2"):
        q.with_sic2_dummies()
    with pytest.raises(DataError, match="no sic2"):
        dataclasses.replace(p, sic2=None).with_sic2_dummies()
