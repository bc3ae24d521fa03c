"""Tests of fapm_jax/baselines/nn.py (GKX NN1–NN5): the vmapped fit against a per-member and a
per-window loop, early stopping against a hand simulation of the recorded validation losses,
the loss gradient against finite differences (float64), functional batch normalisation against
numpy, the L1 penalty, divergence handling, learning a planted interaction, determinism and
compilation caching.

Compilation dominates the runtime, so the data are tiny, the network has one hidden layer of 8
units, and every test reuses one of three compiled programs: the jitted one-member trainer
(``MEMBER``), the jitted ``fit_with_info`` (``FIT``, with a trace counter) and ``fit_rolling``'s
window-vmapped program.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from fapm_jax.baselines.base import fit_rolling
from fapm_jax.baselines.nn import (
    BN_EPS,
    MLP,
    NN,
    NN_HIDDEN,
    BNStats,
    forward,
    init_mlp,
    mlp_from_arrays,
    nn_family,
    nn_loss,
)

N, P = 600, 5
N_TRAIN, N_VALID = 360, 120
MODEL = NN(
    name="tiny",
    hidden=(8,),
    l1=(1e-5, 1e-3),
    learning_rates=(1e-2, 1e-1),
    batch_size=128,
    epochs=20,
    patience=3,
    ensemble=2,
    n_batches=3,  # ceil(360 / 128): the largest training set below, as run_comparison sizes it
    n_valid=N_VALID,
)
KEY = jax.random.key(7)

TRACES = {"fit": 0}


def _fit_counted(X, y, train, valid, key):
    TRACES["fit"] += 1
    return MODEL.fit_with_info(X, y, train, valid, key)


FIT = jax.jit(_fit_counted)
MEMBER = jax.jit(
    lambda X, y, tr, va, key, m, l1, lr: MODEL.train_member(X, y, tr, va, jax.random.fold_in(key, m), l1, lr)
)
PREDICT = jax.jit(MODEL.predict)


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, (N, P)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] + 0.05 * X[:, 2] + 0.1 * rng.standard_normal(N)).astype(np.float32)
    rows = np.arange(N)
    train = (rows < N_TRAIN).astype(np.float32)
    valid = ((rows >= N_TRAIN) & (rows < N_TRAIN + N_VALID)).astype(np.float32)
    test = rows >= N_TRAIN + N_VALID
    return X, y, train, valid, test


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def fitted(data):
    X, y, train, valid, _ = data
    return FIT(X, y, train, valid, KEY)


# ----------------------------------------------------------------------------- numpy references


def np_forward(net: MLP, X, train_rows=None, stats=None):
    """Forward pass in float64 numpy; BN statistics over ``train_rows`` or given ``stats``."""
    h = np.asarray(X, np.float64)
    means, variances = [], []
    for i, lin in enumerate(net.hidden):
        assert lin.bias is None  # BN's shift replaces the hidden bias
        z = h @ np.asarray(lin.weight, np.float64).T
        if stats is None:
            mu, var = z[train_rows].mean(0), z[train_rows].var(0)
        else:
            mu, var = np.asarray(stats.mean[i], np.float64), np.asarray(stats.var[i], np.float64)
        means.append(mu)
        variances.append(var)
        g, s = np.asarray(net.scale[i], np.float64), np.asarray(net.shift[i], np.float64)
        h = np.maximum(g * (z - mu) / np.sqrt(var + BN_EPS) + s, 0.0)
    out = h @ np.asarray(net.out.weight, np.float64).T + np.asarray(net.out.bias, np.float64)
    return out[:, 0], means, variances


def member(tree, m):
    return jax.tree_util.tree_map(lambda a: a[m], tree)


def l1_of(net: MLP) -> float:
    return sum(float(np.abs(np.asarray(lin.weight)).sum()) for lin in (*net.hidden, net.out))


def r2(y, y_hat):
    return 1.0 - np.sum((y - y_hat) ** 2) / np.sum((y - y.mean()) ** 2)


# ----------------------------------------------------------------------------- tests


def test_family_and_grid():
    assert [m.name for m in nn_family()] == ["NN1", "NN2", "NN3", "NN4", "NN5"]
    assert [m.hidden for m in nn_family()] == list(NN_HIDDEN.values())
    assert NN_HIDDEN["NN5"] == (32, 16, 8, 4, 2)
    d = NN()
    assert (d.batch_size, d.epochs, d.patience, d.ensemble) == (10000, 100, 5, 10)
    assert d.grid() == [(1e-5, 1e-3), (1e-5, 1e-2), (1e-3, 1e-3), (1e-3, 1e-2)]
    assert nn_family(epochs=7)[2].epochs == 7
    # static batching: a training set smaller than a batch is one batch per epoch
    assert d._batching(600) == (600, 1)
    assert NN(batch_size=128)._batching(600) == (128, 5)
    assert NN(batch_size=128, n_batches=2)._batching(600) == (128, 2)
    with pytest.raises(ValueError, match="patience"):
        NN(patience=0)


def test_vmapped_fit_equals_member_loop(data, fitted):
    """Every (grid point, member) of the one vmapped program equals the single-member trainer
    run alone with the same key; the ensemble validation SSE and the choice follow."""
    X, y, train, valid, _ = data
    fit, info = fitted
    G, M = len(MODEL.grid()), MODEL.ensemble
    assert info.best_epoch.shape == (G, M) and fit.valid_sse.shape == (G,)
    sse = np.zeros(G)
    for g, (l1, lr) in enumerate(MODEL.grid()):
        preds = []
        for m in range(M):
            r = MEMBER(X, y, train, valid, KEY, m, np.float32(l1), np.float32(lr))
            assert int(r.best_epoch) == int(info.best_epoch[g, m])
            assert int(r.stop_epoch) == int(info.stop_epoch[g, m])
            np.testing.assert_allclose(r.valid_history, info.valid_history[g, m], rtol=1e-5, atol=1e-7)
            if g == int(fit.choice):
                for a, b in zip(
                    jax.tree_util.tree_leaves((r.net, r.stats)),
                    jax.tree_util.tree_leaves(member((fit.params.net, fit.params.stats), m)),
                ):
                    np.testing.assert_allclose(
                        a, b, rtol=1e-5, atol=1e-5
                    )  # float32: vmapped vs alone differ in rounding
            preds.append(np_forward(r.net, X, stats=r.stats)[0])
        d = (y - np.mean(preds, axis=0))[valid > 0]
        sse[g] = np.sum(d * d)
    np.testing.assert_allclose(fit.valid_sse, sse, rtol=1e-4)
    assert int(fit.choice) == int(np.argmin(sse))
    # members of one grid point differ (different seeds)
    assert not np.allclose(info.valid_history[0, 0, 1], info.valid_history[0, 1, 1])


def test_fit_rolling_equals_window_loop(data):
    X, y, _, _, _ = data
    rows = np.arange(N)
    tm = np.stack([rows < 240 + 60 * w for w in range(3)])
    vm = np.stack([(rows >= 240 + 60 * w) & (rows < 360 + 60 * w) for w in range(3)])
    key = jax.random.key(3)
    roll = fit_rolling(MODEL, X, y, tm, vm, key)
    assert roll.valid_sse.shape == (3, len(MODEL.grid()))
    for w in range(3):
        fit, _ = FIT(X, y, tm[w].astype(np.float32), vm[w].astype(np.float32), jax.random.fold_in(key, w))
        np.testing.assert_allclose(roll.valid_sse[w], fit.valid_sse, rtol=1e-5)
        assert int(roll.choice[w]) == int(fit.choice)
        for a, b in zip(
            jax.tree_util.tree_leaves(member(roll.params, w)), jax.tree_util.tree_leaves(fit.params)
        ):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # windows see different data, so their fits differ
    assert not np.allclose(roll.valid_sse[0], roll.valid_sse[2])
    # in chunks of two windows (the last one padded), as run_comparison does on a CPU with 1
    chunked = fit_rolling(MODEL, X, y, tm, vm, key, window_chunk=2)
    np.testing.assert_allclose(chunked.valid_sse, roll.valid_sse, rtol=1e-5)
    np.testing.assert_array_equal(chunked.choice, roll.choice)
    for a, b in zip(jax.tree_util.tree_leaves(chunked.params), jax.tree_util.tree_leaves(roll.params)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_early_stopping_matches_hand_simulation(data, fitted):
    """From the recorded validation history: the best epoch is the first minimum, training
    stops exactly ``patience`` epochs after it (or at the epoch limit), nothing is recorded
    after the stop, and the returned network is the best epoch's."""
    X, y, train, valid, _ = data
    fit, info = fitted
    hist = np.asarray(info.valid_history)
    G, M, E1 = hist.shape
    assert E1 == MODEL.epochs + 1
    early = 0
    for g in range(G):
        for m in range(M):
            h = hist[g, m]
            best, best_e, stop = h[0], 0, MODEL.epochs
            for e in range(1, MODEL.epochs + 1):
                if h[e] < best:
                    best, best_e = h[e], e
                if e - best_e >= MODEL.patience:
                    stop = e
                    break
            assert int(info.best_epoch[g, m]) == best_e, (g, m, h)
            assert int(info.stop_epoch[g, m]) == stop, (g, m, h)
            assert np.all(np.isfinite(h[: stop + 1])) and np.all(np.isnan(h[stop + 1 :]))
            assert float(info.valid_mse[g, m]) == pytest.approx(float(h[best_e]))
            early += stop < MODEL.epochs
    assert early >= 2, "the test needs members that stop early"
    assert not np.any(info.diverged)
    # the chosen networks are those of their best epochs
    c = int(fit.choice)
    for m in range(M):
        y_hat = np_forward(member(fit.params.net, m), X, stats=member(fit.params.stats, m))[0]
        mse = np.mean((y - y_hat)[valid > 0] ** 2)
        assert mse == pytest.approx(float(hist[c, m, info.best_epoch[c, m]]), rel=1e-4)


