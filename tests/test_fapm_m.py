"""FAPM-m (fapm_jax/fapm_m.py): window importance against scikit-learn OLS, the top/bottom
masks by hand, the masked trainer against training on the kept columns alone (OLS start,
predictions), the m-sweep as one program against separate runs, no look-ahead in the
selection, and the sweep's R² against a numpy recomputation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from fapm_jax import SimConfig, WindowSpec, rolling_windows, simulate_panel, window_masks
from fapm_jax.core.config import TrainConfig
from fapm_jax.core.fit import fit_windows
from fapm_jax.core.linear import fit_ols
from fapm_jax.core.model import FAPMParams, predict, with_feature_mask
from fapm_jax.studies.fapm_m import (
    fapm_m_features,
    fapm_m_hyper,
    fapm_m_sweep,
    top_bottom_mask,
    window_importance,
)

SPEC = WindowSpec(first_year=1957, valid_years=6, first_test_year=1970, n_windows=3)
CFG = TrainConfig(rank=3, learning_rate=1e-2, epochs=8)
ATOL32 = 1e-5  # float32, vmapped vs separate programs (see tests/test_train.py)


@pytest.fixture(scope="module")
def panel():
    p, _ = simulate_panel(SimConfig(n_stocks=30, n_chars=6, first_month=195701, last_month=197212))
    return p


@pytest.fixture(scope="module")
def masks(panel):
    return window_masks(panel.year, rolling_windows(SPEC))


def test_window_importance_matches_sklearn(panel, masks):
    train, _, _ = masks
    imp = np.asarray(
        window_importance(jnp.asarray(panel.X), jnp.asarray(panel.r), jnp.asarray(train, jnp.float32))
    )
    for w in range(train.shape[0]):
        rows = train[w]
        coef = LinearRegression().fit(panel.X[rows].astype(np.float64), panel.r[rows]).coef_
        ref = np.abs(coef) / np.abs(coef).sum()
        np.testing.assert_allclose(imp[w], ref, atol=2e-4)
        assert imp[w].sum() == pytest.approx(1.0, abs=1e-5)


def test_top_bottom_mask_by_hand():
    imp = jnp.asarray([0.30, 0.05, 0.20, 0.01, 0.40, 0.04])  # order: 4, 0, 2, 1, 5, 3
    np.testing.assert_array_equal(top_bottom_mask(imp, 1), [0, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(top_bottom_mask(imp, 2), [1, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(top_bottom_mask(imp, 3), [1] * 6)  # 2m >= n: all factors
    np.testing.assert_array_equal(top_bottom_mask(imp, None), [1] * 6)
    with pytest.raises(ValueError, match="m must be"):
        top_bottom_mask(imp, 0)
    f = fapm_m_features(jnp.stack([imp, imp[::-1]]), [1, None])
    assert f.shape == (2, 2, 6)
    np.testing.assert_array_equal(f[0, 1], [0, 1, 1, 0, 0, 0])  # reversed importances


def test_top_bottom_among_ranked_columns_only():
    """Unranked columns (the SIC2 dummies) are always kept and do not compete."""
    imp = jnp.asarray([0.30, 0.05, 0.20, 0.01, 0.40, 0.04, 0.0, 0.0])
    ranked = np.array([1, 1, 1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(top_bottom_mask(imp, 1, ranked), [0, 0, 0, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(top_bottom_mask(imp, 2, ranked), [1, 0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(top_bottom_mask(imp, 3, ranked), [1] * 8)


def test_masked_model_equals_model_on_kept_columns(panel, masks):
    """The masked OLS start is OLS on the kept columns (zeros elsewhere), and a masked FAPM
    predicts as the FAPM of the kept rows of w and V on the kept columns."""
    train, _, _ = masks
    X, r = jnp.asarray(panel.X), jnp.asarray(panel.r)
    keep = np.array([1, 0, 1, 1, 0, 0] + [0] * (X.shape[1] - 6), np.float32)
    keep[-1] = 1  # a macro predictor too
    cols = np.flatnonzero(keep)
    m = jnp.asarray(train[0], jnp.float32)
    w0, w = fit_ols(X, r, m, columns=jnp.asarray(keep))
    w0s, ws = fit_ols(X[:, cols], r, m)
    np.testing.assert_allclose(np.asarray(w)[cols], ws, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(w)[keep == 0], 0.0)
    assert float(w0) == pytest.approx(float(w0s), rel=1e-4, abs=1e-6)
    rng = np.random.default_rng(0)
    n, k = X.shape[1], 3
    p = FAPMParams(
        w0=jnp.asarray(0.1),
        w=jnp.asarray(rng.normal(size=n), jnp.float32),
        V=jnp.asarray(rng.normal(size=(n, k)), jnp.float32),
    )
    masked = with_feature_mask(p, jnp.asarray(keep))
    sub = FAPMParams(w0=p.w0, w=p.w[cols], V=p.V[cols])
    np.testing.assert_allclose(predict(masked, X), predict(sub, X[:, cols]), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def sweep(panel):
    return fapm_m_sweep(panel, CFG, SPEC, ms=(1, 2, None))


def test_sweep_equals_separate_runs(panel, masks, sweep):
    """Two values of m run alone (one setting each) give the sweep's parameters; masked
    factors keep exactly zero parameters throughout."""
    train, valid, _ = masks
    for i, m in enumerate(sweep.ms[:2]):
        alone = fit_windows(
            panel.X,
            panel.r,
            train,
            valid,
            CFG,
            hyper=fapm_m_hyper(CFG, jnp.asarray(sweep.features[i : i + 1])),
        )
        for leaf_s, leaf_a in zip(
            jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a: a[i], sweep.result.params)),
            jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a: a[0], alone.params)),
        ):
            np.testing.assert_allclose(leaf_s, leaf_a, atol=ATOL32)
        out = sweep.features[i] == 0  # [W, n]
        assert out.sum() > 0
        np.testing.assert_array_equal(np.asarray(sweep.result.params.w)[i][out], 0.0)
        np.testing.assert_array_equal(np.asarray(sweep.result.params.V)[i][out], 0.0)
        assert (sweep.features[i].sum(axis=1) == 2 * m).all()
    assert sweep.features[2].min() == 1.0  # "all factors"
    # different subsets are different models
    assert not np.allclose(sweep.r2_oos[0], sweep.r2_oos[2])


def test_selection_has_no_look_ahead(panel, masks):
    """Changing every return outside window 0's training rows leaves window 0's importances
    and subsets unchanged (and changes those of a later window)."""
    train, _, _ = masks
    X = jnp.asarray(panel.X)
    tm = jnp.asarray(train, jnp.float32)
    r2 = panel.r.copy()
    future = ~train[0]
    r2[future] = np.random.default_rng(1).normal(size=int(future.sum())).astype(r2.dtype)
    a = np.asarray(window_importance(X, jnp.asarray(panel.r), tm))
    b = np.asarray(window_importance(X, jnp.asarray(r2), tm))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(
        fapm_m_features(jnp.asarray(a), [2])[0, 0], fapm_m_features(jnp.asarray(b), [2])[0, 0]
    )
    assert not np.allclose(a[2], b[2])


def test_sweep_r2_matches_numpy(panel, masks, sweep):
    train, _, test = masks
    y = panel.r.astype(np.float64)
    for i in range(len(sweep.ms)):
        sse_oos = tot_oos = sse_is = tot_is = 0.0
        for w in range(train.shape[0]):
            p = jax.tree_util.tree_map(lambda a: a[i, w], sweep.result.params)
            yh = np.asarray(predict(p, jnp.asarray(panel.X)), np.float64)
            sse_oos += np.sum((y - yh)[test[w]] ** 2)
            tot_oos += np.sum(y[test[w]] ** 2)
            sse_is += np.sum((y - yh)[train[w]] ** 2)
            tot_is += np.sum(y[train[w]] ** 2)
            r2_w = 1 - np.sum((y - yh)[train[w]] ** 2) / np.sum(y[train[w]] ** 2)
            assert sweep.r2_is_window[i, w] == pytest.approx(r2_w, abs=1e-5)
        assert sweep.r2_oos[i] == pytest.approx(1 - sse_oos / tot_oos, abs=1e-5)
        assert sweep.r2_is[i] == pytest.approx(1 - sse_is / tot_is, abs=1e-5)
    sel = sweep.selected(1, window=0)
    assert len(sel) == 2 and sel[0][1] >= sel[1][1]
    assert sweep.ranking == "window"


def test_figure5_is_written(sweep, tmp_path):
    from fapm_jax.core.io import save_figure
    from fapm_jax.reporting.figures import fapm_m_figure

    path = save_figure(tmp_path / "f5.png", fapm_m_figure(sweep.ms, sweep.r2_oos, sweep.r2_is, "FAPM-m"))
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_test_forecasts_are_the_sweeps_models(sweep, panel):
    """Table 1's FAPM-m row: each test row forecast by its window's FAPM-m, 0 outside the test
    years, and the pooled R²_oos of those forecasts is the sweep's."""
    _, _, test = window_masks(panel.year, rolling_windows(SPEC))
    rows = test.any(axis=0)
    y = np.asarray(panel.r, np.float64)
    for i, m in enumerate(sweep.ms):
        r_hat = sweep.test_forecasts(m, panel, SPEC)
        assert r_hat.shape == (panel.n_rows,) and (r_hat[~rows] == 0).all()
        e = (y - r_hat)[rows]
        assert 1 - (e @ e) / (y[rows] @ y[rows]) == pytest.approx(sweep.r2_oos[i], abs=1e-5)


