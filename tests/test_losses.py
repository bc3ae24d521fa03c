"""Tests of fapm_jax/losses.py against hand computations in numpy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fapm_jax.core.losses import huber, huber_r2_loss, masked_huber_ratio, masked_sse_ratio, r2_loss, r2_score
from fapm_jax.core.model import FAPMParams

pytestmark = pytest.mark.usefixtures("strict_promotion")

N, NF = 40, 4


def _case(dtype, seed=0):
    rng = np.random.default_rng(seed)
    p = FAPMParams(
        w0=jnp.asarray(0.01, dtype),
        w=jnp.asarray(0.05 * rng.normal(size=NF), dtype),
        V=jnp.asarray(0.3 * rng.normal(size=(NF, 2)), dtype),
    )
    X = rng.uniform(-1, 1, (N, NF)).astype(dtype)
    r = (0.1 * rng.standard_normal(N)).astype(dtype)
    mask = (rng.uniform(size=N) < 0.6).astype(dtype)
    return p, X, r, mask


def np_predict(p, X):
    """Independent float64 FAPM via the explicit upper-triangle double sum."""
    w0, w, V = float(p.w0), np.asarray(p.w, np.float64), np.asarray(p.V, np.float64)
    X = np.asarray(X, np.float64)
    out = w0 + X @ w
    n = len(w)
    for i in range(n):
        for j in range(i + 1, n):
            out = out + (V[i] @ V[j]) * X[:, i] * X[:, j]
    return out


def hand_ratio(r, r_hat, mask):
    r, r_hat, m = (np.asarray(a, np.float64) for a in (r, r_hat, mask))
    return sum(m[i] * (r[i] - r_hat[i]) ** 2 for i in range(len(r))) / sum(
        m[i] * r[i] ** 2 for i in range(len(r))
    )


def hand_huber(x, d):
    x = np.asarray(x, np.float64)
    return np.where(np.abs(x) <= d, x * x, 2 * d * np.abs(x) - d * d)


def test_r2_loss_equals_hand_computation_float64(x64):
    p, X, r, mask = _case(np.float64)
    got = float(r2_loss(p, jnp.asarray(X), jnp.asarray(r), jnp.asarray(mask)))
    ref = hand_ratio(r, np_predict(p, X), mask)
    assert 0.1 < ref < 10  # a non-trivial value
    np.testing.assert_allclose(got, ref, rtol=1e-12)  # float64: rounding only


def test_r2_loss_equals_hand_computation_float32():
    p, X, r, mask = _case(np.float32)
    got = r2_loss(p, jnp.asarray(X), jnp.asarray(r), jnp.asarray(mask))
    assert got.dtype == jnp.float32
    ref = hand_ratio(r, np_predict(p, X), mask)
    np.testing.assert_allclose(float(got), ref, rtol=1e-5)  # float32 sums of ~24 terms


def test_weighted_mask(x64):
    p, X, r, _ = _case(np.float64, seed=1)
    wts = np.random.default_rng(2).uniform(0.1, 3.0, N)
    got = float(r2_loss(p, jnp.asarray(X), jnp.asarray(r), jnp.asarray(wts)))
    np.testing.assert_allclose(got, hand_ratio(r, np_predict(p, X), wts), rtol=1e-12)  # float64


def test_r2_score_with_and_without_mask(x64):
    rng = np.random.default_rng(3)
    r = rng.normal(size=N)
    r_hat = r + 0.5 * rng.normal(size=N)
    mask = (rng.uniform(size=N) < 0.5).astype(np.float64)
    full = float(r2_score(jnp.asarray(r), jnp.asarray(r_hat)))
    np.testing.assert_allclose(full, 1 - hand_ratio(r, r_hat, np.ones(N)), rtol=1e-12)  # float64
    masked = float(r2_score(jnp.asarray(r), jnp.asarray(r_hat), jnp.asarray(mask)))
    sel = mask > 0
    ref = 1 - np.sum((r[sel] - r_hat[sel]) ** 2) / np.sum(r[sel] ** 2)
    np.testing.assert_allclose(masked, ref, rtol=1e-12)  # float64
    assert abs(masked - full) > 1e-3  # the mask matters
    # Against a zero forecast, not the mean: a zero forecast scores exactly 0, a perfect one 1,
    # and forecasting the sample mean scores mean²/mean-of-squares (> 0), not 0.
    assert float(r2_score(jnp.asarray(r), jnp.zeros(N))) == 0.0
    assert float(r2_score(jnp.asarray(r), jnp.asarray(r))) == 1.0
    mean_fc = np.full(N, r.mean())
    np.testing.assert_allclose(
        float(r2_score(jnp.asarray(r), jnp.asarray(mean_fc))), N * r.mean() ** 2 / np.sum(r**2), rtol=1e-12
    )


def test_masked_rows_do_not_matter():
    p, X, r, mask = _case(np.float32, seed=4)
    out = mask == 0
    assert out.sum() > 5
    X2, r2 = X.copy(), r.copy()
    rng = np.random.default_rng(5)
    X2[out] = rng.uniform(-50, 50, (out.sum(), NF))
    r2[out] = rng.uniform(-10, 10, out.sum())
    f = jax.jit(r2_loss)
    a = f(p, jnp.asarray(X), jnp.asarray(r), jnp.asarray(mask))
    b = f(p, jnp.asarray(X2), jnp.asarray(r2), jnp.asarray(mask))
    # Masked-out rows contribute exact zeros (0 · finite), so the results are bitwise equal.
    assert float(a) == float(b)
    g = jax.jit(huber_r2_loss)
    assert float(g(p, X, r, mask, 0.05)) == float(g(p, X2, r2, mask, 0.05))
    # ... while changing a kept row does change the loss.
    r3 = r.copy()
    r3[np.flatnonzero(mask)[0]] += 1.0
    assert float(f(p, jnp.asarray(X), jnp.asarray(r3), jnp.asarray(mask))) != float(a)


def test_huber_equals_hand_formula_and_is_continuous(x64):
    d = 0.7
    x = np.concatenate([np.linspace(-3, 3, 61), [d, -d, d + 1e-9, d - 1e-9]])
    got = np.asarray(huber(jnp.asarray(x), d))
    np.testing.assert_allclose(got, hand_huber(x, d), rtol=1e-14, atol=1e-15)  # float64
    # Continuity of value and slope at |x| = δ (both equal δ² and 2δ there).
    eps = 1e-7
    np.testing.assert_allclose(float(huber(d - eps, d)), d * d, atol=1e-6)  # slope 2δ·eps
    np.testing.assert_allclose(float(huber(d + eps, d)), d * d, atol=1e-6)
    gh = jax.grad(huber)
    np.testing.assert_allclose(float(gh(d - eps, d)), 2 * d, atol=1e-6)  # slope: 2x → 2δ
    np.testing.assert_allclose(float(gh(d + eps, d)), 2 * d, atol=1e-12)  # slope: 2δ exactly
    np.testing.assert_allclose(float(gh(-(d + eps), d)), -2 * d, atol=1e-12)
    # Inside it is the squared error; outside it grows linearly (strictly below x²).
    assert float(huber(0.3, d)) == 0.3**2
    assert float(huber(3.0, d)) < 9.0


def test_huber_r2_loss_limits(x64):
    p, X, r, mask = _case(np.float64, seed=6)
    Xj, rj, mj = jnp.asarray(X), jnp.asarray(r), jnp.asarray(mask)
    base = float(r2_loss(p, Xj, rj, mj))
    resid = r - np_predict(p, X)
    # δ above every |residual|: the Huber function is x² on every row, so the losses agree to
    # rounding (float64, 1e-12 relative).
    big = float(huber_r2_loss(p, Xj, rj, mj, 10.0 * np.abs(resid).max()))
    np.testing.assert_allclose(big, base, rtol=1e-12)
    np.testing.assert_allclose(float(huber_r2_loss(p, Xj, rj, mj, 1e6)), base, rtol=1e-12)
    # Small δ: clipped, strictly smaller, and equal to the hand formula.
    d = float(np.quantile(np.abs(resid[mask > 0]), 0.5))
    small = float(huber_r2_loss(p, Xj, rj, mj, d))
    ref = np.sum(mask * hand_huber(resid, d)) / np.sum(mask * r * r)
    np.testing.assert_allclose(small, ref, rtol=1e-12)  # float64
    assert small < base - 1e-3


def test_ratio_helpers_float32():
    rng = np.random.default_rng(7)
    r = (0.1 * rng.normal(size=N)).astype(np.float32)
    r_hat = (0.05 * rng.normal(size=N)).astype(np.float32)
    m = (rng.uniform(size=N) < 0.7).astype(np.float32)
    # float32 vs float64 hand computation: 1e-5 relative.
    np.testing.assert_allclose(float(masked_sse_ratio(r, r_hat, m)), hand_ratio(r, r_hat, m), rtol=1e-5)
    ref = np.sum(m * hand_huber(r - r_hat, 0.05)) / np.sum(m * r.astype(np.float64) ** 2)
    np.testing.assert_allclose(float(masked_huber_ratio(r, r_hat, m, 0.05)), ref, rtol=1e-5)
