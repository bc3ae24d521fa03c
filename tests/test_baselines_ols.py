"""OLS / OLS-3 (+H) and the suite's shared machinery (fapm_jax.baselines.base / .ols).

References: scikit-learn LinearRegression (OLS, OLS-3) and HuberRegressor (+H: at its optimum
its coefficients minimise GKX's Huber loss with threshold ``epsilon · scale_``), numpy for the
Huber threshold, and per-window loops for the vmapped driver.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import HuberRegressor, LinearRegression

from fapm_jax.baselines import (
    OLS,
    choose,
    fit_huber,
    fit_rolling,
    huber_threshold,
    linear_predict,
    predict_rolling,
)
from fapm_jax.core.losses import huber

KEY2 = jax.random.key(2)


@pytest.fixture
def heavy():
    rng = np.random.default_rng(3)
    N, P = 1500, 6
    X = rng.uniform(-1, 1, (N, P))
    y = X @ np.array([0.3, -0.2, 0.1, 0.0, 0.05, 0.0]) + 0.1 * rng.standard_t(2, N)
    train = (rng.uniform(size=N) < 0.6).astype(float)
    valid = 1.0 - train
    return X, y, train, valid


def test_ols_equals_sklearn_on_training_rows(heavy, x64):
    X, y, train, valid = heavy
    fit = OLS().fit(jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), jnp.asarray(valid), None)
    rows = train > 0
    ref = LinearRegression().fit(X[rows], y[rows])
    np.testing.assert_allclose(np.asarray(fit.params.b), ref.coef_, atol=1e-10)
    np.testing.assert_allclose(float(fit.params.b0), ref.intercept_, atol=1e-10)
    sse = np.sum((y - ref.predict(X))[valid > 0] ** 2)
    np.testing.assert_allclose(float(fit.valid_sse[0]), sse, rtol=1e-10)


def test_ols3_uses_only_its_columns(heavy, x64):
    X, y, train, valid = heavy
    cols = (0, 2, 4)
    fit = OLS(name="OLS-3", columns=cols).fit(
        jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), jnp.asarray(valid), None
    )
    rows = train > 0
    ref = LinearRegression().fit(X[rows][:, cols], y[rows])
    b = np.asarray(fit.params.b)
    np.testing.assert_allclose(b[list(cols)], ref.coef_, atol=1e-10)
    assert np.all(b[[1, 3, 5]] == 0.0)
    np.testing.assert_allclose(float(fit.params.b0), ref.intercept_, atol=1e-10)


def test_huber_irls_equals_sklearn_huber_regressor(heavy, x64):
    """At sklearn's joint optimum (w, σ), w minimises Σ H(y − Xw; ε·σ): same coefficients."""
    X, y, train, _ = heavy
    rows = train > 0
    hr = HuberRegressor(alpha=0.0, epsilon=1.35, max_iter=10_000, tol=1e-12).fit(X[rows], y[rows])
    p = fit_huber(
        jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), jnp.asarray(1.35 * hr.scale_), 500, 1e-13
    )
    np.testing.assert_allclose(np.asarray(p.b), hr.coef_, atol=2e-6)
    np.testing.assert_allclose(float(p.b0), hr.intercept_, atol=2e-6)
    # ... and it differs from OLS on these heavy-tailed data (the test can tell them apart).
    ols = LinearRegression().fit(X[rows], y[rows])
    assert np.max(np.abs(ols.coef_ - hr.coef_)) > 1e-2


def test_huber_irls_never_increases_the_objective(heavy, x64):
    X, y, train, _ = heavy
    X, y, m = jnp.asarray(X), jnp.asarray(y), jnp.asarray(train)
    xi = jnp.asarray(0.1)

    def obj(p):
        return float(jnp.sum(m * huber(y - linear_predict(p, X), xi)))

    values = [obj(fit_huber(X, y, m, xi, n, 0.0)) for n in (0, 1, 2, 5, 20, 100)]
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:])), values
    assert values[-1] < values[0]


