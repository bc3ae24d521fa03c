"""The moment trainer (fapm_jax/moments.py): θᵀφ(x) is the model, block moments are the masked
sums, OLS from moments is fit_ols, and training from moments gives the row trainer's models
(float64, sweep settings, FAPM-m masks, self-interactions)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import one_line_error

from fapm_jax.core.config import TrainConfig, sweep_grid
from fapm_jax.core.errors import ConfigError
from fapm_jax.core.fit import fit_windows
from fapm_jax.core.linear import fit_ols, ols_from_correlations
from fapm_jax.core.model import init_params, predict
from fapm_jax.core.moments import (
    block_moments,
    mask_patterns,
    moment_bytes,
    n_moment_features,
    ols_from_moments,
    phi,
    theta,
    window_correlations,
    window_moments,
)


def test_theta_phi_is_the_model(x64):
    X = np.random.default_rng(0).normal(size=(50, 6))
    for si in (False, True):
        p = init_params(
            jax.random.key(1),
            6,
            3,
            w0=0.3,
            w=jnp.arange(6.0),
            init_scale=1.0,
            self_interactions=si,
            dtype=jnp.float64,
        )
        if si:
            p = type(p)(p.w0, p.w, p.V, jnp.linspace(-1.0, 1.0, 6))
        F = phi(jnp.asarray(X), si)
        assert F.shape == (50, n_moment_features(6, si))
        np.testing.assert_allclose(F @ theta(p), predict(p, jnp.asarray(X)), rtol=1e-12, atol=1e-12)


def test_block_moments_are_the_masked_sums(x64):
    rng = np.random.default_rng(1)
    X, r = rng.normal(size=(300, 4)), rng.normal(size=300)
    masks = np.zeros((3, 300), bool)
    masks[0, :100] = masks[1, 50:200] = masks[2, 250:] = True
    blocks, pat = block_moments(X, r, masks, chunk=64)
    assert pat.shape == (4, 3)  # [0-50), [50-100), [100-200), [250-300); rows 200-250 in no mask
    F = np.asarray(phi(jnp.asarray(X)))
    for k in range(3):
        m = masks[k].astype(float)
        np.testing.assert_allclose(
            pat[:, k] @ blocks.S.reshape(4, -1), ((F * m[:, None]).T @ F).ravel(), rtol=1e-10
        )
        np.testing.assert_allclose(pat[:, k] @ blocks.b, F.T @ (m * r), rtol=1e-10)
        np.testing.assert_allclose(pat[:, k] @ blocks.c, np.sum(m * r * r), rtol=1e-10)
    # (1, x) only, taken about each block's means and turned back into raw sums
    X2, r2 = X + [100.0, 0, -5, 0], r + 3.0
    lin, pat2 = block_moments(X2, r2, masks, chunk=64, linear=True)
    F = np.concatenate([np.ones((300, 1)), X2], axis=1)
    np.testing.assert_array_equal(pat2, pat)
    for k in range(3):
        m = masks[k].astype(float)
        np.testing.assert_allclose(
            pat[:, k] @ lin.S.reshape(4, -1), ((F * m[:, None]).T @ F).ravel(), rtol=1e-10
        )
        np.testing.assert_allclose(pat[:, k] @ lin.b, F.T @ (m * r2), rtol=1e-10)
        np.testing.assert_allclose(pat[:, k] @ lin.c, np.sum(m * r2 * r2), rtol=1e-10)


def test_mask_patterns_equal_a_row_sort():
    """Runs first, then the runs' patterns: the same blocks as ``np.unique`` over all rows, for
    masks with long runs and for random ones (runs of length ~1)."""
    rng = np.random.default_rng(4)
    runs = np.repeat(rng.random((5, 40)) < 0.5, rng.integers(1, 30, 40), axis=1)
    for masks in (runs, rng.random((5, 500)) < 0.4):
        patterns, used, inverse = mask_patterns(masks)
        want, want_inv = np.unique(masks[:, masks.any(axis=0)].T, axis=0, return_inverse=True)
        np.testing.assert_array_equal(used, masks.any(axis=0))
        np.testing.assert_array_equal(patterns, want)
        np.testing.assert_array_equal(inverse, want_inv.ravel())


def test_ols_from_moments_equals_fit_ols(x64):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 5)) * [1, 10, 0.1, 1, 1] + [0, 3, -1, 0, 0]
    r = X @ rng.normal(size=5) + rng.normal(size=400)
    mask = (np.arange(400) < 300).astype(float)
    tr, _ = window_moments(X, r, mask[None] > 0, (1 - mask)[None] > 0)
    one = jax.tree_util.tree_map(lambda a: a[0], tr)
    for cols in (None, jnp.asarray([1.0, 0, 1, 1, 0])):
        w0, w = ols_from_moments(one, 5, columns=cols)
        w0r, wr = fit_ols(jnp.asarray(X), jnp.asarray(r), jnp.asarray(mask), columns=cols)
        np.testing.assert_allclose(w, wr, rtol=1e-9, atol=1e-12)
        assert float(w0) == pytest.approx(float(w0r), rel=1e-9)


def test_window_correlations_give_fit_ols():
    """The trainer's OLS starts (block moments of (1, x) in float64, then the standardised
    normal equations) equal fit_ols on the rows: 1e-9 in float64; in float32, with columns of
    mean up to 50 and scales 0.1 … 10, within 1e-5 (relative) of the float64 solution, as the
    row solve in float32 is (the moments are of data shifted to mean 0, so large means cost
    nothing)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 5)) * [1, 10, 0.1, 1, 1] + [0, 3, -1, 50, 0]
    r = X @ rng.normal(size=5) * 0.01 + rng.normal(size=600)
    masks = np.zeros((3, 600), bool)
    masks[0, :200] = masks[1, :400] = masks[2, 100:500] = True
    with jax.enable_x64(True):
        ref = [fit_ols(jnp.asarray(X), jnp.asarray(r), jnp.asarray(m, jnp.float64)) for m in masks]
        c64 = window_correlations(X, r, masks)
        for k in range(3):
            w0, w = ols_from_correlations(*(a[k] for a in c64))
            np.testing.assert_allclose(w, ref[k][1], rtol=1e-9, atol=1e-12)
            assert float(w0) == pytest.approx(float(ref[k][0]), rel=1e-9)
    c32 = window_correlations(X.astype(np.float32), r.astype(np.float32), masks)
    for k in range(3):
        w0, w = ols_from_correlations(*(a[k] for a in c32))
        np.testing.assert_allclose(w, ref[k][1], rtol=1e-5, atol=1e-7)
        assert float(w0) == pytest.approx(float(ref[k][0]), rel=1e-5, abs=1e-6)
        _, wr = fit_ols(
            jnp.asarray(X, jnp.float32), jnp.asarray(r, jnp.float32), jnp.asarray(masks[k], jnp.float32)
        )
        np.testing.assert_allclose(wr, ref[k][1], rtol=1e-5, atol=1e-7)


