"""fapm_jax/rowpass.py and the one-pass epoch loop: the chunked pass equals autodiff of the
whole-panel masked loss (float64), the fused epoch loop equals evaluating after every step,
the chunk size changes nothing but rounding, and a second call compiles nothing."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import count_compiles

from fapm_jax.core.config import TrainConfig, hyper_from_config
from fapm_jax.core.engine import run_epochs
from fapm_jax.core.fit import fit_windows
from fapm_jax.core.losses import huber, masked_sse_ratio
from fapm_jax.core.model import init_params, predict
from fapm_jax.core.rowpass import row_pass
from fapm_jax.core.rows import init_state, train_epochs


def _params(n, k, d=False, seed=0):
    p = init_params(
        jax.random.key(seed),
        n,
        k,
        init_scale=0.3,
        dtype=jnp.float64,
        w=jax.random.normal(jax.random.key(seed + 1), (n,), jnp.float64) * 0.1,
        self_interactions=d,
    )
    if d:
        p = dataclasses.replace(p, d=jnp.linspace(-0.2, 0.2, n))
    return p


@pytest.mark.parametrize("chunk", [None, 7, 250, 5000])  # None: the backend's default
@pytest.mark.parametrize("loss", ["r2", "huber"])
def test_row_pass_equals_autodiff_of_the_whole_panel(synth, x64, chunk, loss):
    """Sums and gradient, chunked (7: 342 full chunks and a remainder of 6; 250; 5000 > N: one
    chunk; the default), against ``jax.grad`` of the plain masked sum over all rows. Float64: 1e-10."""
    X, r = jnp.asarray(synth.X, jnp.float64), jnp.asarray(synth.r, jnp.float64)
    tm, vm = (jnp.asarray(m[1], jnp.float64) for m in (synth.train, synth.valid))
    p = _params(X.shape[1], 3, d=(loss == "huber"))
    delta = jnp.asarray(0.05) if loss == "huber" else None

    def reference(q):
        e = r - predict(q, X)
        ell = e * e if delta is None else huber(e, delta)
        return jnp.sum(tm * ell), (jnp.sum(tm * e * e), jnp.sum(vm * e * e))

    (want, (sse_t, sse_v)), g_want = jax.value_and_grad(reference, has_aux=True)(p)
    sums, g = jax.jit(lambda q: row_pass(q, X, r, tm, vm, delta, chunk_rows=chunk))(p)
    np.testing.assert_allclose([sums.loss, sums.sse_train, sums.sse_valid], [want, sse_t, sse_v], rtol=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_want)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    only, none = row_pass(p, X, r, tm, vm, delta, chunk_rows=chunk, grad=False)
    assert none is None and float(only.sse_valid) == pytest.approx(float(sse_v), rel=1e-12)


def test_masked_out_rows_contribute_exactly_zero(synth, x64):
    """A row in neither mask whose prediction is inf changes neither the sums nor the gradient."""
    X = np.asarray(synth.X, np.float64).copy()
    tm, vm = synth.train[0].copy(), synth.valid[0].copy()
    i = int(np.flatnonzero(~tm & ~vm)[0])
    p = _params(X.shape[1], 2)
    clean = row_pass(
        p,
        jnp.asarray(X),
        jnp.asarray(synth.r, jnp.float64),
        jnp.asarray(tm, jnp.float64),
        jnp.asarray(vm, jnp.float64),
    )
    r = np.asarray(synth.r, np.float64).copy()
    r[i] = np.inf
    dirty = row_pass(
        p, jnp.asarray(X), jnp.asarray(r), jnp.asarray(tm, jnp.float64), jnp.asarray(vm, jnp.float64)
    )
    for a, b in zip(jax.tree_util.tree_leaves(dirty), jax.tree_util.tree_leaves(clean)):
        np.testing.assert_array_equal(a, b)


def test_one_pass_epochs_equal_evaluating_after_every_step(synth, x64):
    """The fused loop (each epoch's pass also evaluates the previous epoch's model, one last
    pass after the scan) against the plain loop (gradient, step, then a separate evaluation),
    for one window in float64, with an epoch budget shorter than the run: the same parameters,
    best epoch and R² paths."""
    X, r = jnp.asarray(synth.X, jnp.float64), jnp.asarray(synth.r, jnp.float64)
    tm, vm = (jnp.asarray(m[2], jnp.float64) for m in (synth.train, synth.valid))
    cfg = TrainConfig(epochs=9, learning_rate=3e-2, rank=3)
    for budget in (None, 5):
        h = hyper_from_config(cfg)._replace(epochs=None if budget is None else jnp.asarray(budget))
        state = init_state(X, r, tm, vm, h, jax.random.key(3), config=cfg)
        fused, fused_log = train_epochs(state, X, r, tm, vm, h, config=cfg, n_epochs=cfg.epochs)

        def r2_fn(q):
            rh = predict(q, X)
            return 1.0 - masked_sse_ratio(r, rh, tm), 1.0 - masked_sse_ratio(r, rh, vm)

        def loss(q, b):
            return masked_sse_ratio(r, predict(q, X), tm), jnp.sum(tm) > 0

        plain, plain_log = run_epochs(
            state,
            h,
            config=cfg,
            n_epochs=cfg.epochs,
            r2_fn=r2_fn,
            value_and_grad_fn=jax.value_and_grad(loss, has_aux=True),
        )
        for a, b in zip(jax.tree_util.tree_leaves(fused), jax.tree_util.tree_leaves(plain)):
            if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
                a, b = jax.random.key_data(a), jax.random.key_data(b)
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
        # the same R² paths, although the fused loop logs each epoch one step later
        for what in ("valid_r2", "train_r2"):
            np.testing.assert_allclose(
                _history(fused_log, what, cfg.epochs), _history(plain_log, what, cfg.epochs), rtol=1e-9
            )
        assert int(fused.epoch) == (budget or cfg.epochs) and int(fused.best_epoch) > 0
        assert np.isnan(_history(fused_log, "valid_r2", cfg.epochs)[budget or cfg.epochs :]).all()
        assert not np.isnan(_history(fused_log, "valid_r2", cfg.epochs)[: budget or cfg.epochs]).any()


def _history(log, what: str, E: int) -> np.ndarray:
    """A one-window log ``[n]`` as the R² after each epoch ``[E]`` (NaN where none)."""
    out = np.full(E, np.nan)
    e = np.asarray(log.epoch)
    out[e[e > 0] - 1] = np.asarray(getattr(log, what))[e > 0]
    return out


def test_chunk_size_changes_nothing_but_rounding(synth, x64):
    X, r = synth.X.astype(np.float64), synth.r.astype(np.float64)
    cfg = TrainConfig(epochs=6, learning_rate=3e-2, chunk_rows=10**9)  # one chunk
    whole = fit_windows(X, r, synth.train, synth.valid, cfg)
    chunked = fit_windows(X, r, synth.train, synth.valid, dataclasses.replace(cfg, chunk_rows=97))
    np.testing.assert_array_equal(whole.best_epoch, chunked.best_epoch)
    for a, b in zip(jax.tree_util.tree_leaves(whole.params), jax.tree_util.tree_leaves(chunked.params)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(whole.valid_r2, chunked.valid_r2, rtol=1e-10)


def test_second_call_compiles_nothing(synth):
    """The trainer's programs are compiled once per shape and configuration: a second
    ``fit_windows`` on other data of the same shape traces nothing."""
    cfg = TrainConfig(epochs=2, chunk_rows=1000)
    fit_windows(synth.X, synth.r, synth.train, synth.valid, cfg)
    with jax.log_compiles(True), count_compiles() as n:
        fit_windows(synth.X * 0.5, synth.r, synth.train, synth.valid, cfg)
    assert n() == 0
