"""The row trainer: one window trained on the panel's rows, batched over windows and settings.

Per window the linear part starts from OLS on the window's training rows and ``V`` from a
normal draw; an optax optimizer minimises the ``1 − R²`` loss; after every epoch the
validation R² is computed and the best model is kept (:func:`~fapm_jax.core.engine.run_epochs`).
The linear start itself (``V = 0``) is the first candidate, so the chosen model is never worse
on validation than OLS. Everything is written for **one window and one setting** and batched with
``vmap``: windows differ only by their row masks over one shared panel ``X``."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .config import Hyper, TrainConfig
from .engine import (
    EpochLog,
    TrainState,
    all_window_keys,
    epoch_step,
    finish,
    initial_params,
    over_settings,
    run_epochs,
    scan_epochs,
    start_state,
)
from .errors import ConfigError
from .linear import Correlations, fit_ols, ols_from_correlations
from .losses import masked_huber_ratio, masked_sse_ratio
from .masked import masked_quantile, shuffled_batches
from .model import predict
from .rowpass import PassSums, masked_sum, row_pass


def _window_loss(params, X, r, mask, huber_delta, loss: str, precision: str = "highest"):
    r_hat = predict(params, X, precision)
    if loss == "huber":
        return masked_huber_ratio(r, r_hat, mask, huber_delta)
    return masked_sse_ratio(r, r_hat, mask)


def init_state(
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    train_mask: Float[Array, " N"],
    valid_mask: Float[Array, " N"],
    hyper: Hyper,
    key: PRNGKeyArray,
    *,
    config: TrainConfig,
    start: Correlations | None = None,
    axis_name: str | None = None,
) -> TrainState:
    """Start one window: OLS linear part, ``V ~ N(0, init_scale²)``, the OLS model as best.

    ``start``: the window's OLS normal equations from moments
    (:func:`~fapm_jax.core.moments.window_correlations`, what :func:`fit_windows` passes); ``None``
    solves the OLS on the rows (:func:`~fapm_jax.core.linear.fit_ols`). ``axis_name``: the rows are
    one shard of the panel along that mesh axis (:mod:`~fapm_jax.core.sharding`; needs ``start``)."""
    dtype = X.dtype
    if start is None and axis_name is not None:
        raise ConfigError("init_state: a row-sharded window needs its OLS start from moments (start=...)")
    f = None if hyper.features is None else hyper.features.astype(dtype)
    w0, w = (
        fit_ols(X, r, train_mask, columns=f) if start is None else ols_from_correlations(*start, columns=f)
    )
    params, linear, k_shuffle = initial_params(key, X.shape[1], w0, w, hyper, config=config, dtype=dtype)
    sums, _ = row_pass(
        linear,
        X,
        r,
        train_mask,
        valid_mask,
        chunk_rows=config.chunk_rows,
        grad=False,
        axis_name=axis_name,
        precision=config.precision,
    )
    valid_r2 = 1.0 - sums.sse_valid / _total(masked_sum(valid_mask, r * r), axis_name)
    if config.huber_delta is not None:
        delta = jnp.asarray(config.huber_delta, dtype)
    elif config.loss == "huber":
        resid, mask = jnp.abs(r - predict(linear, X, config.precision)), train_mask
        if axis_name is not None:  # the quantile of all shards' rows: once per window, N floats
            resid, mask = (jax.lax.all_gather(a, axis_name, tiled=True) for a in (resid, mask))
        delta = masked_quantile(resid, mask, config.huber_quantile)
    else:
        delta = jnp.asarray(jnp.nan, dtype)  # not used by the R² loss
    return start_state(params, linear, valid_r2, delta, hyper, k_shuffle, config=config)


def _total(x, axis_name: str | None):
    """``x`` summed over the devices of mesh axis ``axis_name`` (``None``: ``x``)."""
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def epoch_fns(
    state: TrainState,
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    train_mask: Float[Array, " N"],
    valid_mask: Float[Array, " N"],
    *,
    config: TrainConfig,
    n_batches: int = 1,
    axis_name: str | None = None,
) -> dict:
    """What one window's epochs need from its rows (the keywords of
    :func:`~fapm_jax.core.engine.epoch_step`).

    Full batch (``config.batch_size`` ``None``): one chunked pass per epoch
    (:func:`~fapm_jax.core.rowpass.row_pass`) gives the loss, its gradient and both R² — a
    fused epoch. Mini-batches: ``n_batches`` steps over shuffled training rows, then train and
    validation R² of the new model. ``axis_name``: the rows are one shard of the panel along that
    mesh axis (:mod:`~fapm_jax.core.sharding`); each epoch's sums are summed over it, so every
    shard takes the same step (full batch only)."""
    dtype = X.dtype
    if axis_name is not None and config.batch_size is not None:
        raise ConfigError("train_epochs: mini-batches (batch_size) need all rows on each device")
    if config.batch_size is None:
        delta = state.huber_delta if config.loss == "huber" else None
        den_t = _total(masked_sum(train_mask, r * r), axis_name)
        den_v = _total(masked_sum(valid_mask, r * r), axis_name)

        def r2s(s: PassSums):
            return 1.0 - s.sse_train / den_t, 1.0 - s.sse_valid / den_v

        def pass_sums(params, grad):
            return row_pass(
                params,
                X,
                r,
                train_mask,
                valid_mask,
                delta,
                chunk_rows=config.chunk_rows,
                grad=grad,
                axis_name=axis_name,
                precision=config.precision,
            )

        def value_and_grad_fn(params, batch):
            s, g = pass_sums(params, True)
            g = jax.tree_util.tree_map(lambda a: a / den_t, g)
            return (s.loss / den_t, (den_t > 0, *r2s(s))), g

        return dict(
            value_and_grad_fn=value_and_grad_fn, r2_fn=lambda p: r2s(pass_sums(p, False)[0]), fused=True
        )

    def loss_fn(params, batch):
        idx, slot_ok = batch
        mb = (slot_ok & (train_mask[idx] > 0)).astype(dtype)
        loss = _window_loss(params, X[idx], r[idx], mb, state.huber_delta, config.loss, config.precision)
        return loss, jnp.sum(mb) > 0

    def r2_fn(params):
        r_hat = predict(params, X, config.precision)
        return 1.0 - masked_sse_ratio(r, r_hat, train_mask), 1.0 - masked_sse_ratio(r, r_hat, valid_mask)

    return dict(
        value_and_grad_fn=jax.value_and_grad(loss_fn, has_aux=True),
        r2_fn=r2_fn,
        batches_fn=lambda k: shuffled_batches(k, train_mask, config.batch_size, n_batches),
        n_steps=n_batches,
    )


def train_epochs(
    state: TrainState,
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    train_mask: Float[Array, " N"],
    valid_mask: Float[Array, " N"],
    hyper: Hyper,
    *,
    config: TrainConfig,
    n_epochs: int,
    n_batches: int = 1,
) -> tuple[TrainState, EpochLog]:
    """``n_epochs`` epochs of one window (Algorithm 2, lines 7–13), the last model evaluated:
    the per-window reference of the batched trainer. Returns the state and the log
    ``[n_epochs + 1]`` (:class:`~fapm_jax.core.engine.EpochLog`)."""
    fns = epoch_fns(state, X, r, train_mask, valid_mask, config=config, n_batches=n_batches)
    return run_epochs(state, hyper, n_epochs=n_epochs, config=config, **fns)


def init_block(
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    train_masks: Bool[Array, "W N"],
    valid_masks: Bool[Array, "W N"],
    hyper: Hyper,
    starts: Correlations,
    keys: PRNGKeyArray,
    *,
    config: TrainConfig,
    axis_name: str | None = None,
) -> TrainState:
    """:func:`init_state` of ``S`` settings × ``W`` windows (``keys`` ``[S, W]``), batched with
    ``vmap``: the whole problem on one device, or one device's block of it under
    :mod:`~fapm_jax.core.sharding` (``axis_name``: the mesh axis the rows are split along)."""

    def one_setting(h, ks):
        return jax.vmap(
            lambda tm, vm, k, f, st: init_state(
                X, r, tm, vm, h._replace(features=f), k, config=config, start=st, axis_name=axis_name
            )
        )(train_masks, valid_masks, ks, h.features, starts)

    return over_settings(one_setting, hyper, keys, batch=config.settings_batch)


def _block(fn, state, train_masks, valid_masks, hyper, batch=None):
    """``fn(state, train_mask, valid_mask, hyper)`` of one (setting, window), over settings
    (outer: :func:`~fapm_jax.core.engine.over_settings`, ``batch`` at a time) and windows
    (inner, vmapped; ``hyper.features`` is per window)."""

    def one_setting(st, h):
        return jax.vmap(lambda s, tm, vm, f: fn(s, tm, vm, h._replace(features=f)))(
            st, train_masks, valid_masks, h.features
        )

    return over_settings(one_setting, state, hyper, batch=batch)


def epochs_block(
    state: TrainState,
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    train_masks: Bool[Array, "W N"],
    valid_masks: Bool[Array, "W N"],
    hyper: Hyper,
    start: Int[Array, ""],
    limit: Int[Array, ""],
    *,
    config: TrainConfig,
    n_epochs: int,
    n_batches: int = 1,
    axis_name: str | None = None,
) -> tuple[TrainState, EpochLog]:
    """A chunk of ``n_epochs`` epochs (epochs ``start …``; those from ``limit`` on are skipped)
    of ``S`` settings × ``W`` windows (state ``[S, W]``, log ``[S, W, n_epochs]``), as
    :func:`init_block`."""

    def one(s, tm, vm, h):
        fns = epoch_fns(s, X, r, tm, vm, config=config, n_batches=n_batches, axis_name=axis_name)
        return epoch_step(s, h, config=config, **fns)

    return scan_epochs(
        lambda st: _block(one, st, train_masks, valid_masks, hyper, config.settings_batch),
        state,
        n_epochs,
        start,
        limit,
    )


def finish_block(state, X, r, train_masks, valid_masks, hyper, *, config, axis_name=None):
    """Evaluate every model a fused pass left pending (:func:`~fapm_jax.core.engine.finish`)."""

    def one(s, tm, vm, h):
        fns = epoch_fns(s, X, r, tm, vm, config=config, axis_name=axis_name)
        return finish(s, fns["r2_fn"])

    return _block(one, state, train_masks, valid_masks, hyper, config.settings_batch)


@eqx.filter_jit
def init_windows(X, r, train_masks, valid_masks, hyper: Hyper, starts: Correlations, *, config: TrainConfig):
    """The start of every (setting, window) on one device, in one compiled program: the state
    :func:`train_windows` advances (what :func:`~fapm_jax.core.fit.fit_windows` runs; ``starts``
    from :func:`~fapm_jax.core.moments.window_correlations`)."""
    keys = all_window_keys(hyper, train_masks.shape[0])
    return init_block(X, r, train_masks, valid_masks, hyper, starts, keys, config=config)


@eqx.filter_jit
def train_windows(
    state,
    X,
    r,
    train_masks,
    valid_masks,
    hyper: Hyper,
    start,
    limit,
    *,
    config: TrainConfig,
    n_epochs: int,
    n_batches: int = 1,
):
    """A chunk of ``n_epochs`` epochs of every (setting, window) in one compiled program; a
    second call with arrays of the same shapes (any ``start``/``limit``) compiles nothing."""
    return epochs_block(
        state,
        X,
        r,
        train_masks,
        valid_masks,
        hyper,
        start,
        limit,
        config=config,
        n_epochs=n_epochs,
        n_batches=n_batches,
    )


@eqx.filter_jit
def finish_windows(state, X, r, train_masks, valid_masks, hyper: Hyper, *, config: TrainConfig):
    """:func:`finish_block` on one device."""
    return finish_block(state, X, r, train_masks, valid_masks, hyper, config=config)
