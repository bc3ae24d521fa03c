"""RF and GBRT / GBRT+H (fapm_jax.baselines.trees).

References are independent loops over scikit-learn's ``RandomForestRegressor`` and LightGBM's
scikit-learn API (``LGBMRegressor``) with the same seeds, staged validation SSE by
``predict(num_iteration=k)`` for every ``k``, a numpy Huber threshold, and per-window loops for
the rolling driver. Small data and trimmed grids keep the file fast (``n_jobs=1`` throughout,
except where the row-parallel forest forecast is checked).
"""

from __future__ import annotations

import importlib.util
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import one_line_error

from fapm_jax.baselines import OLS, fit_rolling, huber_threshold, predict_rolling
from fapm_jax.baselines.trees import GBRT, RF, forest_predict, key_seed

lightgbm = pytest.importorskip("lightgbm")
ensemble = pytest.importorskip("sklearn.ensemble")

KEY = jax.random.key(7)


def seed_of(key) -> int:
    """The documented seed rule, written out independently."""
    return int(jax.random.randint(key, (), 0, 2**31 - 1, dtype=jnp.int32))


def make_data(seed: int = 0, N: int = 1600, P: int = 6, noise: float = 0.5, t_noise: bool = False):
    """``y = 1{x0 > 0}·x1 + 0.3·x2 + noise``; rows split 50/25/25 into train/valid/test."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, P)).astype(np.float32)
    e = rng.standard_t(2, N) if t_noise else rng.standard_normal(N)
    y = (X[:, 0] > 0) * X[:, 1] + 0.3 * X[:, 2] + noise * e
    u = rng.uniform(size=N)
    train = (u < 0.5).astype(np.float32)
    valid = ((u >= 0.5) & (u < 0.75)).astype(np.float32)
    test = u >= 0.75
    return X, y, train, valid, test


@pytest.fixture(scope="module")
def data():
    return make_data()


def lgbm(depth: int, lr: float, n: int, seed: int, **kw):
    return lightgbm.LGBMRegressor(
        n_estimators=n,
        num_leaves=2**depth,
        max_depth=depth,
        learning_rate=lr,
        random_state=seed,
        n_jobs=1,
        deterministic=True,
        force_col_wise=True,
        verbose=-1,
        **kw,
    )


def staged_path(model, X, y) -> np.ndarray:
    """Validation SSE of the first ``k`` trees, ``k = 1..n``, one ``predict`` per ``k``."""
    n = model.booster_.num_trees()
    return np.array([np.sum((y - model.predict(X, num_iteration=k)) ** 2) for k in range(1, n + 1)])


# ----------------------------------------------------------------------------- RF


def test_rf_choice_and_forecasts_equal_an_independent_sklearn_loop(data):
    X, y, train, valid, test = data
    tr, va = train > 0, valid > 0
    model = RF(n_estimators=20, max_depth=(2, 5), max_features=(2, 4, 30, 50), n_jobs=1)
    fit = model.fit(X, y, train, valid, KEY)
    seed = seed_of(KEY)
    grid = [(2, 2), (2, 4), (2, 6), (5, 2), (5, 4), (5, 6)]  # 30, 50 > P = 6: clipped, deduplicated
    assert model.grid(X.shape[1]) == grid
    sse, forests = [], []
    for d, f in grid:
        ref = ensemble.RandomForestRegressor(
            n_estimators=20, max_depth=d, max_features=f, random_state=seed, n_jobs=1
        ).fit(X[tr], y[tr])
        sse.append(np.sum((y[va] - ref.predict(X[va])) ** 2))
        forests.append(ref)
    np.testing.assert_allclose(fit.valid_sse, sse, rtol=1e-12)
    assert fit.choice == int(np.argmin(sse))
    assert (fit.params.max_depth, fit.params.max_features) == grid[fit.choice]
    assert len(set(np.round(sse, 6))) > 1  # the grid points differ, so the choice means something
    np.testing.assert_array_equal(model.predict(fit.params, X[test]), forests[fit.choice].predict(X[test]))


def test_forest_forecast_is_fixed_order_mean_for_any_threads(data):
    X, y, train, _, _ = data
    forest = ensemble.RandomForestRegressor(n_estimators=15, max_depth=4, random_state=3, n_jobs=1)
    forest.fit(X[train > 0], y[train > 0])
    big = np.random.default_rng(1).standard_normal((9000, X.shape[1])).astype(np.float32)
    ref = forest.predict(big)
    np.testing.assert_array_equal(forest_predict(forest, big, n_jobs=1), ref)
    np.testing.assert_array_equal(forest_predict(forest, big, n_jobs=2), ref)  # row blocks in threads


def test_rf_same_key_same_forecasts_other_key_other_forecasts(data):
    X, y, train, valid, test = data
    model = RF(n_estimators=10, max_depth=(3,), max_features=(3,), n_jobs=1)
    a = model.predict(model.fit(X, y, train, valid, KEY).params, X[test])
    b = model.predict(model.fit(X, y, train, valid, KEY).params, X[test])
    c = model.predict(model.fit(X, y, train, valid, jax.random.key(8)).params, X[test])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ----------------------------------------------------------------------------- GBRT


def test_gbrt_grid_and_tree_count_equal_independent_staged_evaluation(data):
    X, y, train, valid, test = data
    tr, va = train > 0, valid > 0
    n = 120
    model = GBRT(max_depth=(1, 2), learning_rate=(0.1, 0.4), n_trees=n, n_jobs=1)
    fit = model.fit(X, y, train, valid, KEY)
    seed = seed_of(KEY)
    grid = [(1, 0.1), (1, 0.4), (2, 0.1), (2, 0.4)]
    assert model.grid() == grid
    paths = []
    for d, lr in grid:
        ref = lgbm(d, lr, n, seed).fit(X[tr], y[tr])
        paths.append(staged_path(ref, X[va], y[va]))
    best = np.array([p.min() for p in paths])
    np.testing.assert_allclose(fit.valid_sse, best, rtol=1e-10)
    g = int(np.argmin(best))
    assert fit.choice == g
    k = int(np.argmin(paths[g])) + 1
    assert fit.params.n_trees == k
    assert 1 < k < n  # an interior optimum: the count was really chosen
    assert (fit.params.max_depth, fit.params.learning_rate) == grid[g]
    assert fit.params.huber_alpha is None
    assert fit.params.booster.params["objective"] == "regression"
    # the first k trees of the long booster are the booster grown for exactly k rounds
    refit = lgbm(*grid[g], k, seed).fit(X[tr], y[tr])
    np.testing.assert_array_equal(model.predict(fit.params, X[test]), refit.predict(X[test]))


def test_gbrt_huber_threshold_and_objective():
    X, y, train, valid, test = make_data(seed=5, N=1400, t_noise=True)
    tr = train > 0
    model = GBRT(max_depth=(2,), learning_rate=(0.1,), n_trees=80, huber=True, n_jobs=1)
    fit = model.fit(X, y, train, valid, KEY)
    # numpy: 0.999 quantile (lower) of |OLS residual| on the training rows
    A = np.column_stack([np.ones(tr.sum()), X[tr].astype(np.float64)])
    coef = np.linalg.lstsq(A, y[tr], rcond=None)[0]
    r = np.sort(np.abs(y[tr] - A @ coef))
    xi = r[int(np.floor(0.999 * (r.size - 1)))]
    alpha = fit.params.huber_alpha
    np.testing.assert_allclose(alpha, xi, rtol=1e-4)
    np.testing.assert_allclose(alpha, float(huber_threshold(X, y.astype(np.float32), train)), rtol=1e-5)
    assert alpha < np.abs(y[tr] - A @ coef).max()  # it clips the tail
    params = fit.params.booster.params
    assert params["objective"] == "huber" and params["alpha"] == alpha
    # the forecasts are LightGBM's Huber boosting with that alpha, refit for the chosen count
    refit = lgbm(2, 0.1, fit.params.n_trees, seed_of(KEY), objective="huber", alpha=alpha).fit(X[tr], y[tr])
    got = model.predict(fit.params, X[test])
    np.testing.assert_array_equal(got, refit.predict(X[test]))
    l2 = GBRT(max_depth=(2,), learning_rate=(0.1,), n_trees=80, n_jobs=1)
    assert not np.allclose(got, l2.predict(l2.fit(X, y, train, valid, KEY).params, X[test]))
    # a fixed threshold is passed through
    fixed = GBRT(max_depth=(1,), learning_rate=(0.1,), n_trees=5, huber=True, huber_xi=0.25, n_jobs=1)
    p = fixed.fit(X, y, train, valid, KEY).params
    assert p.huber_alpha == 0.25 and p.booster.params["alpha"] == 0.25


def test_gbrt_same_key_same_forecasts(data):
    X, y, train, valid, test = data
    model = GBRT(max_depth=(2,), learning_rate=(0.1,), n_trees=40, n_jobs=1)
    a = model.predict(model.fit(X, y, train, valid, KEY).params, X[test])
    b = model.predict(model.fit(X, y, train, valid, KEY).params, X[test])
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- both


def r2(y, y_hat):
    return 1.0 - np.sum((y - y_hat) ** 2) / np.sum((y - y.mean()) ** 2)


def test_trees_capture_a_planted_interaction():
    rng = np.random.default_rng(11)
    N, P = 3000, 6
    X = rng.standard_normal((N, P)).astype(np.float32)
    y = (X[:, 0] > 0) * X[:, 1] + 0.5 * rng.standard_normal(N)
    u = rng.uniform(size=N)
    train = (u < 0.5).astype(np.float32)
    valid = ((u >= 0.5) & (u < 0.75)).astype(np.float32)
    te = u >= 0.75
    ols = OLS()
    r2_ols = r2(y[te], np.asarray(ols.predict(ols.fit(X, y, train, valid, None).params, X[te])))
    rf = RF(n_estimators=40, max_depth=(2, 6), max_features=(2, 6), n_jobs=1)
    r2_rf = r2(y[te], rf.predict(rf.fit(X, y, train, valid, KEY).params, X[te]))
    gb = GBRT(max_depth=(1, 2), learning_rate=(0.1,), n_trees=200, n_jobs=1)
    gfit = gb.fit(X, y, train, valid, KEY)
    r2_gb = r2(y[te], gb.predict(gfit.params, X[te]))
    assert r2_ols < 0.45
    assert r2_rf > r2_ols + 0.15, (r2_rf, r2_ols)
    assert r2_gb > r2_ols + 0.15, (r2_gb, r2_ols)
    assert gfit.params.max_depth == 2  # stumps are additive: they cannot fit the interaction


@pytest.mark.parametrize(
    "model",
    [
        RF(n_estimators=10, max_depth=(2, 4), max_features=(3,), n_jobs=1),
        GBRT(max_depth=(1, 2), learning_rate=(0.1,), n_trees=40, huber=True, n_jobs=1),
    ],
    ids=["RF", "GBRT+H"],
)
def test_rows_outside_the_masks_never_matter(data, model):
    X, y, train, valid, test = data
    out = (train == 0) & (valid == 0)
    rng = np.random.default_rng(2)
    X2, y2 = X.copy(), y.copy()
    X2[out] = rng.normal(50.0, 30.0, (out.sum(), X.shape[1]))
    X2[np.flatnonzero(out)[::7], 1] = np.nan
    y2[out] = 1e6
    a = model.fit(X, y, train, valid, KEY)
    b = model.fit(X2, y2, train, valid, KEY)
    np.testing.assert_array_equal(a.valid_sse, b.valid_sse)
    assert a.choice == b.choice
    np.testing.assert_array_equal(model.predict(a.params, X[test]), model.predict(b.params, X[test]))


@pytest.mark.parametrize(
    "model",
    [
        RF(n_estimators=8, max_depth=(2, 4), max_features=(2, 5), n_jobs=1),
        GBRT(max_depth=(1, 2), learning_rate=(0.1,), n_trees=30, n_jobs=1),
    ],
    ids=["RF", "GBRT"],
)
def test_rolling_driver_equals_a_manual_window_loop(synth, model):
    key = jax.random.key(3)
    roll = fit_rolling(model, synth.X, synth.r, synth.train, synth.valid, key)
    got = predict_rolling(model, roll, synth.X, synth.test)
    W = synth.train.shape[0]
    assert roll.valid_sse.shape == (
        W,
        len(model.grid(synth.X.shape[1]) if isinstance(model, RF) else model.grid()),
    )
    want = np.zeros(synth.X.shape[0], synth.X.dtype)
    for w in range(W):
        f = model.fit(
            synth.X,
            synth.r,
            synth.train[w].astype(np.float32),
            synth.valid[w].astype(np.float32),
            jax.random.fold_in(key, w),
        )
        np.testing.assert_array_equal(roll.valid_sse[w], f.valid_sse)
        assert roll.choice[w] == f.choice
        rows = np.flatnonzero(synth.test[w])
        want[rows] = model.predict(f.params, synth.X[rows])
    np.testing.assert_array_equal(got, want)
    assert np.all(got[synth.test.any(axis=0)] != 0.0)


# ----------------------------------------------------------------------------- packaging


def test_seed_rule(x64):
    assert key_seed(KEY) == seed_of(KEY)  # also under float64 mode (x64 fixture)
    assert key_seed(None) == 0


def test_missing_libraries_give_a_one_line_install_hint(data, monkeypatch):
    X, y, train, valid, _ = data
    monkeypatch.setitem(sys.modules, "lightgbm", None)
    monkeypatch.setitem(sys.modules, "sklearn.ensemble", None)
    hint = r'pip install "fapm-jax\[trees\]"'
    one_line_error(
        ImportError, lambda: GBRT(name="GBRT+H").fit(X, y, train, valid, KEY), "GBRT\\+H", "lightgbm", hint
    )
    one_line_error(ImportError, lambda: RF().fit(X, y, train, valid, KEY), "RF", "sklearn", hint)
    # and the module itself imports without either library
    import fapm_jax.baselines.trees as trees

    monkeypatch.setitem(sys.modules, "sklearn", None)
    spec = importlib.util.spec_from_file_location("fapm_jax.baselines._trees_probe", trees.__file__)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)
    spec.loader.exec_module(mod)
    assert mod.GBRT().n_trees == 1000 and mod.RF().n_estimators == 300


def test_defaults_are_gkx():
    rf, gb = RF(), GBRT()
    assert rf.n_estimators == 300 and rf.max_depth == (1, 2, 3, 4, 5, 6)
    assert rf.max_features == (3, 5, 10, 20, 30, 50) and rf.max_samples is None
    assert len(rf.grid(920)) == 36 and len(rf.grid(6)) == 6 * 3  # {3, 5, 6} when P = 6
    assert gb.max_depth == (1, 2) and gb.learning_rate == (0.01, 0.1) and gb.n_trees == 1000
    assert not rf.is_jax and not gb.is_jax and not gb.huber


def test_needs_training_and_validation_rows(data):
    X, y, train, _, _ = data
    one_line_error(ValueError, lambda: RF().fit(X, y, train, np.zeros_like(train), KEY), "RF", "validation")
