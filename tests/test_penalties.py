"""Penalised FAPM (fapm_jax.core.penalties): closed-form references for the linear model
(ridge and lasso from scikit-learn), the proximal operators by hand, the sweep axis, and no
recompilation when only the penalty weights change."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import count_compiles
from sklearn.linear_model import Lasso, Ridge

from fapm_jax.core.config import TrainConfig, sweep_grid
from fapm_jax.core.errors import ConfigError
from fapm_jax.core.fit import fit_window, fit_windows
from fapm_jax.core.model import FAPMParams
from fapm_jax.core.penalties import group_shrink, penalty_of, penalty_value, prox, soft_threshold


def _linear_problem(seed=0, N=300, n=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, n))
    beta = np.array([0.8, -0.5, 0.0, 0.0, 0.3])[:n]
    r = 0.2 + X @ beta + rng.normal(scale=1.0, size=N)
    train = np.zeros(N, bool)
    train[: 2 * N // 3] = True
    return X, r, train, ~train


def _ista_config(X, r, train, **penalty) -> TrainConfig:
    """Plain gradient descent with step 1/L on the R² loss (+ the L2 term): the proximal
    gradient method, which converges to the exact penalised optimum."""
    Xt = np.c_[np.ones(train.sum()), X[train]]
    c = float(np.sum(r[train] ** 2))
    L = 2 * np.linalg.eigvalsh(Xt.T @ Xt).max() / c + 2 * penalty.get("l2_w", 0.0)
    return TrainConfig(
        rank=1,
        init_scale=0.0,
        optimizer="sgd",
        learning_rate=float(1 / L),
        linear_lr_scale=1.0,
        epochs=4000,
        **penalty,
    )


def _final_linear(X, r, train, valid, cfg):
    st = fit_window(X, r, train, valid, cfg).state.params  # the last iterate, not the best epoch
    assert np.all(np.asarray(st.V) == 0)  # V starts at 0 and gets no gradient: a linear model
    return float(st.w0), np.asarray(st.w)


def test_l2_on_w_is_ridge(x64):
    X, r, train, valid = _linear_problem()
    lam = 0.05
    w0, w = _final_linear(X, r, train, valid, _ista_config(X, r, train, l2_w=lam))
    c = float(np.sum(r[train] ** 2))
    ref = Ridge(alpha=lam * c).fit(X[train], r[train])  # SSE + λ c ‖w‖², intercept free
    np.testing.assert_allclose(w, ref.coef_, atol=1e-7)
    assert w0 == pytest.approx(ref.intercept_, abs=1e-7)
    ols = np.linalg.lstsq(np.c_[np.ones(train.sum()), X[train]], r[train], rcond=None)[0][1:]
    assert np.max(np.abs(w - ols)) > 1e-3  # the penalty really moved the fit


def test_l1_on_w_is_lasso(x64):
    X, r, train, valid = _linear_problem(seed=1)
    lam = 0.1
    w0, w = _final_linear(X, r, train, valid, _ista_config(X, r, train, l1_w=lam))
    c, n_train = float(np.sum(r[train] ** 2)), int(train.sum())
    ref = Lasso(alpha=lam * c / (2 * n_train), tol=1e-12, max_iter=100_000).fit(X[train], r[train])
    np.testing.assert_allclose(w, ref.coef_, atol=1e-6)
    assert w0 == pytest.approx(ref.intercept_, abs=1e-6)
    np.testing.assert_array_equal(w == 0, ref.coef_ == 0)  # the same exact zeros
    assert (w == 0).any() and (w != 0).any()


def test_per_group_l1_weights_are_a_weighted_lasso(x64):
    """``l1_w@g`` prices group g's factors apart: the weighted lasso Σ λ_j|w_j| equals
    scikit-learn's lasso on the columns divided by ``λ_j / λ`` (coefficients scaled back)."""
    X, r, train, valid = _linear_problem(seed=1)
    groups = ["char", "char", "macro", "macro", "char"]
    lam, lam_macro = 0.1, 0.02
    cfg = _ista_config(X, r, train)
    hyper, points = sweep_grid(cfg, penalties=[{"l1_w": lam, "l1_w@macro": lam_macro}], groups=groups)
    assert points[0]["l1_w@macro"] == lam_macro and points[0]["l1_w"] == lam
    np.testing.assert_allclose(hyper.penalty.l1_w[0], [lam, lam, lam_macro, lam_macro, lam])
    one = jax.tree_util.tree_map(lambda a: a[0], hyper)
    st = fit_window(X, r, train, valid, cfg, hyper=one).state.params
    s = np.array([1.0 if g == "char" else lam_macro / lam for g in groups])
    c, n_train = float(np.sum(r[train] ** 2)), int(train.sum())
    ref = Lasso(alpha=lam * c / (2 * n_train), tol=1e-12, max_iter=100_000).fit(X[train] / s, r[train])
    np.testing.assert_allclose(np.asarray(st.w), ref.coef_ / s, atol=1e-6)
    plain = Lasso(alpha=lam * c / (2 * n_train), tol=1e-12, max_iter=100_000).fit(X[train], r[train])
    assert np.max(np.abs(ref.coef_ / s - plain.coef_)) > 1e-3  # the group's weight mattered


