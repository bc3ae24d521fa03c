"""Tests of fapm_jax/baselines/glm.py (GKX spline GLM with group lasso, ±Huber).

λ = 0 against scikit-learn ``LinearRegression`` on the explicitly built basis (numpy knots),
float64, absolute tolerance 1e-8 on coefficients and forecasts (observed ~1e-13); group-lasso
KKT conditions in the standardised coordinates to 1e-8 (squared and Huber loss); a huge λ
zeroes every group; a planted ``0.5·x₁²`` is recovered out of sample (float32) where OLS fails;
validation choice, vmapped windows and retracing. Float64 through the ``x64`` fixture.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from fapm_jax.baselines.base import fit_rolling, masked_sse
from fapm_jax.baselines.glm import (
    basis_matvec,
    basis_rmatvec,
    glm,
    glm_predict,
    solve_glm,
    spline_basis,
    spline_knots,
)

N, P = 1000, 6


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2)
    X = rng.uniform(-1.0, 1.0, (N, P))
    y = 0.5 * X[:, 0] ** 2 - 0.2 * X[:, 1] + 0.3 * np.maximum(X[:, 2], 0) + 0.1 * rng.standard_t(4, N)
    u = rng.uniform(size=N)
    train = (u < 0.6).astype(np.float64)
    valid = ((u >= 0.6) & (u < 0.8)).astype(np.float64)
    return X, y, train, valid


#: FISTA iterations and Gram row blocks used throughout (one compile per loss/standardisation;
#: 256 does not divide N, so the Gram matrix's remainder block is exercised).
N_ITER, CHUNK = 2000, 256
_solve = jax.jit(solve_glm, static_argnames=("n_iter", "standardize", "restart", "row_chunk"))


def solve(X, y, train, knots, lams, xi=None, standardize=True):
    return _solve(X, y, train, knots, lams, N_ITER, xi, standardize=standardize, row_chunk=CHUNK)


@functools.cache
def jit_fit(model):
    return jax.jit(model.fit)


def _np_basis(X, train, qs=(0.25, 0.5, 0.75)):
    """Knots and basis in numpy, independently of the module."""
    knots = np.quantile(X[train > 0], qs, axis=0, method="lower").T  # [P, 3]
    t = np.maximum(X[:, :, None] - knots[None], 0.0) ** 2
    return knots, np.concatenate([X[:, :, None], t], axis=-1).reshape(len(X), -1)


def _first(p):
    return jax.tree_util.tree_map(lambda a: a[0], p)


def test_basis_knots_and_matvecs(data, x64):
    X, _, train, _ = data
    rng = np.random.default_rng(0)
    coef, v = rng.normal(size=(P, 4)), rng.normal(size=N)

    @jax.jit
    def ours(X, train, coef, v):
        knots = spline_knots(X, train)
        return (knots, spline_basis(X, knots), basis_matvec(X, knots, coef), basis_rmatvec(X, knots, v))

    knots, basis, mv, rmv = map(np.asarray, ours(X, train, coef, v))
    kn, B = _np_basis(X, train)
    np.testing.assert_array_equal(knots, kn)
    assert np.all(np.diff(kn, axis=1) > 0)
    np.testing.assert_allclose(basis.reshape(N, -1), B)
    np.testing.assert_allclose(mv, B @ coef.ravel(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rmv.ravel(), B.T @ v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("standardize", [True, False])
def test_lambda_zero_equals_linear_regression_on_basis(data, x64, standardize):
    X, y, train, _ = data
    r = train > 0
    knots, B = _np_basis(X, train)
    lr = LinearRegression().fit(B[r], y[r])
    p = _first(
        solve(
            jnp.asarray(X),
            jnp.asarray(y),
            jnp.asarray(train),
            jnp.asarray(knots),
            jnp.zeros(1),
            standardize=standardize,
        )
    )
    np.testing.assert_allclose(np.asarray(p.coef).ravel(), lr.coef_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(float(p.b0), lr.intercept_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(np.asarray(glm_predict(p, jnp.asarray(X))), lr.predict(B), atol=1e-8)


def _std_grad(X, y, train, p, xi=None):
    """Gradient of the loss w.r.t. the intercept and the standardised coefficients ``z = s⊙θ``."""
    r = train > 0
    n = train.sum()
    _, B = _np_basis(X, train)
    s = B[r].std(axis=0)
    e = y - float(p.b0) - B @ np.asarray(p.coef).ravel()
    psi = e if xi is None else np.clip(e, -xi, xi)
    w = train * psi
    g = -2.0 * (B.T @ w) / n / s  # centring drops out: Σw = 0 at the optimum (checked)
    z = (np.asarray(p.coef).ravel() * s).reshape(P, 4)
    return -2.0 * w.sum() / n, g.reshape(P, 4), z


@pytest.mark.parametrize("xi", [None, 0.1])
@pytest.mark.parametrize("lam", [3e-3, 3e-2])
def test_group_lasso_kkt(data, x64, lam, xi):
    X, y, train, _ = data
    knots = spline_knots(jnp.asarray(X), jnp.asarray(train))
    p = _first(
        solve(
            jnp.asarray(X),
            jnp.asarray(y),
            jnp.asarray(train),
            knots,
            jnp.asarray([lam]),
            None if xi is None else jnp.asarray(xi),
        )
    )
    g0, g, z = _std_grad(X, y, train, p, xi)
    tol = 1e-8
    assert abs(g0) < tol
    norms = np.linalg.norm(z, axis=1)
    zero = norms == 0.0
    # Zero groups: ||∇_j L|| ≤ λ.  Nonzero groups: ∇_j L + λ z_j/||z_j|| = 0.
    assert np.all(np.linalg.norm(g[zero], axis=1) <= lam + tol)
    np.testing.assert_allclose(g[~zero] + lam * z[~zero] / norms[~zero, None], 0.0, atol=tol)
    assert not zero[0] and not zero[1]  # the planted signal survives
    if lam == 3e-2:
        assert zero.sum() >= 1  # group sparsity really happens


def test_huge_lambda_zeroes_all_groups(data, x64):
    X, y, train, _ = data
    knots = spline_knots(jnp.asarray(X), jnp.asarray(train))
    p = _first(solve(jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), knots, jnp.asarray([10.0])))
    assert np.all(np.asarray(p.coef) == 0.0)
    np.testing.assert_allclose(float(p.b0), y[train > 0].mean(), rtol=1e-12)


TRACES: list[int] = []


@jax.jit
def counted_glm_fit(X, y, train, valid, key):
    """The default ``glm()`` fit, compiled once and counting its traces."""
    TRACES.append(1)
    return glm().fit(X, y, train, valid, key)


def _planted(seed):
    rng = np.random.default_rng(seed)
    n = 2000
    X = rng.uniform(-1.0, 1.0, (n, 5)).astype(np.float32)
    y = (0.5 * X[:, 0] ** 2 + 0.05 * rng.normal(size=n)).astype(np.float32)
    rows = np.arange(n)
    train = (rows < 1000).astype(np.float32)
    valid = ((rows >= 1000) & (rows < 1500)).astype(np.float32)
    return X, y, train, valid, rows >= 1500


def test_recovers_planted_nonlinearity_where_ols_fails():
    """float32, default grid and iterations: y = 0.5·x₁² + noise (oracle R² ≈ 0.9)."""
    X, y, train, valid, test = _planted(3)
    args = (jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), jnp.asarray(valid), jax.random.key(0))

    def r2(pred):
        return 1.0 - np.sum((y[test] - pred[test]) ** 2) / np.sum((y[test] - y[test].mean()) ** 2)

    fg = counted_glm_fit(*args)
    r2_glm = r2(np.asarray(glm().predict(fg.params, jnp.asarray(X))))
    A = np.column_stack([np.ones(len(X)), X])
    ols = np.linalg.lstsq(A[train > 0], y[train > 0], rcond=None)[0]
    r2_ols = r2(A @ ols)
    assert r2_glm > 0.8 and r2_ols < 0.05, (r2_glm, r2_ols)
    assert fg.params.coef.dtype == jnp.float32


def test_no_retrace_on_new_data_of_same_shape():
    fits = []
    for seed in (4, 5):
        X, y, train, valid, _ = _planted(seed)
        if seed == 5:
            train, valid = valid, train  # other masks too
        args = (jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), jnp.asarray(valid))
        fits.append(counted_glm_fit(*args, jax.random.key(seed)))
    assert len(TRACES) == 1
    assert np.all(np.isfinite(np.asarray(fits[1].valid_sse)))
    assert not np.allclose(np.asarray(fits[0].params.coef), np.asarray(fits[1].params.coef))


GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def test_validation_choice_equals_loop_over_grid(data, x64):
    X, y, train, valid = data
    Xj, yj, tj, vj = map(jnp.asarray, (X, y, train, valid))
    model = glm(lambdas=GRID, n_iter=N_ITER, row_chunk=CHUNK)
    assert model.name == "GLM" and glm(huber=True).name == "GLM+H"
    fit = jit_fit(model)(Xj, yj, tj, vj, jax.random.key(0))
    knots = spline_knots(Xj, tj)
    sse, params = [], []
    for lam in model.lambdas:
        p = _first(solve(Xj, yj, tj, knots, jnp.asarray([lam])))
        params.append(p)
        sse.append(float(masked_sse(yj, glm_predict(p, Xj), vj)))
    best = int(np.argmin(sse))
    np.testing.assert_allclose(np.asarray(fit.valid_sse), sse, rtol=1e-10)
    assert int(fit.choice) == best and np.ptp(sse) > 0
    np.testing.assert_allclose(np.asarray(fit.params.coef), np.asarray(params[best].coef), atol=1e-10)
    np.testing.assert_allclose(np.asarray(fit.params.knots), np.asarray(knots))
    np.testing.assert_allclose(float(fit.params.b0), float(params[best].b0), atol=1e-10)


def test_rolling_vmap_equals_loop(data, x64):
    """Huber version with the quantile threshold (its fit runs the squared-loss solver first)."""
    X, y, _, _ = data
    rows = np.arange(N)
    train = np.stack([rows < 500, rows < 650, rows < 800])
    valid = np.stack([(rows >= 500) & (rows < 650), (rows >= 650) & (rows < 800), rows >= 800])
    model = glm(huber=True, lambdas=GRID, n_iter=N_ITER, row_chunk=CHUNK)
    key = jax.random.key(0)
    roll = fit_rolling(model, jnp.asarray(X), jnp.asarray(y), train, valid, key)
    fit_one = jit_fit(model)
    for w in range(3):
        f = fit_one(
            jnp.asarray(X),
            jnp.asarray(y),
            jnp.asarray(train[w], jnp.float64),
            jnp.asarray(valid[w], jnp.float64),
            jax.random.fold_in(key, w),
        )
        assert int(f.choice) == int(roll.choice[w])
        np.testing.assert_allclose(roll.valid_sse[w], np.asarray(f.valid_sse), rtol=1e-10)
        for a, b in zip(jax.tree_util.tree_leaves(f.params), jax.tree_util.tree_leaves(roll.params)):
            np.testing.assert_allclose(np.asarray(b[w]), np.asarray(a), rtol=0, atol=1e-10)
    knots = np.asarray(roll.params.knots)
    assert not np.allclose(knots[0], knots[2])  # knots are per window
