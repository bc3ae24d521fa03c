"""The one epoch engine of every trainer (Figure 3, Algorithm 2, lines 7–13).

:func:`run_epochs` scans epochs of optimizer steps with one guarded step (a non-finite loss
or update is discarded and freezes the model, ``diverged``) and one best-on-validation state
(:class:`TrainState`). The row trainer (:mod:`~fapm_jax.core.rows`), the moment trainer
(:mod:`~fapm_jax.core.moments`) and the sharded trainer (:mod:`~fapm_jax.core.sharding`)
only supply the loss and the R² of a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .config import OPTIMIZERS, Hyper, TrainConfig
from .errors import ConfigError
from .model import FAPMParams, init_params, with_feature_mask, with_rank_mask


class TrainState(NamedTuple):
    """Everything one (window, setting) carries from epoch to epoch."""

    params: FAPMParams
    opt_state: optax.OptState
    best_params: FAPMParams
    best_valid_r2: Float[Array, ""]
    best_epoch: Int[Array, ""]  # 0 = the OLS linear start
    epoch: Int[Array, ""]  # epochs completed
    diverged: Bool[Array, ""]
    diverged_epoch: Int[Array, ""]  # first epoch whose update was non-finite, -1 if none
    huber_delta: Float[Array, ""]
    key: PRNGKeyArray
    valid_r2: Float[Array, " E"]  # validation R² after each epoch
    train_r2: Float[Array, " E"]  # in-sample R² after each epoch


def make_optimizer(name: str) -> optax.GradientTransformation:
    """An optax optimizer whose learning rate lives in its state (so it can be vmapped)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer {name!r}: must be one of {', '.join(OPTIMIZERS)}")
    return optax.inject_hyperparams(getattr(optax, name))(learning_rate=0.0)


def initial_params(
    key: PRNGKeyArray, n: int, w0, w, hyper: Hyper, *, config: TrainConfig, dtype
) -> tuple[FAPMParams, FAPMParams, PRNGKeyArray]:
    """The starting model (linear part ``(w0, w)``, ``V`` drawn, rank and factor masks applied),
    its linear part alone (``V = 0``), and the key left for mini-batch shuffles."""
    k_init, k_shuffle = jax.random.split(key)
    params = init_params(
        k_init,
        n,
        hyper.rank_mask.shape[0],
        w0=w0,
        w=w,
        init_scale=hyper.init_scale.astype(dtype),
        self_interactions=config.self_interactions,
        dtype=dtype,
    )
    params = with_rank_mask(params, hyper.rank_mask.astype(dtype))
    if hyper.features is not None:
        params = with_feature_mask(params, hyper.features.astype(dtype))
    linear = eqx.tree_at(lambda p: p.V, params, jnp.zeros_like(params.V))
    return params, linear, k_shuffle


def start_state(
    params: FAPMParams,
    linear: FAPMParams,
    linear_valid_r2,
    huber_delta,
    hyper: Hyper,
    key: PRNGKeyArray,
    *,
    config: TrainConfig,
) -> TrainState:
    """A window's state before its first epoch: the linear start is the best model so far."""
    dtype = params.w.dtype
    opt_state = make_optimizer(config.optimizer).init(params)
    opt_state.hyperparams["learning_rate"] = hyper.learning_rate.astype(dtype)
    E = config.epochs
    return TrainState(
        params=params,
        opt_state=opt_state,
        best_params=linear,
        best_valid_r2=jnp.asarray(linear_valid_r2, dtype),
        best_epoch=jnp.asarray(0, jnp.int32),
        epoch=jnp.asarray(0, jnp.int32),
        diverged=jnp.asarray(False),
        diverged_epoch=jnp.asarray(-1, jnp.int32),
        huber_delta=jnp.asarray(huber_delta, dtype),
        key=key,
        valid_r2=jnp.full((E,), jnp.nan, dtype),
        train_r2=jnp.full((E,), jnp.nan, dtype),
    )