def test_per_group_weights_compile_nothing_new(synth):
    """Per-group weights are values: other weights of the same grouped terms, no compilation."""
    cfg = TrainConfig(rank=2, epochs=3, learning_rate=2e-2, chunk_rows=1800)
    X, r = synth.X[:, :5], synth.r
    groups = ["char"] * 3 + ["macro"] * 2
    h1, _ = sweep_grid(cfg, penalties=[{}, {"group_v": 1e-3, "group_v@macro": 1e-4}], groups=groups)
    fit_windows(X, r, synth.train, synth.valid, cfg, hyper=h1)
    pens = [{"l1_w@char": 1e-3}, {"group_v": 3e-3, "group_v@macro": 0.0}]
    h2, _ = sweep_grid(cfg, penalties=pens, groups=groups)
    with jax.log_compiles(True), count_compiles() as n:
        fit_windows(X, r, synth.train, synth.valid, cfg, hyper=h2)
    assert n() == 0


def test_l1_with_adam_is_lasso(x64):
    """Adam's proximal step in Adam's own metric (threshold ``lr·λ/(√v̂+ε)``) reaches the lasso:
    the same exact zeros as scikit-learn and the same coefficients within Adam's last steps.
    (An unscaled threshold ``lr·λ`` would zero nothing here: Adam's step is about ``lr`` per
    coordinate whatever the gradient, and ``λ < 1``.)"""
    X, r, train, valid = _linear_problem(seed=1)
    lam = 0.1
    cfg = TrainConfig(rank=1, init_scale=0.0, learning_rate=3e-3, linear_lr_scale=1.0, epochs=3000, l1_w=lam)
    w0, w = _final_linear(X, r, train, valid, cfg)
    c, n_train = float(np.sum(r[train] ** 2)), int(train.sum())
    ref = Lasso(alpha=lam * c / (2 * n_train), tol=1e-12, max_iter=100_000).fit(X[train], r[train])
    np.testing.assert_array_equal(w == 0, ref.coef_ == 0)
    assert (w == 0).any() and (w != 0).any()
    np.testing.assert_allclose(w, ref.coef_, atol=1e-2)
    assert w0 == pytest.approx(ref.intercept_, abs=1e-2)


def test_group_penalty_with_adam_drops_a_noise_factor(x64):
    """Group lasso on ``v_i`` under Adam: the latent vectors of factors without interactions go
    to exactly 0, those of a planted pair stay."""
    rng = np.random.default_rng(3)
    N, n = 1500, 5
    X = rng.normal(size=(N, n))
    r = 0.5 * X[:, 0] * X[:, 1] + rng.normal(scale=0.5, size=N)
    train = np.arange(N) < 1000
    cfg = TrainConfig(
        rank=2, init_scale=0.1, learning_rate=1e-2, linear_lr_scale=1.0, epochs=600, group_v=5e-2
    )
    V = np.asarray(fit_window(X, r, train, ~train, cfg).state.params.V)
    norms = np.linalg.norm(V, axis=1)
    assert np.all(norms[2:] == 0) and np.all(norms[:2] > 0.1), norms


def test_proximal_operators_by_hand():
    x = jnp.asarray([-2.0, -0.3, 0.0, 0.4, 1.5])
    np.testing.assert_allclose(soft_threshold(x, 0.5), [-1.5, 0.0, 0.0, 0.0, 1.0])
    V = jnp.asarray([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])  # row norms 5, 0.5, 0
    np.testing.assert_allclose(group_shrink(V, 1.0), [[2.4, 3.2], [0.0, 0.0], [0.0, 0.0]], atol=1e-7)
    p = FAPMParams(w0=jnp.asarray(1.0), w=x, V=jnp.ones((5, 2)), d=jnp.asarray([0.2, -1.0, 0, 0, 0]))
    pen = penalty_of({"l1_w": 1.0, "group_v": 2.0, "l1_d": 0.5, "l2_v": 0.1})
    q = prox(p, pen, jnp.asarray(0.5), jnp.asarray(0.25))
    assert float(q.w0) == 1.0  # the bias is never penalised
    np.testing.assert_allclose(q.w, soft_threshold(x, 0.25))
    np.testing.assert_allclose(q.V, np.ones((5, 2)) * (1 - 1.0 / np.sqrt(2)), rtol=1e-6)
    np.testing.assert_allclose(q.d, [0.0, -0.75, 0, 0, 0])
    # P(θ) by hand: λ2v ‖V‖² + λ1w Σ|w| + λgv Σ‖v_i‖ + λ1d Σ|d|
    want = 0.1 * 10 + 1.0 * 4.2 + 2.0 * 5 * np.sqrt(2) + 0.5 * 1.2
    assert float(penalty_value(p, pen)) == pytest.approx(want, rel=1e-6)