def test_ols_huber_threshold_is_the_quantile_of_ols_residuals(heavy, x64):
    X, y, train, valid = heavy
    rows = train > 0
    res = np.abs(y - LinearRegression().fit(X[rows], y[rows]).predict(X))[rows]
    ref = np.quantile(res, 0.999, method="lower")
    xi = huber_threshold(jnp.asarray(X), jnp.asarray(y), jnp.asarray(train))
    np.testing.assert_allclose(float(xi), ref, rtol=1e-12)
    # OLS+H with the rule equals the IRLS fit at that threshold.
    fit = OLS(name="OLS+H", huber=True).fit(
        jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), jnp.asarray(valid), None
    )
    p = fit_huber(jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), jnp.asarray(ref))
    np.testing.assert_allclose(np.asarray(fit.params.b), np.asarray(p.b), atol=1e-12)


def test_choose_takes_the_smallest_finite_validation_sse():
    params = {"a": jnp.arange(4.0), "b": jnp.arange(8.0).reshape(4, 2)}
    fit = choose(params, jnp.asarray([3.0, jnp.nan, 1.0, 2.0]))
    assert int(fit.choice) == 2
    assert float(fit.params["a"]) == 2.0
    np.testing.assert_array_equal(np.asarray(fit.params["b"]), [4.0, 5.0])
    assert np.isinf(np.asarray(fit.valid_sse)[1])


@pytest.mark.parametrize("model", [OLS(), OLS(name="OLS-3+H", columns=(0, 1, 3), huber=True)])
def test_vmapped_windows_equal_a_loop(synth, model):
    X, y = jnp.asarray(synth.X), jnp.asarray(synth.r)
    key = jax.random.key(0)
    rf = fit_rolling(model, X, y, synth.train, synth.valid, key)
    for w in range(synth.train.shape[0]):
        one = model.fit(
            X, y, jnp.asarray(synth.train[w], X.dtype), jnp.asarray(synth.valid[w], X.dtype), None
        )
        np.testing.assert_allclose(np.asarray(rf.params.b[w]), np.asarray(one.params.b), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(rf.valid_sse[w], np.asarray(one.valid_sse), rtol=1e-5)
    # Test-row forecasts come from the window whose test year holds the row.
    out = predict_rolling(model, rf, X, synth.test)
    for w in range(synth.test.shape[0]):
        rows = synth.test[w]
        ref = np.asarray(linear_predict(jax.tree_util.tree_map(lambda a: a[w], rf.params), X))[rows]
        np.testing.assert_allclose(out[rows], ref, rtol=1e-6, atol=1e-7)
    assert np.all(out[~synth.test.any(axis=0)] == 0.0)


TRACES: list[str] = []


class CountingOLS(OLS):
    """OLS that records every trace of its ``fit`` and ``predict``."""

    def fit(self, X, y, train, valid, key=None):
        TRACES.append("fit")
        return super().fit(X, y, train, valid, key)

    def predict(self, params, X):
        TRACES.append("predict")
        return super().predict(params, X)


def test_an_equal_model_reuses_the_compiled_programs(synth):
    """Models are static under ``eqx.filter_jit``: fitting a fresh but equal model on new data of
    the same shape compiles nothing (windows, forecasts, data sets); another grid point does."""
    TRACES.clear()
    X = jnp.asarray(synth.X)
    for seed, y in ((0, synth.r), (1, synth.r[::-1].copy())):
        model = CountingOLS(name="counted")  # a new instance each time, equal to the last
        rf = model.fit_windows(X, jnp.asarray(y), synth.train, synth.valid, jax.random.key(seed))
        model.predict_windows(rf.params, X, synth.test)
        model.fit_predict_datasets(
            jnp.stack([X, X]), jnp.stack([y, y]), synth.train[0], synth.valid[0], jax.random.split(KEY2, 2)
        )
    assert TRACES.count("fit") == 2 and TRACES.count("predict") == 2  # windows + data sets, once each
    dataclasses.replace(model, huber=True).fit_windows(X, jnp.asarray(y), synth.train, synth.valid, KEY2)
    assert TRACES.count("fit") == 3
