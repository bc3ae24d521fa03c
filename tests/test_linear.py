"""Tests of fapm_jax/linear.py (masked OLS) against scikit-learn and numpy least squares."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from fapm_jax.core.linear import fit_ols

pytestmark = pytest.mark.usefixtures("strict_promotion")

N = 300
SCALES = np.array([1.0, 100.0, 0.01, 5.0])  # very different column scales


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, 4)) * SCALES + np.array([0.0, 50.0, -0.02, 1.0])
    r = 0.3 + X @ (np.array([0.5, -0.002, 40.0, 0.1])) + 0.2 * rng.normal(size=N)
    mask = rng.uniform(size=N) < 0.6
    wts = np.where(mask, rng.uniform(0.2, 3.0, N), 0.0)
    return X, r, mask, wts


jit_ols = jax.jit(fit_ols)


def test_masked_ols_equals_sklearn_float64(data, x64):
    X, r, mask, _ = data
    w0, w = jit_ols(jnp.asarray(X), jnp.asarray(r), jnp.asarray(mask, jnp.float64))
    assert w.dtype == jnp.float64
    sk = LinearRegression().fit(X[mask], r[mask])
    # float64, standardized normal equations (condition number ~ a correlation matrix): 1e-8.
    np.testing.assert_allclose(np.asarray(w), sk.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(float(w0), sk.intercept_, rtol=1e-8, atol=1e-10)
    # The masked-out rows were really ignored: the full-data fit is different.
    sk_all = LinearRegression().fit(X, r)
    assert not np.allclose(np.asarray(w), sk_all.coef_, rtol=1e-3)


def test_weighted_ols_equals_sklearn_sample_weight(data, x64):
    X, r, _, wts = data
    w0, w = jit_ols(jnp.asarray(X), jnp.asarray(r), jnp.asarray(wts))
    sk = LinearRegression().fit(X, r, sample_weight=wts)
    np.testing.assert_allclose(np.asarray(w), sk.coef_, rtol=1e-8, atol=1e-10)  # float64
    np.testing.assert_allclose(float(w0), sk.intercept_, rtol=1e-8, atol=1e-10)
    unweighted = LinearRegression().fit(X[wts > 0], r[wts > 0])
    assert not np.allclose(np.asarray(w), unweighted.coef_, rtol=1e-4)  # weights matter


def test_masked_ols_float32(data):
    X, r, mask, _ = data
    w0, w = jit_ols(jnp.asarray(X, jnp.float32), jnp.asarray(r, jnp.float32), jnp.asarray(mask, jnp.float32))
    assert w.dtype == jnp.float32
    X32 = X.astype(np.float32).astype(np.float64)
    r32 = r.astype(np.float32).astype(np.float64)
    sk = LinearRegression().fit(X32[mask], r32[mask])
    # float32: compare fitted values relative to their spread (the well-conditioned quantity):
    # ~1e-6 relative error expected from standardisation in float32; allow 1e-4.
    fit = float(w0) + X32[mask] @ np.asarray(w, np.float64)
    ref = sk.predict(X32[mask])
    assert np.max(np.abs(fit - ref)) < 1e-4 * np.std(ref)
    np.testing.assert_allclose(np.asarray(w), sk.coef_, rtol=1e-3)  # each coef, 1e-3 relative


def _pinv_reference(X, r, m, rcond_eig=1e-20):
    """Min-norm solution in standardized coordinates (what fit_ols documents), via SVD pinv.

    ``rcond_eig`` is the cut-off relative to the largest eigenvalue of the Gram matrix, i.e.
    ``sqrt(rcond_eig)`` relative to the largest singular value of the weighted design.
    """
    total = m.sum()
    mu = m @ X / total
    Xc = X - mu
    sd = np.sqrt(m @ (Xc * Xc) / total)
    sd = np.where(sd > 0, sd, 1.0)
    Z = Xc / sd
    sq = np.sqrt(m)[:, None]
    r_mu = m @ r / total
    beta = np.linalg.pinv(sq * Z, rcond=max(np.sqrt(rcond_eig), 1e-10)) @ (np.sqrt(m) * (r - r_mu))
    w = beta / sd
    return r_mu - mu @ w, w


def test_collinear_dummies_match_lstsq_fitted_values(x64):
    rng = np.random.default_rng(1)
    n_ind = 4
    ind = rng.integers(0, n_ind, N)
    D = np.eye(n_ind)[ind]  # one-hot dummies: they sum to the intercept
    x = rng.normal(size=N)
    X = np.column_stack([x, D])
    r = 0.5 * x + np.array([0.1, -0.2, 0.3, 0.0])[ind] + 0.1 * rng.normal(size=N)
    mask = rng.uniform(size=N) < 0.7
    w0, w = jit_ols(jnp.asarray(X), jnp.asarray(r), jnp.asarray(mask, jnp.float64))
    assert np.isfinite(np.asarray(w)).all()
    A = np.column_stack([np.ones(N), X])[mask]
    coef, *_ = np.linalg.lstsq(A, r[mask], rcond=None)
    fit_ref = np.column_stack([np.ones(N), X]) @ coef
    fit = float(w0) + X @ np.asarray(w)
    # Fitted values are unique even though coefficients are not: float64, 1e-9 abs.
    np.testing.assert_allclose(fit, fit_ref, atol=1e-9)
    # The coefficients are the documented minimum-norm solution of the standardized problem.
    m = mask.astype(np.float64)
    p0, pw = _pinv_reference(X, r, m)
    np.testing.assert_allclose(np.asarray(w), pw, atol=1e-9)  # float64
    np.testing.assert_allclose(float(w0), p0, atol=1e-9)


def test_duplicated_and_constant_columns(x64):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(N, 2))
    const = np.full(N, 3.0)
    X = np.column_stack([x[:, 0], x[:, 1], x[:, 0], const])  # col 2 duplicates col 0
    r = 1.0 + 0.8 * x[:, 0] - 0.4 * x[:, 1] + 0.1 * rng.normal(size=N)
    mask = np.ones(N)
    w0, w = jit_ols(jnp.asarray(X), jnp.asarray(r), jnp.asarray(mask))
    w = np.asarray(w)
    sk = LinearRegression().fit(x, r)
    # Min-norm splits the duplicated effect equally and gives the constant column nothing
    # (float64, 1e-9 abs).
    np.testing.assert_allclose(w[0], w[2], atol=1e-9)
    np.testing.assert_allclose(w[0] + w[2], sk.coef_[0], atol=1e-9)
    np.testing.assert_allclose(w[1], sk.coef_[1], atol=1e-9)
    assert abs(w[3]) < 1e-12
    np.testing.assert_allclose(float(w0), sk.intercept_, atol=1e-9)
    coef, *_ = np.linalg.lstsq(np.column_stack([np.ones(N), X]), r, rcond=None)
    np.testing.assert_allclose(float(w0) + X @ w, np.column_stack([np.ones(N), X]) @ coef, atol=1e-9)


def test_vmap_over_masks_equals_loop(data, x64):
    X, r, _, _ = data
    rng = np.random.default_rng(3)
    masks = (rng.uniform(size=(3, N)) < np.array([[0.3], [0.6], [0.9]])).astype(np.float64)
    Xj, rj = jnp.asarray(X), jnp.asarray(r)
    W0, Wv = jax.jit(jax.vmap(fit_ols, in_axes=(None, None, 0)))(Xj, rj, jnp.asarray(masks))
    for i in range(3):
        w0, w = jit_ols(Xj, rj, jnp.asarray(masks[i]))
        # float64, batched vs single eigh/matmuls: 1e-10 relative.
        np.testing.assert_allclose(np.asarray(Wv[i]), np.asarray(w), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(float(W0[i]), float(w0), rtol=1e-10, atol=1e-13)
        sk = LinearRegression().fit(X[masks[i] > 0], r[masks[i] > 0])
        np.testing.assert_allclose(np.asarray(Wv[i]), sk.coef_, rtol=1e-8, atol=1e-10)
    assert not np.allclose(np.asarray(Wv[0]), np.asarray(Wv[2]))


def test_near_collinear_columns_are_kept_in_float64(x64):
    """Nearly (not exactly) collinear columns: the default cut-off must keep the small
    eigenvalue (≈ 5e-7 relative, far above 100·eps·n ≈ 1e-13) and return the exact OLS."""
    rng = np.random.default_rng(4)
    x1 = rng.normal(size=N)
    x2 = x1 + 1e-3 * rng.normal(size=N)
    X = np.column_stack([x1, x2, rng.normal(size=N)])
    r = 0.2 + 1.0 * x1 - 0.5 * x2 + 0.3 * X[:, 2] + 0.01 * rng.normal(size=N)
    w0, w = jit_ols(jnp.asarray(X), jnp.asarray(r), jnp.ones(N))
    sk = LinearRegression().fit(X, r)
    # Condition number of the correlation matrix ≈ 4e6, so float64 coefficients carry ~1e-9
    # relative error at worst; 1e-6 relative.
    np.testing.assert_allclose(np.asarray(w), sk.coef_, rtol=1e-6)
    np.testing.assert_allclose(float(w0), sk.intercept_, rtol=1e-6)


def test_collinear_dummies_float32():
    """In float32 the null direction of exactly collinear dummies has a tiny non-zero
    eigenvalue from rounding; it must be cut off (not inverted into huge coefficients)."""
    rng = np.random.default_rng(5)
    ind = rng.integers(0, 3, N)
    X = np.column_stack([rng.normal(size=N), np.eye(3)[ind]])
    r = 0.5 * X[:, 0] + np.array([0.1, -0.2, 0.3])[ind] + 0.1 * rng.normal(size=N)
    w0, w = jit_ols(jnp.asarray(X, jnp.float32), jnp.asarray(r, jnp.float32), jnp.ones(N, jnp.float32))
    A = np.column_stack([np.ones(N), X])
    coef, *_ = np.linalg.lstsq(A, r, rcond=None)
    fit = float(w0) + X @ np.asarray(w, np.float64)
    # float32 fitted values vs float64 least squares: 1e-4 abs (returns are O(0.5)).
    np.testing.assert_allclose(fit, A @ coef, atol=1e-4)
    p0, pw = _pinv_reference(X, r, np.ones(N))
    # The float32 coefficients are the min-norm ones (1e-4 abs; the coefficients are O(0.5)).
    np.testing.assert_allclose(np.asarray(w), pw, atol=1e-4)
    np.testing.assert_allclose(float(w0), p0, atol=1e-4)


def test_explicit_rcond_drops_small_directions(x64):
    """A cut-off above the near-collinear pair's small eigenvalue drops that direction: the
    result is the truncated pseudo-inverse solution, which splits the pair's effect evenly."""
    rng = np.random.default_rng(4)
    x1 = rng.normal(size=N)
    x2 = x1 + 1e-3 * rng.normal(size=N)
    X = np.column_stack([x1, x2, rng.normal(size=N)])
    r = 0.2 + 1.0 * x1 - 0.5 * x2 + 0.3 * X[:, 2] + 0.01 * rng.normal(size=N)
    w0, w = jax.jit(lambda *a: fit_ols(*a, rcond=1e-3))(jnp.asarray(X), jnp.asarray(r), jnp.ones(N))
    p0, pw = _pinv_reference(X, r, np.ones(N), rcond_eig=1e-3)
    # float64, well-conditioned after truncation: 1e-9 abs.
    np.testing.assert_allclose(np.asarray(w), pw, atol=1e-9)
    np.testing.assert_allclose(float(w0), p0, atol=1e-9)
    sd = X.std(axis=0)
    # Nearly even split in standardized units (the kept eigenvectors are only approximately
    # (1, 1, 0)/√2, as x1 and x2 correlate slightly differently with x3): 1e-3 relative.
    np.testing.assert_allclose(w[0] * sd[0], w[1] * sd[1], rtol=1e-3)
    assert not np.allclose(np.asarray(w), LinearRegression().fit(X, r).coef_, rtol=1e-2)