def test_a_large_group_weight_removes_every_interaction(synth):
    cfg = TrainConfig(rank=2, epochs=6, learning_rate=3e-2, chunk_rows=2000)
    free = fit_windows(synth.X, synth.r, synth.train, synth.valid, cfg)
    assert np.abs(np.asarray(free.params.V)).max() > 0
    cut = fit_windows(
        synth.X, synth.r, synth.train, synth.valid, dataclasses.replace(cfg, group_v=1e3), epochs_per_call=6
    )
    # every v_i is exactly zero after the first step, so the best model is the OLS start or linear
    res = fit_window(synth.X, synth.r, synth.train[0], synth.valid[0], dataclasses.replace(cfg, group_v=1e3))
    assert np.all(np.asarray(res.state.params.V) == 0)
    assert np.all(np.asarray(cut.params.V) == 0)


def test_penalties_are_a_sweep_axis_and_compile_nothing(synth):
    """Two penalty settings in one program; zero weights give the unpenalised model; new
    weights of the same terms compile nothing."""
    cfg = TrainConfig(rank=2, epochs=5, learning_rate=2e-2, chunk_rows=1800)
    X, r = synth.X[:, :5], synth.r
    hyper, points = sweep_grid(cfg, penalties=[{}, {"l2_v": 5.0, "l1_w": 1e-3}])
    assert [(p["l2_v"], p["l1_w"], p["group_v"]) for p in points] == [(0, 0, 0), (5.0, 1e-3, 0)]
    both = fit_windows(X, r, synth.train, synth.valid, cfg, hyper=hyper)
    plain = fit_windows(X, r, synth.train, synth.valid, cfg)
    for a, b in zip(jax.tree_util.tree_leaves(plain.params), jax.tree_util.tree_leaves(both.params)):
        np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b)[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(both.params.V)[0], np.asarray(both.params.V)[1])
    hyper2, _ = sweep_grid(cfg, penalties=[{}, {"l2_v": 0.5, "l1_w": 3e-3}])
    with jax.log_compiles(True), count_compiles() as n:
        fit_windows(X, r, synth.train, synth.valid, cfg, hyper=hyper2)
    assert n() == 0
    # a configuration's own weights travel the same way (TrainConfig -> Hyper.penalty)
    one = fit_windows(X, r, synth.train, synth.valid, dataclasses.replace(cfg, l2_v=5.0, l1_w=1e-3))
    with jax.log_compiles(True), count_compiles() as n:
        fit_windows(X, r, synth.train, synth.valid, dataclasses.replace(cfg, l2_v=0.1, l1_w=1e-4))
    assert n() == 0  # other weights, the same programs
    np.testing.assert_allclose(
        np.asarray(one.params.V)[0], np.asarray(both.params.V)[1], rtol=1e-5, atol=1e-6
    )


def test_bad_penalties_are_one_line_errors():
    with pytest.raises(ConfigError, match="l2_v"):
        TrainConfig(l2_v=-1.0)
    with pytest.raises(ConfigError, match="unknown term"):
        sweep_grid(TrainConfig(), penalties=[{"l3": 1.0}])
    with pytest.raises(ConfigError, match="non-negative"):
        sweep_grid(TrainConfig(), penalties=[{"l1_w": -0.1}])
    with pytest.raises(ConfigError, match="no factor groups were given"):
        sweep_grid(TrainConfig(), penalties=[{"l1_w@macro": 0.1}])
    with pytest.raises(ConfigError, match="no factor group 'sic'"):
        sweep_grid(TrainConfig(), penalties=[{"l1_w@sic": 0.1}], groups=["char", "macro"])
    with pytest.raises(ConfigError, match="unknown term"):
        sweep_grid(TrainConfig(), penalties=[{"l9@macro": 0.1}], groups=["char", "macro"])


def test_the_moment_trainer_serves_the_penalties(synth, x64):
    """Penalised training from moments equals the row trainer (float64)."""
    X, r = synth.X[:, :4].astype(np.float64), synth.r.astype(np.float64)
    cfg = TrainConfig(rank=2, epochs=8, learning_rate=3e-2, l2_v=0.5, l1_w=1e-3, group_v=1e-3)
    rows = fit_windows(X, r, synth.train, synth.valid, cfg, method="rows")
    mom = fit_windows(X, r, synth.train, synth.valid, cfg, method="moments")
    np.testing.assert_array_equal(rows.best_epoch, mom.best_epoch)
    for a, b in zip(jax.tree_util.tree_leaves(rows.params), jax.tree_util.tree_leaves(mom.params)):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