def test_train_mean_level_is_the_sweep_of_the_deviations_plus_the_training_mean(panel):
    """TrainConfig(level="train-mean"): FAPM-m ranked and fit on the months' deviations (a
    hand-demeaned panel's sweep), its forecasts plus each window's mean training return, and
    its R²_oos that of r recomputed from those forecasts."""
    r = np.asarray(panel.r, np.float64)
    dev = r.copy()
    for m in np.unique(panel.month):
        dev[panel.month == m] -= r[panel.month == m].mean()
    cfg = dataclasses.replace(CFG, epochs=4)
    ref = fapm_m_sweep(dataclasses.replace(panel, r=dev.astype(np.float32)), cfg, SPEC, ms=(2, None))
    got = fapm_m_sweep(panel, dataclasses.replace(cfg, level="train-mean"), SPEC, ms=(2, None))
    train, _, test = window_masks(panel.year, rolling_windows(SPEC))
    mu = np.array([r[m].mean() for m in train])
    np.testing.assert_array_equal(got.features, ref.features)
    rows, level = test.any(axis=0), test.T.astype(float) @ mu
    for i, m in enumerate(got.ms):
        f = got.test_forecasts(m, panel, SPEC)
        np.testing.assert_allclose(f, ref.test_forecasts(m, panel, SPEC) + level, atol=1e-6)
        e = (r - f)[rows]
        assert 1 - (e @ e) / (r[rows] @ r[rows]) == pytest.approx(got.r2_oos[i], abs=1e-5)