def _same(a, b, rtol, atol):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_moment_training_equals_row_training(synth, x64, self_interactions=True):
    """Float64, 3 windows, a rank sweep with FAPM-m style factor masks (per window), in the
    self-interaction variant (which has every parameter of the plain model and ``d``):
    the same best models, best epochs and R² paths as the row trainer."""
    X, r = synth.X.astype(np.float64), synth.r.astype(np.float64)
    cfg = TrainConfig(epochs=8, learning_rate=3e-2, self_interactions=self_interactions)
    hyper, _ = sweep_grid(cfg, ranks=[2, 4], learning_rates=[3e-2])
    feats = np.ones((2, 3, 5))
    feats[0, :, 4] = 0.0
    feats[1, 1, :2] = 0.0
    hyper = hyper._replace(features=jnp.asarray(feats))
    rows = fit_windows(X, r, synth.train, synth.valid, cfg, hyper=hyper)
    mom = fit_windows(X, r, synth.train, synth.valid, cfg, hyper=hyper, method="moments")
    _same(mom.params, rows.params, 1e-7, 1e-10)
    np.testing.assert_array_equal(mom.best_epoch, rows.best_epoch)
    np.testing.assert_allclose(mom.valid_r2, rows.valid_r2, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(mom.train_r2, rows.train_r2, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(mom.linear_valid_r2, rows.linear_valid_r2, rtol=1e-9, atol=1e-12)
    assert np.all(np.asarray(mom.best_epoch) > 0)  # the interactions were learned, not only the OLS start


def test_float32_moment_training_is_close_to_rows(synth):
    cfg = TrainConfig(epochs=10, learning_rate=3e-2)
    rows = fit_windows(synth.X, synth.r, synth.train, synth.valid, cfg)
    mom = fit_windows(synth.X, synth.r, synth.train, synth.valid, cfg, method="moments")
    np.testing.assert_allclose(mom.best_valid_r2, rows.best_valid_r2, rtol=1e-4, atol=1e-5)
    _same(mom.params, rows.params, 2e-3, 2e-4)


def test_options_the_moments_cannot_train(synth):
    for cfg, pat in (
        (TrainConfig(batch_size=64), "batch_size=64"),
        (TrainConfig(loss="huber"), "loss='huber'"),
    ):
        one_line_error(
            ConfigError,
            lambda: fit_windows(synth.X, synth.r, synth.train, synth.valid, cfg, method="moments"),
            "moment trainer",
            pat,
        )
    one_line_error(
        ConfigError,
        lambda: fit_windows(synth.X, synth.r, synth.train, synth.valid, method="gradient"),
        "method must be one of",
    )
    one_line_error(
        ConfigError,
        lambda: window_moments(synth.X, synth.r, synth.train, synth.valid, budget=1000),
        "5 factors need",
        "method='rows'",
    )
    assert moment_bytes(38, 30, 60) == 4 * 2 * 30 * 742**2 + 8 * 60 * 742**2