def _all_finite(tree) -> Bool[Array, ""]:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def run_epochs(
    state: TrainState,
    hyper: Hyper,
    *,
    config: TrainConfig,
    n_epochs: int,
    loss_fn: Callable | None = None,
    r2_fn: Callable,
    batches_fn: Callable | None = None,
    n_steps: int = 1,
    value_and_grad_fn: Callable | None = None,
    r2_in_step: bool = False,
) -> TrainState:
    """The epoch loop of every FAPM trainer (rows: :func:`train_epochs`; moments:
    :mod:`~fapm_jax.core.moments`). ``loss_fn(params, batch) -> (loss, has_rows)``;
    ``r2_fn(params) -> (train_r2, valid_r2)``; ``batches_fn(key)``: the ``n_steps`` batches
    an epoch scans over (``None``: one step with ``batch=None``).

    Each step: gradient, optax update (linear part scaled by ``config.linear_lr_scale``),
    rank and factor masks re-applied; a non-finite loss or update is discarded and freezes the
    window (``diverged``). Each epoch: train and validation R², best model kept; a setting
    whose ``hyper.epochs`` budget is spent keeps its state.

    ``value_and_grad_fn(params, batch) -> ((loss, aux), grads)`` replaces ``loss_fn`` where
    the gradient is accumulated by hand (:func:`~fapm_jax.core.rowpass.row_pass`). With
    ``r2_in_step`` (one full-batch step per epoch), ``aux = (has_rows, train_r2, valid_r2)``
    of the parameters the gradient is taken at: epoch ``e``'s pass evaluates the model of epoch
    ``e − 1``, so each epoch reads the data once, and one forward pass (``r2_fn``) after the
    last epoch evaluates the last model — the same evaluations, in the same order, as
    evaluating after each step.
    """
    tx = make_optimizer(config.optimizer)
    dtype = state.params.w.dtype
    rank_mask = hyper.rank_mask.astype(dtype)
    features = None if hyper.features is None else hyper.features.astype(dtype)
    grad_fn = (
        value_and_grad_fn if value_and_grad_fn is not None else jax.value_and_grad(loss_fn, has_aux=True)
    )
    if r2_in_step and (batches_fn is not None or n_steps != 1):
        raise ConfigError("run_epochs: r2_in_step needs one full-batch step per epoch")

    def step(carry, batch):
        params, opt_state, ok = carry
        (loss, has_rows), grads = grad_fn(params, batch)
        return apply(params, opt_state, ok, loss, has_rows, grads), None

    def apply(params, opt_state, ok, loss, has_rows, grads):
        updates, new_opt = tx.update(grads, opt_state, params)
        if config.linear_lr_scale != 1.0:
            c = jnp.asarray(config.linear_lr_scale, dtype)
            updates = eqx.tree_at(lambda u: (u.w0, u.w), updates, (updates.w0 * c, updates.w * c))
        new_params = with_rank_mask(optax.apply_updates(params, updates), rank_mask)
        if features is not None:
            new_params = with_feature_mask(new_params, features)
        finite = jnp.isfinite(loss) & _all_finite(new_params)
        take = ok & has_rows & finite
        params = jax.tree_util.tree_map(lambda a, b: jnp.where(take, a, b), new_params, params)
        opt_state = jax.tree_util.tree_map(lambda a, b: jnp.where(take, a, b), new_opt, opt_state)
        return params, opt_state, ok & (finite | ~has_rows)

    def record(state: TrainState, train_r2, valid_r2, ok) -> TrainState:
        """Evaluate the model of epoch ``state.epoch``: its R² and the best model so far."""
        e = state.epoch
        better = ok & jnp.isfinite(valid_r2) & (valid_r2 > state.best_valid_r2)
        idx = jnp.clip(e - 1, 0, state.valid_r2.shape[0] - 1)
        return state._replace(
            best_params=jax.tree_util.tree_map(
                lambda a, b: jnp.where(better, a, b), state.params, state.best_params
            ),
            best_valid_r2=jnp.where(better, valid_r2, state.best_valid_r2),
            best_epoch=jnp.where(better, e, state.best_epoch),
            valid_r2=state.valid_r2.at[idx].set(jnp.where(ok, valid_r2, jnp.nan)),
            train_r2=state.train_r2.at[idx].set(jnp.where(ok, train_r2, jnp.nan)),
        )

    def epoch(state: TrainState, _):
        old = state
        key, k_epoch = jax.random.split(state.key)
        batches = None if batches_fn is None else batches_fn(k_epoch)
        (params, opt_state, ok), _ = jax.lax.scan(
            step, (state.params, state.opt_state, ~state.diverged), batches, length=n_steps
        )
        e = state.epoch + 1
        newly_diverged = ~ok & ~state.diverged
        state = state._replace(
            params=params,
            opt_state=opt_state,
            epoch=e,
            diverged=state.diverged | ~ok,
            diverged_epoch=jnp.where(newly_diverged, e, state.diverged_epoch),
            key=key,
        )
        state = record(state, *r2_fn(params), ok)
        if hyper.epochs is not None:  # this setting's epoch budget is spent: keep its state
            active = old.epoch < hyper.epochs
            state = jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), state, old)
        return state, None

    if not r2_in_step:
        state, _ = jax.lax.scan(epoch, state, None, length=n_epochs)
        return state

    def pick(flag, a, b):
        return jax.tree_util.tree_map(lambda x, y: jnp.where(flag, x, y), a, b)

    def epoch_fused(carry, _):
        state, pending = carry  # pending: state.params is an unevaluated epoch's model
        (loss, (has_rows, train_r2, valid_r2)), grads = grad_fn(state.params, None)
        state = jax.lax.cond(
            pending, lambda: record(state, train_r2, valid_r2, ~state.diverged), lambda: state
        )
        key, _ = jax.random.split(state.key)
        params, opt_state, ok = apply(state.params, state.opt_state, ~state.diverged, loss, has_rows, grads)
        e = state.epoch + 1
        new = state._replace(
            params=params,
            opt_state=opt_state,
            epoch=e,
            diverged=state.diverged | ~ok,
            diverged_epoch=jnp.where(~ok & ~state.diverged, e, state.diverged_epoch),
            key=key,
        )
        active = jnp.asarray(True) if hyper.epochs is None else state.epoch < hyper.epochs
        return (pick(active, new, state), active), None

    (state, pending), _ = jax.lax.scan(epoch_fused, (state, jnp.asarray(False)), None, length=n_epochs)
    return jax.lax.cond(pending, lambda: record(state, *r2_fn(state.params), ~state.diverged), lambda: state)


def window_keys(seed: Int[Array, ""], n_windows: int) -> PRNGKeyArray:
    """One key per window derived from a setting's seed (the same in the vmapped and looped
    trainers, so that both draw the same ``V``)."""
    return jax.random.split(jax.random.key(seed), n_windows)


def all_window_keys(hyper: Hyper, n_windows: int) -> PRNGKeyArray:
    """The keys of every (setting, window), ``[S, W]``: :func:`window_keys` of each setting's seed."""
    return jax.vmap(lambda seed: window_keys(seed, n_windows))(hyper.seed)