def test_full_sample_ranking_and_bad_requests(panel):
    s = fapm_m_sweep(panel, dataclasses.replace(CFG, epochs=1), SPEC, ms=(1,), ranking="full")
    assert s.ranking == "full"
    assert np.allclose(s.importance[0], s.importance[-1])  # one ranking for every window
    with pytest.raises(ValueError, match="ranking"):
        fapm_m_sweep(panel, CFG, SPEC, ms=(1,), ranking="future")
    with pytest.raises(ValueError, match="positive integer"):
        fapm_m_sweep(panel, CFG, SPEC, ms=(0,))


def test_sweep_with_sic2_dummies_always_kept(panel):
    """The paper's "with SIC2" sweep: every subset holds all dummies plus 2m ranked factors;
    the dummies take no part in the ranking (importance 0)."""
    p2 = panel.with_sic2_dummies()
    dummies = [f for f in p2.feature_names if f.startswith("sic2_")]
    s = fapm_m_sweep(p2, dataclasses.replace(CFG, epochs=2), SPEC, ms=(1, 2), always=dummies)
    idx = p2.feature_index(dummies)
    assert (s.features[:, :, idx] == 1).all()
    assert (s.features.sum(axis=2) == np.array([2, 4])[:, None] + len(dummies)).all()
    assert (s.importance[:, idx] == 0).all()
    assert all(not f.startswith("sic2_") for f, _ in s.selected(2, 1))
    # the ranked factors' importances equal those of the panel without dummies (OLS on them)
    base = np.asarray(
        window_importance(
            jnp.asarray(panel.X),
            jnp.asarray(panel.r),
            jnp.asarray(window_masks(panel.year, rolling_windows(SPEC))[0], jnp.float32),
        )
    )
    np.testing.assert_allclose(s.importance[:, : panel.X.shape[1]], base, atol=1e-5)