def test_loss_gradient_matches_finite_differences(x64):
    rng = np.random.default_rng(1)
    S, Pg, H = 16, 3, 4
    Xb = jnp.asarray(rng.standard_normal((S, Pg)))
    yb = jnp.asarray(rng.standard_normal(S))
    mb = jnp.asarray((rng.uniform(size=S) > 0.25).astype(np.float64))
    net = mlp_from_arrays(
        [jnp.asarray(rng.standard_normal((H, Pg))), jnp.asarray(rng.standard_normal((1, H)))],
        jnp.asarray(rng.standard_normal(1)),
        scales=[jnp.asarray(rng.uniform(0.5, 1.5, H))],
        shifts=[jnp.asarray(0.3 * rng.standard_normal(H))],
    )
    theta, unravel = ravel_pytree(net)
    assert theta.dtype == jnp.float64
    l1 = 0.01
    loss = jax.jit(lambda th: nn_loss(unravel(th), Xb, yb, mb, l1))
    grad = np.asarray(jax.jit(jax.grad(lambda th: nn_loss(unravel(th), Xb, yb, mb, l1)))(theta))
    eps = 1e-6
    fd = np.empty_like(grad)
    th = np.asarray(theta)
    for i in range(th.size):
        e = np.zeros_like(th)
        e[i] = eps
        fd[i] = (float(loss(th + e)) - float(loss(th - e))) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
    # the loss itself: masked MSE (BN over the masked rows) + l1 * sum|W| (weights only)
    ok = np.asarray(mb) > 0
    y_hat = np_forward(net, np.asarray(Xb), train_rows=ok)[0]
    ref = np.mean((np.asarray(yb) - y_hat)[ok] ** 2) + l1 * l1_of(net)
    assert float(loss(theta)) == pytest.approx(ref, rel=1e-12)


