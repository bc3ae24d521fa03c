"""The converged MAP solver (fapm_jax.core.solve) and its candidate in fit_windows: scikit-learn's
lasso and elastic net where the model is linear, the first-order optimality conditions checked
with an independent gradient, a lower objective than the early-stopped Adam path, the
best-on-validation record, and no recompilation when the budget or the weights change."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import count_compiles
from sklearn.linear_model import ElasticNet, Lasso

from fapm_jax.core.config import TrainConfig, sweep_grid
from fapm_jax.core.errors import ConfigError
from fapm_jax.core.fit import fit_windows
from fapm_jax.core.model import FAPMParams, init_params
from fapm_jax.core.moments import Moments, moment_r2, phi
from fapm_jax.core.penalties import nonsmooth_penalty, penalty_of, smooth_penalty
from fapm_jax.core.solve import objective, solve


def _problem(seed=0, N=400, n=5, interact=True):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(N, n))
    r = 0.1 + X @ np.array([0.8, -0.5, 0.0, 0.0, 0.3])[:n] + rng.normal(scale=1.0, size=N)
    if interact:
        r = r + 1.5 * X[:, 0] * X[:, 1] - X[:, 2] * X[:, 3]
    return X, r


def _moments(X, r, self_interactions=False):
    F = np.asarray(phi(jnp.asarray(X), self_interactions))
    return Moments(jnp.asarray(F.T @ F), jnp.asarray(F.T @ r), jnp.asarray(r @ r))


def _start(n, k, dtype=jnp.float64, self_interactions=False, scale=0.1):
    key = jax.random.key(0)
    return init_params(key, n, k, init_scale=scale, self_interactions=self_interactions, dtype=dtype)


def _loss(m, pen):
    return lambda p: 1.0 - moment_r2(p, m) + smooth_penalty(p, pen)


@pytest.mark.parametrize("l2", [0.0, 0.02])
def test_rank_zero_is_lasso_or_elastic_net(x64, l2):
    X, r = _problem(interact=False)
    m = _moments(X, r)
    N, c = X.shape[0], float(r @ r)
    pen = penalty_of({"l1_w": 0.05, "l2_w": l2}, jnp.float64)
    mask = jnp.zeros(2)  # rank 0: V stays 0, the model is linear
    p, log = solve(_start(5, 2), _loss(m, pen), pen, jnp.asarray(5000), rank_mask=mask, tol=1e-9)
    assert bool(log.converged) and int(log.iterations) < 5000
    # SSE/c + λ2 ‖w‖² + λ1 ‖w‖₁  ⇔  sklearn's  SSE/(2N) + α ρ ‖w‖₁ + α (1 − ρ)/2 ‖w‖²
    a1, a2 = 0.05 * c / (2 * N), l2 * c / N
    ref = (
        Lasso(alpha=a1, tol=1e-14, max_iter=100_000)
        if l2 == 0
        else ElasticNet(alpha=a1 + a2, l1_ratio=a1 / (a1 + a2), tol=1e-14, max_iter=100_000)
    ).fit(X, r)
    np.testing.assert_allclose(np.asarray(p.w), ref.coef_, atol=1e-7)
    assert float(p.w0) == pytest.approx(ref.intercept_, abs=1e-7)
    np.testing.assert_array_equal(np.asarray(p.w) == 0, ref.coef_ == 0)
    assert np.all(np.asarray(p.V) == 0)


def test_converged_point_is_stationary(x64):
    """Rank 2 with L1 on w and d and the group norm on V: at the solution every coordinate
    meets its optimality condition, checked with jax.grad of the smooth part (not the solver's
    own residual)."""
    X, r = _problem(seed=2)
    m = _moments(X, r, self_interactions=True)
    pen = penalty_of({"l1_w": 0.02, "l1_d": 0.05, "group_v": 0.005, "l2_v": 0.01}, jnp.float64)
    f = _loss(m, pen)
    start = _start(5, 2, self_interactions=True, scale=0.3)
    p, log = solve(start, f, pen, jnp.asarray(20000), rank_mask=jnp.ones(2), tol=1e-8)
    assert bool(log.converged)
    g = jax.grad(f)(p)
    assert abs(float(g.w0)) < 1e-7  # unpenalised
    for x, gx, lam in ((p.w, g.w, 0.02), (p.d, g.d, 0.05)):
        x, gx = np.asarray(x), np.asarray(gx)
        nz = x != 0
        np.testing.assert_allclose(gx[nz] + lam * np.sign(x[nz]), 0.0, atol=1e-6)
        assert np.all(np.abs(gx[~nz]) <= lam + 1e-6)
    V, gV = np.asarray(p.V), np.asarray(g.V)
    norms = np.linalg.norm(V, axis=1)
    for i in range(5):
        if norms[i] > 0:
            np.testing.assert_allclose(gV[i] + 0.005 * V[i] / norms[i], 0.0, atol=1e-6)
        else:
            assert np.linalg.norm(gV[i]) <= 0.005 + 1e-6
    assert np.all(norms[:4] > 0.5)  # the planted interactions (x0 x1, x2 x3) are found
    assert (np.asarray(p.d) == 0).all()  # and no self-interaction, which the data do not have


def test_objective_never_rises_and_beats_adam(x64):
    X, r = _problem(seed=3)
    N = X.shape[0]
    train = np.zeros(N, bool)
    train[: 3 * N // 4] = True
    pens = [{"l1_w": 0.01, "group_v": 0.01}]
    cfg = TrainConfig(rank=2, epochs=100, learning_rate=1e-2, linear_lr_scale=1.0, init_scale=0.05)
    hyper, _ = sweep_grid(cfg, penalties=pens)
    adam = fit_windows(X, r, train[None], ~train[None], cfg, hyper=hyper, method="moments")
    hs, _ = sweep_grid(cfg, penalties=pens, solve_steps=3000)
    both = fit_windows(X, r, train[None], ~train[None], cfg, hyper=hs, method="moments")
    m = _moments(X[train], r[train])
    pen = penalty_of(pens[0], jnp.float64)
    F_adam = float(objective(jax.tree_util.tree_map(lambda a: a[0, 0], adam.params), _loss(m, pen), pen))
    assert float(both.solve.objective[0, 0]) <= F_adam + 1e-12
    # the epochs are the same; the converged model is one more candidate, logged as epoch E + 1
    np.testing.assert_allclose(both.valid_r2[..., :100], adam.valid_r2)
    assert both.valid_r2.shape[-1] == 101 and np.isfinite(both.valid_r2[0, 0, 100])
    assert float(both.best_valid_r2[0, 0]) == pytest.approx(
        max(float(adam.best_valid_r2[0, 0]), float(both.valid_r2[0, 0, 100])), abs=1e-12
    )
    # the objective is monotone along the iterations (MFISTA): more iterations, never higher
    f = _loss(m, pen)
    objs = [
        float(solve(_start(5, 2), f, pen, jnp.asarray(i), rank_mask=jnp.ones(2))[1].objective)
        for i in (1, 5, 25, 125)
    ]
    assert all(b <= a + 1e-15 for a, b in zip(objs, objs[1:])) and objs[-1] < objs[0]


def test_no_recompilation_for_new_budgets_or_weights():
    X, r = _problem(seed=4)
    X, r = X.astype(np.float32), r.astype(np.float32)
    train = np.arange(X.shape[0]) < 300
    cfg = TrainConfig(rank=2, epochs=5)

    def run(steps, lam):
        hyper, _ = sweep_grid(cfg, penalties=[{"l1_w": lam}, {"group_v": lam}], solve_steps=steps)
        return fit_windows(X, r, train[None], ~train[None], cfg, hyper=hyper, method="moments")

    run(50, 0.01)
    with count_compiles() as n:
        res = run(200, 0.03)
    assert n() == 0
    assert res.solve.iterations.shape == (2, 1) and int(res.solve.iterations.max()) <= 200


def test_errors():
    X, r = _problem()
    train = np.arange(X.shape[0]) < 300
    cfg = TrainConfig(rank=2, epochs=2)
    hyper, _ = sweep_grid(cfg, solve_steps=10)
    with pytest.raises(ConfigError, match="needs method='moments'"):
        fit_windows(X, r, train[None], ~train[None], cfg, hyper=hyper, method="rows")
    with pytest.raises(ConfigError, match="solve_steps must be a non-negative integer"):
        sweep_grid(cfg, solve_steps=-1)


def test_non_finite_start_stops_unconverged(x64):
    X, r = _problem()
    m = _moments(X, r)
    p = _start(5, 2)
    bad = FAPMParams(w0=p.w0, w=p.w.at[0].set(jnp.nan), V=p.V, d=None)
    _, log = solve(bad, _loss(m, penalty_of({}, jnp.float64)), None, jnp.asarray(10), rank_mask=jnp.ones(2))
    assert not bool(log.converged) and int(log.iterations) == 0
    assert nonsmooth_penalty(p, penalty_of({}, jnp.float64)) == 0
