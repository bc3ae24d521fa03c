"""Tests of fapm_jax/baselines/enet.py (GKX elastic net / lasso / ridge, ±Huber) and prox.py.

Squared loss: coefficients against scikit-learn (``ElasticNet(alpha=λ/2, l1_ratio=1−ρ)``,
``Lasso(alpha=λ/2)``, ``Ridge(alpha=n·λ/2)``) on the masked training rows, float64, absolute
tolerance 1e-9 (observed ~1e-15). Huber loss: the KKT (subgradient) conditions to 1e-8, and the
λ → 0 limit against IRLS :func:`fit_huber` to 1e-6. Then validation choice, vmapped windows and
retracing. All float64 through the ``x64`` fixture (``jax.enable_x64`` as a context manager).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import ElasticNet, Lasso, Ridge

from fapm_jax.baselines.base import fit_rolling, linear_predict, masked_sse
from fapm_jax.baselines.enet import GKX_LAMBDAS, ENet, enet, lasso, ridge, solve_enet
from fapm_jax.baselines.ols import fit_huber
from fapm_jax.baselines.prox import fista, prox_elastic_net, prox_group_lasso

N, P = 600, 8
LAMS = (1e-3, 1e-2, 5e-2)
BETA = np.array([0.5, -0.3, 0.2, 0.0, 0.1, 0.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(N, P)) * rng.uniform(0.3, 3.0, P) + rng.normal(size=P)
    X[:, 1] = 0.8 * X[:, 0] + 0.6 * X[:, 1]  # correlated columns
    y = 0.1 + X @ BETA + 0.5 * rng.standard_t(3, N)  # fat tails: Huber matters
    u = rng.uniform(size=N)
    train = (u < 0.6).astype(np.float64)
    valid = ((u >= 0.6) & (u < 0.8)).astype(np.float64)
    return X, y, train, valid


# ρ and λ are traced (one compile per loss); n_iter = 1000 throughout.
solve = jax.jit(solve_enet, static_argnames=("n_iter", "restart"))


@functools.cache
def jit_fit(model):
    """One compiled single-window ``fit`` per model, shared by the tests."""
    return jax.jit(model.fit)


def _sk_coefs(sk):
    return np.concatenate([[sk.intercept_], sk.coef_])


def _ours(p):
    return np.concatenate([[float(p.b0)], np.asarray(p.b)])


@pytest.mark.parametrize("lam", LAMS)
def test_enet_equals_sklearn_elasticnet(data, x64, lam):
    X, y, train, _ = data
    r = train > 0
    p = solve(jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), lam, rho=0.5, n_iter=1000)
    sk = ElasticNet(alpha=lam / 2, l1_ratio=0.5, tol=1e-14, max_iter=10**6).fit(X[r], y[r])
    np.testing.assert_allclose(_ours(p), _sk_coefs(sk), rtol=0, atol=1e-9)
    if lam == LAMS[-1]:
        assert np.sum(np.asarray(p.b) == 0.0) >= 2  # the l1 part really bites


@pytest.mark.parametrize("lam", LAMS)
def test_lasso_equals_sklearn_lasso(data, x64, lam):
    X, y, train, _ = data
    r = train > 0
    model = lasso()
    assert model.rho == 0.0 and model.name == "Lasso"
    p = solve(jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), lam, rho=model.rho, n_iter=1000)
    sk = Lasso(alpha=lam / 2, tol=1e-14, max_iter=10**6).fit(X[r], y[r])
    np.testing.assert_allclose(_ours(p), _sk_coefs(sk), rtol=0, atol=1e-9)


@pytest.mark.parametrize("lam", LAMS + (1.0,))
def test_ridge_equals_sklearn_ridge(data, x64, lam):
    X, y, train, _ = data
    r = train > 0
    model = ridge(huber=True)
    assert model.rho == 1.0 and model.name == "Ridge+H" and model.huber
    p = solve(jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), lam, rho=model.rho, n_iter=1000)
    # GKX: (1/n)||e||² + ½λ||θ||²  ==  (1/n) × sklearn Ridge's ||e||² + (nλ/2)||θ||².
    sk = Ridge(alpha=r.sum() * lam / 2, tol=1e-14).fit(X[r], y[r])
    np.testing.assert_allclose(_ours(p), _sk_coefs(sk), rtol=0, atol=1e-9)


def _huber_grad(X, y, train, p, xi):
    """Gradient of the mean GKX Huber loss at ``p`` w.r.t. (b0, b) — in numpy."""
    n = train.sum()
    e = y - float(p.b0) - X @ np.asarray(p.b)
    w = train * np.clip(e, -xi, xi)
    return -2.0 * w.sum() / n, -2.0 * (X.T @ w) / n


@pytest.mark.parametrize("rho", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("lam", [1e-2, 5e-2])
def test_huber_enet_kkt(data, x64, rho, lam):
    X, y, train, _ = data
    xi = 0.4  # well inside the residual distribution: many rows beyond the threshold
    p = solve(jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), lam, rho=rho, n_iter=1000, xi=xi)
    e = y - float(p.b0) - X @ np.asarray(p.b)
    assert np.mean(np.abs(e[train > 0]) > xi) > 0.2
    g0, g = _huber_grad(X, y, train, p, xi)
    b = np.asarray(p.b)
    tol = 1e-8
    assert abs(g0) < tol  # unpenalised intercept
    zero = b == 0.0
    l1 = lam * (1.0 - rho)
    # Nonzero coefficients: ∇L + λ(1−ρ)·sign(θ) + λρθ = 0.
    np.testing.assert_allclose(g[~zero] + l1 * np.sign(b[~zero]) + lam * rho * b[~zero], 0.0, atol=tol)
    # Zero coefficients: |∇L| ≤ λ(1−ρ) (the ridge part vanishes at 0).
    assert np.all(np.abs(g[zero]) <= l1 + tol)
    if rho < 1.0 and lam == 5e-2:
        assert zero.sum() >= 1 and (~zero).sum() >= 1
    if rho == 1.0:
        assert not zero.any()


def test_huber_enet_tiny_lambda_is_unpenalised_huber(data, x64):
    X, y, train, _ = data
    xi = 0.4
    Xj, yj, tj = jnp.asarray(X), jnp.asarray(y), jnp.asarray(train)
    ref = jax.jit(fit_huber)(Xj, yj, tj, jnp.asarray(xi))  # IRLS, its default stopping rule
    p = solve(Xj, yj, tj, 1e-10, rho=0.5, n_iter=1000, xi=xi)
    print("max |ENet+H(λ=1e-10) − fit_huber|:", np.max(np.abs(_ours(p) - _ours(ref))))
    np.testing.assert_allclose(_ours(p), _ours(ref), rtol=0, atol=1e-6)
    # ... and it is not the squared-loss fit.
    q = solve(Xj, yj, tj, 1e-10, rho=0.5, n_iter=1000)
    assert np.max(np.abs(_ours(q) - _ours(ref))) > 1e-3


def test_prox_operators():
    v = jnp.array([3.0, -0.5, -2.0, 0.2])
    np.testing.assert_allclose(prox_elastic_net(v, 0.5, 2.0, 0.0), [2.0, 0.0, -1.0, 0.0])
    np.testing.assert_allclose(prox_elastic_net(v, 0.5, 0.0, 2.0), v / 2.0)
    V = jnp.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    np.testing.assert_allclose(prox_group_lasso(V, 1.0, 1.0), [[2.4, 3.2], [0, 0], [0, 0]], atol=1e-6)


def test_fista_with_and_without_restart_solves_a_quadratic(x64):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(20, 5))
    H = A.T @ A / 20 + 0.01 * np.eye(5)
    c = rng.normal(size=5)
    L = float(np.linalg.eigvalsh(H)[-1])
    want = np.linalg.solve(H, c)
    for restart in (False, True):
        x = fista(lambda x: jnp.asarray(H) @ x - c, lambda v, t: v, jnp.zeros(5), L, 3000, restart=restart)
        np.testing.assert_allclose(np.asarray(x), want, rtol=0, atol=1e-8)


@pytest.mark.parametrize("huber", [False, True])
def test_validation_choice_equals_loop_over_grid(data, x64, huber):
    X, y, train, valid = data
    Xj, yj, tj, vj = map(jnp.asarray, (X, y, train, valid))
    model = enet(huber=huber, huber_tol=None, huber_iter=None)  # exactly n_iter steps, as the loop
    assert model.name == ("ENet+H" if huber else "ENet") and model.lambdas == GKX_LAMBDAS
    fit = jit_fit(model)(Xj, yj, tj, vj, jax.random.key(0))
    from fapm_jax.baselines.base import huber_threshold

    xi = huber_threshold(Xj, yj, tj) if huber else None
    sse, params = [], []
    for lam in model.lambdas:
        p = solve(Xj, yj, tj, lam, rho=0.5, n_iter=1000, xi=xi)
        params.append(p)
        sse.append(float(masked_sse(yj, linear_predict(p, Xj), vj)))
    best = int(np.argmin(sse))
    np.testing.assert_allclose(np.asarray(fit.valid_sse), sse, rtol=1e-12)
    assert int(fit.choice) == best
    np.testing.assert_allclose(_ours(fit.params), _ours(params[best]), rtol=0, atol=1e-12)
    # The grid is not degenerate: the SSE varies along it.
    assert np.ptp(sse) > 0


def _windows():
    rows = np.arange(N)
    train = np.stack([rows < 300, rows < 400, rows < 500])
    valid = np.stack([(rows >= 300) & (rows < 400), (rows >= 400) & (rows < 500), rows >= 500])
    return train, valid


def test_rolling_vmap_equals_loop(data, x64):
    """Huber version (its fit runs the squared-loss solver first, so both are covered)."""
    X, y, _, _ = data
    train, valid = _windows()
    model = enet(huber=True)
    key = jax.random.key(0)
    roll = fit_rolling(model, jnp.asarray(X), jnp.asarray(y), train, valid, key)
    fit_one = jit_fit(model)
    for w in range(train.shape[0]):
        f = fit_one(
            jnp.asarray(X),
            jnp.asarray(y),
            jnp.asarray(train[w], jnp.float64),
            jnp.asarray(valid[w], jnp.float64),
            jax.random.fold_in(key, w),
        )
        assert int(f.choice) == int(roll.choice[w])
        np.testing.assert_allclose(roll.valid_sse[w], np.asarray(f.valid_sse), rtol=1e-10)
        np.testing.assert_allclose(roll.params.b[w], np.asarray(f.params.b), rtol=0, atol=1e-10)
        np.testing.assert_allclose(roll.params.b0[w], float(f.params.b0), rtol=0, atol=1e-10)
    assert len({tuple(np.round(np.asarray(roll.params.b[w]), 6)) for w in range(3)}) == 3


def test_no_retrace_on_new_data_of_same_shape(data):
    X, y, train, valid = data
    model = ENet(lambdas=GKX_LAMBDAS[::3], n_iter=50)
    traces = []

    def f(X, y, t, v, k):
        traces.append(1)
        return model.fit(X, y, t, v, k)

    jf = jax.jit(f)
    a = jf(*(jnp.asarray(v, jnp.float32) for v in data), jax.random.key(0))
    rng = np.random.default_rng(5)
    b = jf(
        jnp.asarray(X + rng.normal(size=X.shape), jnp.float32),
        jnp.asarray(y[::-1], jnp.float32),
        jnp.asarray(valid, jnp.float32),
        jnp.asarray(train, jnp.float32),
        jax.random.key(1),
    )
    assert len(traces) == 1
    assert a.params.b.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(b.valid_sse)))
    assert not np.allclose(np.asarray(a.params.b), np.asarray(b.params.b))


def test_huber_early_stop_agrees_with_the_full_iteration_count(data, x64):
    """The default Huber refinement (≤ huber_iter = 200 steps from the squared-loss fit, stopping
    once coefficients move < 1e-6 relative) agrees with the fixed 1000-step solve."""
    X, y, train, valid = map(jnp.asarray, data)
    full = jit_fit(enet(huber=True, huber_tol=None, huber_iter=None))(X, y, train, valid, jax.random.key(0))
    early = jit_fit(enet(huber=True))(X, y, train, valid, jax.random.key(0))  # ≤ 200 steps, tol 1e-6
    np.testing.assert_allclose(np.asarray(early.valid_sse), np.asarray(full.valid_sse), rtol=1e-6)
    np.testing.assert_allclose(_ours(early.params), _ours(full.params), rtol=0, atol=1e-5)