def test_bn_population_statistics(data, fitted):
    """Prediction uses the mean and (biased) variance of each hidden pre-activation over all
    training rows of the window, computed with the returned weights."""
    X, y, train, valid, test = data
    fit, _ = fitted
    rows = train > 0
    for m in range(MODEL.ensemble):
        net, st = member(fit.params.net, m), member(fit.params.stats, m)
        _, means, variances = np_forward(net, X, train_rows=rows)
        for i in range(len(MODEL.hidden)):
            np.testing.assert_allclose(st.mean[i], means[i], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(st.var[i], variances[i], rtol=1e-4, atol=1e-6)
    # the forecast is the ensemble average with those statistics, for any rows
    ref = np.mean(
        [np_forward(member(fit.params.net, m), X, train_rows=rows)[0] for m in range(MODEL.ensemble)],
        axis=0,
    )
    np.testing.assert_allclose(PREDICT(fit.params, X), ref, rtol=1e-4, atol=1e-5)
    # a deeper net: both layers' statistics over the masked rows only
    rng = np.random.default_rng(2)
    Ws = [rng.standard_normal((4, P)), rng.standard_normal((3, 4)), rng.standard_normal((1, 3))]
    net2 = mlp_from_arrays([jnp.asarray(w, jnp.float32) for w in Ws], jnp.asarray([0.3], jnp.float32))
    y2, st2 = jax.jit(lambda n, x, mk: forward(n, x, mask=mk))(net2, X, train)
    ref2, means2, vars2 = np_forward(net2, X, train_rows=rows)
    assert isinstance(st2, BNStats) and len(st2.mean) == 2
    for i in range(2):
        np.testing.assert_allclose(st2.mean[i], means2[i], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(st2.var[i], vars2[i], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y2, ref2, rtol=1e-4, atol=1e-4)


def test_row_blocks_sized_or_whole_panel_agree_at_initialisation(data):
    """``n_batches``/``n_valid`` only size the gathered row blocks: with the whole panel's
    sizes (``None``) the same key gives the same initial network and the same epoch-0
    validation MSE (numpy's, with BN statistics over the training rows); later epochs differ
    only because the shuffle runs over a different number of slots."""
    X, y, train, valid, _ = data
    whole = dataclasses.replace(MODEL, n_batches=None, n_valid=None)
    args = (X, y, train, valid, jax.random.fold_in(KEY, 0), np.float32(1e-5), np.float32(1e-2))
    a = MODEL.train_member(*args)
    b = jax.jit(whole.train_member)(*args)
    init = init_mlp(jax.random.split(args[4], MODEL.epochs + 1)[0], P, MODEL.hidden)
    y0 = np_forward(init, X, train_rows=train > 0)[0]
    ref = np.mean((y - y0)[valid > 0] ** 2)
    np.testing.assert_allclose(a.valid_history[0], ref, rtol=1e-5)
    np.testing.assert_allclose(b.valid_history[0], ref, rtol=1e-5)
    assert int(a.stop_epoch) > 0 and int(b.stop_epoch) > 0


def test_l1_penalty_shrinks_weights(data):
    X, y, train, valid, _ = data
    lr = np.float32(1e-2)
    free = MEMBER(X, y, train, valid, KEY, 0, np.float32(0.0), lr)
    shrunk = MEMBER(X, y, train, valid, KEY, 0, np.float32(0.05), lr)
    assert l1_of(shrunk.net) < 0.5 * l1_of(free.net)
    # biases and BN parameters are not penalised: the penalty leaves them free to move
    assert not np.allclose(shrunk.net.out.bias, 0.0)


def test_divergence_freezes_member_with_finite_params(data):
    X, y, train, valid, _ = data
    bad = y.copy()
    bad[5] = np.nan  # a training row
    r = MEMBER(X, bad, train, valid, KEY, 0, np.float32(1e-3), np.float32(1e-2))
    assert bool(r.diverged) and int(r.stop_epoch) == 1 and int(r.best_epoch) == 0
    assert np.isnan(r.valid_history[1]) and np.isfinite(r.valid_history[0])
    assert all(np.all(np.isfinite(a)) for a in jax.tree_util.tree_leaves((r.net, r.stats)))
    # NaNs outside the window's training and validation rows change nothing
    outside = y.copy()
    outside[-1] = np.nan
    clean = MEMBER(X, y, train, valid, KEY, 0, np.float32(1e-3), np.float32(1e-2))
    other = MEMBER(X, outside, train, valid, KEY, 0, np.float32(1e-3), np.float32(1e-2))
    assert not bool(other.diverged)
    for a, b in zip(jax.tree_util.tree_leaves(clean), jax.tree_util.tree_leaves(other)):
        np.testing.assert_array_equal(a, b)


def test_learns_planted_interaction_better_than_ols(data, fitted):
    X, y, train, valid, test = data
    fit, _ = fitted
    y_hat = np.asarray(PREDICT(fit.params, X))
    Z = np.c_[np.ones(N), X]
    rows = train > 0
    b = np.linalg.lstsq(Z[rows], y[rows], rcond=None)[0]
    ols = Z @ b
    for part in (valid > 0, test):
        nn_r2, ols_r2 = r2(y[part], y_hat[part]), r2(y[part], ols[part])
        assert nn_r2 > 0.5 and nn_r2 > ols_r2 + 0.3, (nn_r2, ols_r2)


def test_same_key_same_fit_and_no_retrace(data, fitted):
    X, y, train, valid, _ = data
    fit, info = fitted
    again, info2 = FIT(X, y, train, valid, KEY)
    for a, b in zip(jax.tree_util.tree_leaves((fit, info)), jax.tree_util.tree_leaves((again, info2))):
        np.testing.assert_array_equal(a, b)
    other, _ = FIT(X, y, train, valid, jax.random.key(8))
    assert not np.array_equal(other.valid_sse, fit.valid_sse)
    assert TRACES["fit"] == 1
