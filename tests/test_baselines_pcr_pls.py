"""Tests of fapm_jax/baselines/pcr.py and pls.py (GKX 2020 section 1.3) against scikit-learn.

Comparisons run in float64 (the ``x64`` fixture of conftest.py: ``jax.enable_x64`` as a context
manager, restored afterwards). PCR: ``PCA(K)`` + ``LinearRegression`` on the scores, mapped back
to ``X`` space; PLS: ``PLSRegression(K, scale=False)`` (NIPALS). Both at ``K = P`` are OLS.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression

from fapm_jax.baselines.base import fit_rolling
from fapm_jax.baselines.pcr import PCR, pcr_path
from fapm_jax.baselines.pls import PLS, pls_path

N, P = 600, 10
KS = (1, 2, 4, 7, P)
# float64 against sklearn (SVD / NIPALS vs our eigh / Krylov): observed errors ~1e-15.
RTOL, ATOL = 1e-9, 1e-10


def make_data(seed: int = 0, n: int = N, p: int = P):
    """Rank-like predictors in [-1, 1] driven by 3 latent factors (correlated columns), and a
    noisy return linear in them plus a factor. With ``seed=0`` validation picks an interior K
    for both PCR and PLS (K = 4 of 1..8)."""
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(n, 3))
    X = np.tanh(F @ rng.normal(size=(3, p)) * 0.6 + 0.5 * rng.normal(size=(n, p)))
    y = 0.5 * X @ rng.normal(size=p) + 0.3 * F[:, 0] + 0.8 * rng.normal(size=n)
    train = rng.uniform(size=n) < 0.5
    valid = ~train & (rng.uniform(size=n) < 0.6)
    return X, y, train, valid


@pytest.fixture(scope="module")
def data():
    return make_data()


def sk_pcr(X, y, K):
    """(b0, b) of PCA(K) + LinearRegression, in the original X space."""
    pca = PCA(n_components=K).fit(X)
    lr = LinearRegression().fit(pca.transform(X), y)
    b = pca.components_.T @ lr.coef_
    return lr.intercept_ - pca.mean_ @ b, b


def sk_pls(X, y, K):
    pls = PLSRegression(n_components=K, scale=False).fit(X, y)
    b = pls.coef_[0]
    b0 = float(np.ravel(pls.predict(X[:1]))[0] - X[0] @ b)
    return b0, b, pls


PATHS = {"pcr": (pcr_path, sk_pcr), "pls": (pls_path, lambda X, y, K: sk_pls(X, y, K)[:2])}


_JIT_PATHS = {path: jax.jit(path, static_argnums=3) for path in (pcr_path, pls_path)}


def jpath(path, X, y, mask, kmax):
    """``path`` jitted (one cache per path), as numpy ``(b0 [K], b [K, P])``."""
    X = jnp.asarray(X)
    p = _JIT_PATHS[path](X, jnp.asarray(y), jnp.asarray(mask, X.dtype), kmax)
    return np.asarray(p.b0), np.asarray(p.b)


@eqx.filter_jit
def jfit(model, X, y, train, valid, key):
    """``model.fit`` jitted (the model is static; compiled once per model and shape)."""
    return model.fit(X, y, train, valid, key)


@pytest.mark.parametrize("which", ["pcr", "pls"])
def test_fixed_k_equals_sklearn(data, x64, which):
    path, sk = PATHS[which]
    X, y, train, _ = data
    b0, b = jpath(path, X, y, train, P)
    assert b.shape == (P, P) and b.dtype == np.float64
    for K in KS:
        sb0, sb = sk(X[train], y[train], K)
        np.testing.assert_allclose(b[K - 1], sb, rtol=RTOL, atol=ATOL, err_msg=f"K={K}")
        np.testing.assert_allclose(b0[K - 1], sb0, rtol=RTOL, atol=ATOL, err_msg=f"K={K}")
        np.testing.assert_allclose(
            b0[K - 1] + X @ b[K - 1], sb0 + X @ sb, rtol=RTOL, atol=ATOL, err_msg=f"K={K}"
        )
    if which == "pls":  # predictions straight from sklearn's predict, too
        for K in KS:
            pls = sk_pls(X[train], y[train], K)[2]
            np.testing.assert_allclose(
                b0[K - 1] + X @ b[K - 1], np.ravel(pls.predict(X)), rtol=RTOL, atol=ATOL
            )
    # K = P spans every direction: OLS.
    ols = LinearRegression().fit(X[train], y[train])
    np.testing.assert_allclose(b[-1], ols.coef_, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(b0[-1], ols.intercept_, rtol=RTOL, atol=ATOL)
    # Different K are really different fits (the path is not constant).
    assert np.abs(b[0] - b[-1]).max() > 1e-3


@pytest.mark.parametrize("which", ["pcr", "pls"])
def test_train_mask_selects_rows(data, x64, which):
    path, sk = PATHS[which]
    X, y, train, _ = data
    # Masked-out rows are ignored even when they hold wild values: the fit equals sklearn's on
    # the selected rows alone.
    Xw = np.where(train[:, None], X, 50.0)
    yw = np.where(train, y, -30.0)
    b0, b = jpath(path, Xw, yw, train, P)
    _, a = jpath(path, X, y, np.ones(N), P)  # all rows
    for K in (2, 5):
        sb0, sb = sk(X[train], y[train], K)
        np.testing.assert_allclose(b[K - 1], sb, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(b0[K - 1], sb0, rtol=RTOL, atol=ATOL)
        # The mask matters: the all-rows fit differs.
        assert np.abs(a[K - 1] - sb).max() > 1e-3


@pytest.mark.parametrize("model", [PCR(max_components=8), PLS(max_components=8)])
def test_validation_choice_is_argmin(data, x64, model):
    X, y, train, valid = data
    sk = sk_pcr if isinstance(model, PCR) else (lambda X, y, K: sk_pls(X, y, K)[:2])
    fit = jfit(
        model,
        jnp.asarray(X),
        jnp.asarray(y),
        jnp.asarray(train, float),
        jnp.asarray(valid, float),
        jax.random.key(0),
    )
    sse = []
    for K in range(1, 9):
        b0, b = sk(X[train], y[train], K)
        sse.append(np.sum((y[valid] - b0 - X[valid] @ b) ** 2))
    sse = np.array(sse)
    assert fit.valid_sse.shape == (8,)
    np.testing.assert_allclose(np.asarray(fit.valid_sse), sse, rtol=1e-9)
    k = int(np.argmin(sse))
    assert int(fit.choice) == k
    b0, b = sk(X[train], y[train], k + 1)
    np.testing.assert_allclose(np.asarray(fit.params.b), b, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(model.predict(fit.params, jnp.asarray(X)), b0 + X @ b, rtol=1e-8)
    # The choice is a real one here: neither the smallest nor the largest K.
    assert 0 < k < 7 and np.sort(sse)[1] - sse[k] > 0.1, sse


def test_default_grids():
    assert PCR().kmax(1000) == 50 and PCR().kmax(8) == 8 and PCR(max_components=3).kmax(8) == 3
    assert PLS().kmax(1000) == 30 and PLS().kmax(8) == 8 and PLS(max_components=40).kmax(8) == 8
    assert PCR().name == "PCR" and PLS().name == "PLS" and PCR().is_jax and PLS().is_jax


def window_masks(n: int, n_windows: int = 3):
    """Expanding windows over row blocks: train [0, a), valid [a, a + n/6)."""
    t, v = np.zeros((n_windows, n), bool), np.zeros((n_windows, n), bool)
    for w in range(n_windows):
        a = n // 3 + w * n // 6
        t[w, :a] = True
        v[w, a : a + n // 6] = True
    return t, v


@pytest.mark.parametrize("model", [PCR(max_components=8), PLS(max_components=8)])
def test_fit_rolling_equals_loop(data, x64, model):
    X, y, _, _ = data
    tm, vm = window_masks(N)
    key = jax.random.key(1)
    roll = fit_rolling(model, X, y, tm, vm, key)
    assert roll.valid_sse.shape == (3, 8)
    for w in range(3):
        one = jfit(
            model,
            jnp.asarray(X),
            jnp.asarray(y),
            jnp.asarray(tm[w], float),
            jnp.asarray(vm[w], float),
            jax.random.fold_in(key, w),
        )
        np.testing.assert_allclose(roll.valid_sse[w], np.asarray(one.valid_sse), rtol=1e-10)
        assert roll.choice[w] == int(one.choice)
        np.testing.assert_allclose(
            np.asarray(roll.params.b[w]), np.asarray(one.params.b), rtol=1e-9, atol=1e-12
        )
        np.testing.assert_allclose(float(roll.params.b0[w]), float(one.params.b0), rtol=1e-9)
    # Windows differ, so the vmapped fits must differ too.
    assert np.abs(np.asarray(roll.params.b[0]) - np.asarray(roll.params.b[2])).max() > 1e-4


@pytest.mark.parametrize("model", [PCR(max_components=8), PLS(max_components=8)])
def test_vmap_over_data_sets_equals_loop(x64, model):
    """Simulation repetitions: vmap over (X, y, masks) together."""
    sets = [make_data(seed) for seed in (3, 4)]
    X, y, tr, va = (np.stack(a) for a in zip(*sets))
    keys = jax.random.split(jax.random.key(0), 2)
    fits = jax.jit(jax.vmap(model.fit))(X, y, tr.astype(float), va.astype(float), keys)
    for r in range(2):
        one = jfit(
            model,
            jnp.asarray(X[r]),
            jnp.asarray(y[r]),
            jnp.asarray(tr[r], float),
            jnp.asarray(va[r], float),
            keys[r],
        )
        np.testing.assert_allclose(np.asarray(fits.valid_sse[r]), np.asarray(one.valid_sse), rtol=1e-10)
        np.testing.assert_allclose(
            np.asarray(fits.params.b[r]), np.asarray(one.params.b), rtol=1e-9, atol=1e-12
        )


@pytest.mark.parametrize("model", [PCR(max_components=4), PLS(max_components=4)])
def test_jit_does_not_retrace(model):
    @jax.jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def fit(X, y, train, valid, key):
        return model.fit(X, y, train, valid, key)

    for seed in (5, 6):
        X, y, tr, va = make_data(seed, n=200, p=6)
        out = fit(
            jnp.asarray(X, jnp.float32),
            jnp.asarray(y, jnp.float32),
            jnp.asarray(tr, jnp.float32),
            jnp.asarray(va, jnp.float32),
            jax.random.key(seed),
        )
        assert out.params.b.dtype == jnp.float32 and np.isfinite(np.asarray(out.params.b)).all()
    assert eqx.debug.get_num_traces(fit) == 1


@pytest.mark.parametrize("path", [pcr_path, pls_path])
def test_float32_degenerate_columns(path):
    """float32 with a duplicated, a constant and a linearly dependent column: finite, and the
    predictions of each K match float64 (relative to their spread) to 1e-3."""
    X, y, train, _ = make_data(7)
    X[:, 3] = X[:, 4]
    X[:, 5] = 0.25
    X[:, 6] = 0.5 * (X[:, 7] + X[:, 8])
    b0, b = jpath(path, X.astype(np.float32), y.astype(np.float32), train, P)
    assert b.dtype == np.float32 and np.isfinite(b).all() and np.isfinite(b0).all()
    with jax.enable_x64(True):
        c0, c = jpath(path, X, y, train, P)
    pred32 = b0[:, None] + b.astype(np.float64) @ X.T
    pred64 = c0[:, None] + c @ X.T
    err = np.abs(pred32 - pred64).max(axis=1) / pred64.std(axis=1)
    assert err.max() < 1e-3, err
    assert np.abs(b[:, 5]).max() < 1e-6 * np.abs(b).max()  # the constant column: no weight
