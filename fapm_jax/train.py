"""Validated training of FAPM over the rolling windows (Figure 3, Algorithm 2).

Per window the linear part starts from OLS on the window's training rows and ``V`` from a
normal draw; an optax optimizer minimises the ``1 − R²`` loss on the training rows; after every
epoch the validation R² is computed and the best model is kept. The linear start itself (``V =
0``) is the first candidate, so the chosen model is never worse on validation than OLS.

Everything is written for **one window and one hyperparameter setting** and batched with
``vmap``: windows differ only by their row masks over one shared panel ``X`` (no per-window
copies), and sweep points differ by a :class:`Hyper` record. The epoch loop is a
``lax.scan``; gradient and optimizer update live inside it, so one compiled program trains all
``S × W`` models.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .checkpoint import fingerprint, load_state, save_state
from .linear import Correlations, fit_ols, ols_from_correlations
from .losses import masked_huber_ratio, masked_sse_ratio
from .masked import masked_quantile, shuffled_batches
from .model import PRECISIONS, FAPMParams, init_params, predict, with_feature_mask, with_rank_mask
from .rowpass import PassSums, chunk_layout, masked_sum, row_pass

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "lamb")
LOSSES = ("r2", "huber")
#: How :func:`fit_windows` trains: on the panel's rows, or from per-window moments
#: (:mod:`~fapm_jax.moments`: full-batch R² loss, small factor sets; the same models), or
#: ``"auto"``: moments where they apply and fit memory.
METHODS = ("rows", "moments", "auto")


class ConfigError(ValueError):
    """An invalid training option; the message is one line naming the option."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training options (Algorithm 2). The paper does not publish its rank, learning rate or
    epoch count; the defaults are ours, chosen on the simulated panel and documented in the
    README.

    Attributes:
        rank: ``k``, the number of latent dimensions of ``V``.
        learning_rate: optimizer step size.
        epochs: passes over each window's training rows.
        batch_size: rows per step; ``None`` is full batch (one step per epoch).
        init_scale: standard deviation of the normal draw of ``V``.
        optimizer: an optax optimizer name, one of :data:`OPTIMIZERS`.
        loss: ``"r2"`` (the paper's ``1 − R²_is``) or ``"huber"`` (GKX's "+H").
        huber_quantile: with ``loss="huber"`` and no ``huber_delta``, the threshold is this
            quantile of the OLS start's absolute training residuals (GKX use 99.9%).
        huber_delta: a fixed Huber threshold, overriding ``huber_quantile``.
        seed: the root of every random draw (``V`` and mini-batch order).
        linear_lr_scale: multiplier of the learning rate of the linear part ``(w0, w)``.
            The linear part starts at its OLS optimum and its coefficients are an order of
            magnitude smaller than the latent vectors ``v_i``; Adam moves every parameter by
            about ``learning_rate`` per step whatever its scale, so a full-size step knocks
            the OLS start off its optimum. 1.0 treats all parameters alike.
        self_interactions: add ``x_i²`` terms with free weights ``d`` (starting at 0) to the
            model (:class:`~fapm_jax.model.FAPMParams`); the paper's FAPM has none.
        chunk_rows: full-batch training reads the panel in chunks of this many rows
            (:mod:`~fapm_jax.rowpass`), which bounds its temporaries and sets its speed;
            ``None``: by backend (:func:`~fapm_jax.rowpass.default_chunk_rows`: 8192 rows on a
            CPU, 131072 on an accelerator). The fitted models do not depend on it beyond float
            rounding.
        precision: arithmetic of the training products (:data:`~fapm_jax.model.PRECISIONS`):
            ``"highest"`` (default) the panel's own precision — float32 products, not the
            TF32 a GPU would otherwise use; ``"tf32"`` a GPU's tensor cores (on a CPU the same
            roundings, emulated, to measure their effect); ``"bfloat16"`` bfloat16 operands,
            accumulated in the panel's precision. The row trainer only; predictions after
            training are computed at ``"highest"``.
    """

    rank: int = 4
    learning_rate: float = 1e-3
    epochs: int = 100
    batch_size: int | None = None
    init_scale: float = 0.01
    optimizer: str = "adam"
    loss: str = "r2"
    huber_quantile: float = 0.999
    huber_delta: float | None = None
    seed: int = 0
    linear_lr_scale: float = 0.1
    self_interactions: bool = False
    chunk_rows: int | None = None
    precision: str = "highest"

    def __post_init__(self):
        def bad(name, why):
            raise ConfigError(f"TrainConfig.{name}={getattr(self, name)!r}: {why}")

        if not isinstance(self.rank, int) or self.rank < 1:
            bad("rank", "must be a positive integer")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            bad("learning_rate", "must be a positive finite number")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            bad("epochs", "must be a positive integer")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            bad("batch_size", "must be a positive integer or None (full batch)")
        if not (self.init_scale >= 0 and math.isfinite(self.init_scale)):
            bad("init_scale", "must be a non-negative finite number")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        if self.loss not in LOSSES:
            bad("loss", f"must be one of {', '.join(LOSSES)}")
        if not 0.5 <= self.huber_quantile < 1:
            bad("huber_quantile", "must lie in [0.5, 1)")
        if self.huber_delta is not None and not self.huber_delta > 0:
            bad("huber_delta", "must be positive")
        if not (self.linear_lr_scale >= 0 and math.isfinite(self.linear_lr_scale)):
            bad("linear_lr_scale", "must be a non-negative finite number")
        if self.chunk_rows is not None and (not isinstance(self.chunk_rows, int) or self.chunk_rows < 1):
            bad("chunk_rows", "must be a positive integer or None (by backend)")
        if self.precision not in PRECISIONS:
            bad("precision", f"must be one of {', '.join(PRECISIONS)}")


class Hyper(NamedTuple):
    """One hyperparameter setting as arrays, so that settings can be ``vmap``-ed.

    ``rank_mask`` switches latent columns on (1) or off (0); a sweep over ranks pads ``V`` to
    the largest rank. ``features`` (``None``: every factor) switches factors on or off per
    window, ``[W, n]`` for all windows (one window's trainer sees its row ``[n]``): the
    FAPM-m subsets (:mod:`~fapm_jax.fapm_m`), chosen inside each window. ``epochs``
    (``None``: ``config.epochs``) stops a setting after that many epochs, so a sweep over
    epoch budgets runs in one program of ``max(epochs)`` epochs; a stopped setting keeps its
    state (its best-on-validation model among its own epochs).
    """

    learning_rate: Float[Array, ""]
    init_scale: Float[Array, ""]
    rank_mask: Float[Array, " k"]
    seed: Int[Array, ""]
    features: Float[Array, "W n"] | None = None
    epochs: Int[Array, ""] | None = None


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


class TrainResult(NamedTuple):
    """The outcome of :func:`fit_windows`: every array has leading axes ``[S, W]``."""

    params: FAPMParams  # the best-on-validation model
    best_valid_r2: Float[Array, "S W"]
    best_epoch: Int[Array, "S W"]
    linear_valid_r2: Float[Array, "S W"]
    diverged: Bool[Array, "S W"]
    diverged_epoch: Int[Array, "S W"]
    valid_r2: Float[Array, "S W E"]
    train_r2: Float[Array, "S W E"]
    hyper: Hyper

    def select(self) -> tuple[FAPMParams, np.ndarray]:
        """Per window, the setting with the best validation R²: ``(params [W], index [W])``."""
        idx = jnp.argmax(self.best_valid_r2, axis=0)
        W = idx.shape[0]
        chosen = jax.tree_util.tree_map(lambda a: a[idx, jnp.arange(W)], self.params)
        return chosen, np.asarray(idx)


# ----------------------------------------------------------------------------- hyperparameters


def hyper_from_config(config: TrainConfig, max_rank: int | None = None) -> Hyper:
    """The single setting described by ``config`` (``V`` padded to ``max_rank``)."""
    k = max_rank or config.rank
    return Hyper(
        learning_rate=jnp.asarray(config.learning_rate, jnp.float32),
        init_scale=jnp.asarray(config.init_scale, jnp.float32),
        rank_mask=(jnp.arange(k) < config.rank).astype(jnp.float32),
        seed=jnp.asarray(config.seed, jnp.int32),
    )


def sweep_grid(
    config: TrainConfig,
    *,
    ranks: Sequence[int] | None = None,
    learning_rates: Sequence[float] | None = None,
    init_scales: Sequence[float] | None = None,
    seeds: Sequence[int] | None = None,
    epochs: Sequence[int] | None = None,
) -> tuple[Hyper, list[dict]]:
    """The Cartesian grid of settings as a batched :class:`Hyper` ``[S]`` and its labels.

    Unspecified axes take the value in ``config``. With ``epochs``, train with
    ``config.epochs = max(epochs)``: each setting stops after its own budget (``Hyper.epochs``).
    """
    ranks = list(ranks or [config.rank])
    lrs = list(learning_rates or [config.learning_rate])
    scales = list(init_scales or [config.init_scale])
    seeds = list(seeds if seeds is not None else [config.seed])
    budgets = list(epochs or [config.epochs])
    for name, vals in (("ranks", ranks), ("learning_rates", lrs), ("init_scales", scales), ("epochs", budgets)):
        if any(not (v > 0 or (name == "init_scales" and v == 0)) for v in vals):
            raise ConfigError(f"sweep_grid: {name} must be positive, got {vals}")
    if any(int(e) != e for e in budgets + ranks):
        raise ConfigError(f"sweep_grid: ranks and epochs must be integers, got {ranks} and {budgets}")
    k_max = max(ranks)
    points = [
        dict(rank=int(k), learning_rate=float(lr), init_scale=float(s), seed=int(sd), epochs=int(e))
        for k, lr, s, sd, e in itertools.product(ranks, lrs, scales, seeds, budgets)
    ]
    hypers = [
        hyper_from_config(dataclasses.replace(config, **{k: v for k, v in p.items() if k != "epochs"}), k_max)
        ._replace(epochs=jnp.asarray(p["epochs"], jnp.int32) if epochs else None)
        for p in points
    ]
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *hypers), points


def make_optimizer(name: str) -> optax.GradientTransformation:
    """An optax optimizer whose learning rate lives in its state (so it can be vmapped)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer {name!r}: must be one of {', '.join(OPTIMIZERS)}")
    return optax.inject_hyperparams(getattr(optax, name))(learning_rate=0.0)


# ----------------------------------------------------------------------------- one window


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
    (:func:`~fapm_jax.moments.window_correlations`, what :func:`fit_windows` passes); ``None``
    solves the OLS on the rows (:func:`~fapm_jax.linear.fit_ols`). ``axis_name``: the rows are
    one shard of the panel along that mesh axis (:mod:`~fapm_jax.sharding`; needs ``start``)."""
    dtype = X.dtype
    if start is None and axis_name is not None:
        raise ConfigError("init_state: a row-sharded window needs its OLS start from moments (start=...)")
    f = None if hyper.features is None else hyper.features.astype(dtype)
    w0, w = fit_ols(X, r, train_mask, columns=f) if start is None else ols_from_correlations(*start, columns=f)
    params, linear, k_shuffle = initial_params(key, X.shape[1], w0, w, hyper, config=config, dtype=dtype)
    sums, _ = row_pass(linear, X, r, train_mask, valid_mask, chunk_rows=config.chunk_rows, grad=False,
                       axis_name=axis_name, precision=config.precision)
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


def initial_params(
    key: PRNGKeyArray, n: int, w0, w, hyper: Hyper, *, config: TrainConfig, dtype
) -> tuple[FAPMParams, FAPMParams, PRNGKeyArray]:
    """The starting model (linear part ``(w0, w)``, ``V`` drawn, rank and factor masks applied),
    its linear part alone (``V = 0``), and the key left for mini-batch shuffles."""
    k_init, k_shuffle = jax.random.split(key)
    params = init_params(
        k_init, n, hyper.rank_mask.shape[0], w0=w0, w=w, init_scale=hyper.init_scale.astype(dtype),
        self_interactions=config.self_interactions, dtype=dtype,
    )
    params = with_rank_mask(params, hyper.rank_mask.astype(dtype))
    if hyper.features is not None:
        params = with_feature_mask(params, hyper.features.astype(dtype))
    linear = eqx.tree_at(lambda p: p.V, params, jnp.zeros_like(params.V))
    return params, linear, k_shuffle


def start_state(
    params: FAPMParams, linear: FAPMParams, linear_valid_r2, huber_delta, hyper: Hyper, key: PRNGKeyArray,
    *, config: TrainConfig,
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


def _total(x, axis_name: str | None):
    """``x`` summed over the devices of mesh axis ``axis_name`` (``None``: ``x``)."""
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def _all_finite(tree) -> Bool[Array, ""]:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


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
    axis_name: str | None = None,
) -> TrainState:
    """Run ``n_epochs`` epochs of one window in a ``lax.scan`` (Algorithm 2, lines 7–13).

    Each epoch takes ``n_batches`` optimizer steps (one, on all training rows, when
    ``config.batch_size`` is ``None``), then evaluates train and validation R² and keeps the
    best model. A step whose loss or update is non-finite is discarded and the window is
    frozen at its last finite model and flagged ``diverged``.

    ``axis_name``: the rows are one shard of the panel along that mesh axis
    (:mod:`~fapm_jax.sharding`); each epoch's sums are summed over it, so every shard takes
    the same step (full batch only).
    """
    dtype = X.dtype
    if axis_name is not None and config.batch_size is not None:
        raise ConfigError("train_epochs: mini-batches (batch_size) need all rows on each device")

    def loss_fn(params, batch):
        if batch is None:
            Xb, rb, mb = X, r, train_mask
        else:
            idx, slot_ok = batch
            Xb, rb = X[idx], r[idx]
            mb = (slot_ok & (train_mask[idx] > 0)).astype(dtype)
        return _window_loss(params, Xb, rb, mb, state.huber_delta, config.loss, config.precision), jnp.sum(mb) > 0

    def r2_fn(params):
        r_hat = predict(params, X, config.precision)
        return 1.0 - masked_sse_ratio(r, r_hat, train_mask), 1.0 - masked_sse_ratio(r, r_hat, valid_mask)

    if config.batch_size is None:
        # One chunked pass per epoch gives the loss, its gradient and both R² (rowpass.py).
        delta = state.huber_delta if config.loss == "huber" else None
        den_t = _total(masked_sum(train_mask, r * r), axis_name)
        den_v = _total(masked_sum(valid_mask, r * r), axis_name)

        def r2s(s: PassSums):
            return 1.0 - s.sse_train / den_t, 1.0 - s.sse_valid / den_v

        def value_and_grad_fn(params, batch):
            s, g = row_pass(params, X, r, train_mask, valid_mask, delta, chunk_rows=config.chunk_rows,
                            axis_name=axis_name, precision=config.precision)
            g = jax.tree_util.tree_map(lambda a: a / den_t, g)
            return (s.loss / den_t, (den_t > 0, *r2s(s))), g

        def pass_r2(params):
            return r2s(row_pass(params, X, r, train_mask, valid_mask, delta, chunk_rows=config.chunk_rows,
                                grad=False, axis_name=axis_name, precision=config.precision)[0])

        return run_epochs(state, hyper, config=config, n_epochs=n_epochs, value_and_grad_fn=value_and_grad_fn,
                          r2_fn=pass_r2, r2_in_step=True)
    return run_epochs(
        state, hyper, config=config, n_epochs=n_epochs, loss_fn=loss_fn, r2_fn=r2_fn, n_steps=n_batches,
        batches_fn=lambda k: shuffled_batches(k, train_mask, config.batch_size, n_batches),
    )


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
    :mod:`~fapm_jax.moments`). ``loss_fn(params, batch) -> (loss, has_rows)``;
    ``r2_fn(params) -> (train_r2, valid_r2)``; ``batches_fn(key)``: the ``n_steps`` batches
    an epoch scans over (``None``: one step with ``batch=None``).

    Each step: gradient, optax update (linear part scaled by ``config.linear_lr_scale``),
    rank and factor masks re-applied; a non-finite loss or update is discarded and freezes the
    window (``diverged``). Each epoch: train and validation R², best model kept; a setting
    whose ``hyper.epochs`` budget is spent keeps its state.

    ``value_and_grad_fn(params, batch) -> ((loss, aux), grads)`` replaces ``loss_fn`` where
    the gradient is accumulated by hand (:func:`~fapm_jax.rowpass.row_pass`). With
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
    grad_fn = value_and_grad_fn if value_and_grad_fn is not None else jax.value_and_grad(loss_fn, has_aux=True)
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
            best_params=jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), state.params, state.best_params),
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
        state = jax.lax.cond(pending, lambda: record(state, train_r2, valid_r2, ~state.diverged), lambda: state)
        key, _ = jax.random.split(state.key)
        params, opt_state, ok = apply(state.params, state.opt_state, ~state.diverged, loss, has_rows, grads)
        e = state.epoch + 1
        new = state._replace(
            params=params, opt_state=opt_state, epoch=e, diverged=state.diverged | ~ok,
            diverged_epoch=jnp.where(~ok & ~state.diverged, e, state.diverged_epoch), key=key,
        )
        active = jnp.asarray(True) if hyper.epochs is None else state.epoch < hyper.epochs
        return (pick(active, new, state), active), None

    (state, pending), _ = jax.lax.scan(epoch_fused, (state, jnp.asarray(False)), None, length=n_epochs)
    return jax.lax.cond(pending, lambda: record(state, *r2_fn(state.params), ~state.diverged), lambda: state)


# ----------------------------------------------------------------------------- all windows


def window_keys(seed: Int[Array, ""], n_windows: int) -> PRNGKeyArray:
    """One key per window derived from a setting's seed (the same in the vmapped and looped
    trainers, so that both draw the same ``V``)."""
    return jax.random.split(jax.random.key(seed), n_windows)


def n_batches_for(config: TrainConfig, train_masks: np.ndarray) -> int:
    """Mini-batches per epoch: enough for the largest training set among the windows."""
    if config.batch_size is None:
        return 1
    return max(1, math.ceil(int(np.asarray(train_masks).sum(axis=-1).max()) / config.batch_size))


def all_window_keys(hyper: Hyper, n_windows: int) -> PRNGKeyArray:
    """The keys of every (setting, window), ``[S, W]``: :func:`window_keys` of each setting's seed."""
    return jax.vmap(lambda seed: window_keys(seed, n_windows))(hyper.seed)


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
    :mod:`~fapm_jax.sharding` (``axis_name``: the mesh axis the rows are split along)."""

    def one_setting(h, ks):
        return jax.vmap(
            lambda tm, vm, k, f, st: init_state(
                X, r, tm, vm, h._replace(features=f), k, config=config, start=st, axis_name=axis_name
            )
        )(train_masks, valid_masks, ks, h.features, starts)

    return jax.vmap(one_setting)(hyper, keys)


def epochs_block(
    state: TrainState,
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    train_masks: Bool[Array, "W N"],
    valid_masks: Bool[Array, "W N"],
    hyper: Hyper,
    *,
    config: TrainConfig,
    n_epochs: int,
    n_batches: int = 1,
    axis_name: str | None = None,
) -> TrainState:
    """:func:`train_epochs` of ``S`` settings × ``W`` windows (state ``[S, W]``), batched with
    ``vmap``, as :func:`init_block`."""

    def one_setting(st, h):
        return jax.vmap(
            lambda s, tm, vm, f: train_epochs(
                s, X, r, tm, vm, h._replace(features=f), config=config, n_epochs=n_epochs,
                n_batches=n_batches, axis_name=axis_name,
            )
        )(st, train_masks, valid_masks, h.features)

    return jax.vmap(one_setting)(state, hyper)


@eqx.filter_jit
def init_windows(X, r, train_masks, valid_masks, hyper: Hyper, starts: Correlations, *, config: TrainConfig):
    """The start of every (setting, window) on one device, in one compiled program: the state
    :func:`train_windows` advances (what :func:`fit_windows` runs; ``starts`` from
    :func:`~fapm_jax.moments.window_correlations`)."""
    keys = all_window_keys(hyper, train_masks.shape[0])
    return init_block(X, r, train_masks, valid_masks, hyper, starts, keys, config=config)


@eqx.filter_jit
def train_windows(state, X, r, train_masks, valid_masks, hyper: Hyper, *, config: TrainConfig, n_epochs: int,
                  n_batches: int = 1):
    """``n_epochs`` more epochs of every (setting, window) in one compiled program; a second
    call with arrays of the same shapes compiles nothing."""
    return epochs_block(state, X, r, train_masks, valid_masks, hyper, config=config, n_epochs=n_epochs,
                        n_batches=n_batches)


def fit_windows(
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    train_masks: Bool[Array, "W N"],
    valid_masks: Bool[Array, "W N"],
    config: TrainConfig = TrainConfig(),
    *,
    hyper: Hyper | None = None,
    epochs_per_call: int | None = None,
    progress: Callable[[int, int, TrainState], None] | None = None,
    checkpoint: str | Path | None = None,
    method: str = "rows",
    mesh: jax.sharding.Mesh | None = None,
) -> TrainResult:
    """Train every window (and every sweep setting) in one compiled program.

    ``X`` and ``r`` are placed on the device once and shared by all ``W`` windows, which
    differ only by their ``train_masks``/``valid_masks``. ``hyper`` is a batched
    :class:`Hyper` of ``S`` settings (see :func:`sweep_grid`); by default the single setting of
    ``config``. ``epochs_per_call`` splits the epochs into equal chunks of the same compiled
    program, so that ``progress(epochs_done, epochs_total, state)`` can report between them.

    ``checkpoint``: a file where the state is saved (atomically) after every chunk; a later
    call with the same data, masks, configuration and settings resumes from it and gives the
    same result as an uninterrupted run. It is removed when training completes.

    ``method="moments"`` (full batch, R² loss) trains from each window's feature moments,
    computed in one pass (:mod:`~fapm_jax.moments`): the same models, each epoch ``O(p²)``
    instead of ``O(N n k)`` — for small factor sets such as FAPM-m sweeps. ``"auto"``: moments
    when the configuration allows them and they fit 2 GiB (:func:`~fapm_jax.moments.choose_method`).

    ``mesh`` (:func:`~fapm_jax.sharding.make_mesh`): train on several devices, the panel's
    rows, the windows and the settings split over the mesh's axes (:mod:`~fapm_jax.sharding`;
    row trainer only). The same models as on one device, up to float rounding.
    """
    if mesh is not None and checkpoint is not None and jax.process_count() > 1:
        raise ConfigError("fit_windows: checkpoints are saved by one process; on a multi-host mesh use epochs_per_call and progress")
    if mesh is not None:  # the panel stays on the host until it is split over the devices
        X = np.asarray(X)
        r = np.asarray(r, X.dtype)
        if method != "rows":
            raise ConfigError(f"fit_windows: mesh= splits the row trainer (method='rows'), got method={method!r}")
    else:
        X = jnp.asarray(X)
        r = jnp.asarray(r, X.dtype)
        tm = jnp.asarray(train_masks, bool)  # 1 byte per row and window; widened chunk by chunk
        vm = jnp.asarray(valid_masks, bool)
    _check_masks(np.asarray(train_masks), np.asarray(valid_masks), X.shape[0])
    _check_finite(X, r)
    if hyper is None:
        hyper = jax.tree_util.tree_map(lambda a: a[None], hyper_from_config(config))
    from . import moments

    if method == "auto":
        method = moments.choose_method(config, X.shape[1], train_masks, valid_masks)
    if method == "moments":
        moments.check_config(config)
        mtr, mva = moments.window_moments(X, r, train_masks, valid_masks, self_interactions=config.self_interactions)
        state = moments.init_all(mtr, mva, hyper, config=config, n=X.shape[1])

        def advance(state, n):
            return moments.epochs_all(state, mtr, mva, hyper, config=config, n_epochs=n)
    elif method == "rows" and mesh is not None:
        from . import sharding

        n_batches = n_batches_for(config, np.asarray(train_masks))
        starts = moments.window_correlations(X, r, train_masks)
        keys = all_window_keys(hyper, np.shape(train_masks)[0])
        placed = sharding.place(mesh, X, r, train_masks, valid_masks, hyper, starts, keys, config=config)
        state = sharding.init_sharded(mesh, placed, config=config)

        def advance(state, n):
            return sharding.train_sharded(mesh, state, placed, config=config, n_epochs=n, n_batches=n_batches)
    elif method == "rows":
        n_batches = n_batches_for(config, np.asarray(train_masks))
        starts = moments.window_correlations(X, r, train_masks)
        state = init_windows(X, r, tm, vm, hyper, starts, config=config)

        def advance(state, n):
            return train_windows(state, X, r, tm, vm, hyper, config=config, n_epochs=n, n_batches=n_batches)
    else:
        raise ConfigError(f"fit_windows: method must be one of {METHODS}, got {method!r}")
    linear_valid_r2 = state.best_valid_r2
    chunk = config.epochs if not epochs_per_call else min(epochs_per_call, config.epochs)
    done = 0
    if checkpoint is not None:
        fp = _fingerprint(X, r, train_masks, valid_masks, config, hyper, method,
                          None if mesh is None else tuple(mesh.shape.items()))
        resumed = load_state(checkpoint, (state, linear_valid_r2), fingerprint=fp)
        if resumed is not None:
            (state, linear_valid_r2), done = resumed
            if progress is not None:
                progress(done, config.epochs, state)
    while done < config.epochs:
        n = min(chunk, config.epochs - done)
        state = advance(state, n)
        done += n
        if checkpoint is not None and done < config.epochs:
            save_state(checkpoint, (state, linear_valid_r2), fingerprint=fp, epochs_done=done)
        if progress is not None:
            progress(done, config.epochs, state)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    result = TrainResult(
        params=state.best_params,
        best_valid_r2=state.best_valid_r2,
        best_epoch=state.best_epoch,
        linear_valid_r2=linear_valid_r2,
        diverged=state.diverged,
        diverged_epoch=state.diverged_epoch,
        valid_r2=state.valid_r2,
        train_r2=state.train_r2,
        hyper=None,
    )
    if mesh is not None:
        result = sharding.unpad(mesh, result, placed)
    return result._replace(hyper=hyper)


@eqx.filter_jit
def _fit_one(X, r, train_mask, valid_mask, hyper, key, start, *, config, n_batches):
    state = init_state(X, r, train_mask, valid_mask, hyper, key, config=config, start=start)
    return train_epochs(
        state, X, r, train_mask, valid_mask, hyper,
        config=config, n_epochs=config.epochs, n_batches=n_batches,
    )


def fit_window(
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    train_mask: Bool[Array, " N"],
    valid_mask: Bool[Array, " N"],
    config: TrainConfig = TrainConfig(),
    *,
    window: int = 0,
    n_windows: int = 1,
    hyper: Hyper | None = None,
    n_batches: int | None = None,
) -> TrainState:
    """Train a single window (no ``vmap``): the reference the vmapped trainer must match.

    ``window``/``n_windows`` pick the same random key as window ``window`` of
    :func:`fit_windows`; ``n_batches`` must match too when mini-batching.
    """
    X = jnp.asarray(X)
    hyper = hyper if hyper is not None else hyper_from_config(config)
    key = window_keys(hyper.seed, n_windows)[window]
    if n_batches is None:
        n_batches = n_batches_for(config, np.asarray(train_mask)[None])
    from .moments import window_correlations

    start = jax.tree_util.tree_map(lambda a: a[0], window_correlations(X, r, np.asarray(train_mask)[None]))
    return _fit_one(
        X, jnp.asarray(r, X.dtype), jnp.asarray(train_mask, bool), jnp.asarray(valid_mask, bool),
        hyper, key, start, config=config, n_batches=n_batches,
    )


def _fingerprint(X, r, train_masks, valid_masks, config, hyper, method="rows", mesh_shape=None) -> str:
    """What a checkpoint must match: data (shape and checksums), masks, configuration and
    settings. Checksums instead of all bytes keep this cheap for GKX-scale panels."""
    stats = np.asarray(jnp.stack([jnp.sum(X), jnp.sum(X * X), jnp.sum(r), jnp.sum(r * r)]))
    return fingerprint(
        X.shape, str(X.dtype), stats, np.asarray(train_masks, bool), np.asarray(valid_masks, bool),
        dataclasses.asdict(config), *jax.tree_util.tree_leaves(hyper), method, mesh_shape,
    )


def _finite(X, r) -> tuple:
    """Whether ``X`` and ``r`` are all finite, on the device that holds them (a host array, as
    :func:`fit_windows` keeps the panel before splitting it over a mesh, is checked on the host)."""
    if isinstance(X, np.ndarray):
        step = 65536
        return all(np.isfinite(X[i:i + step]).all() for i in range(0, X.shape[0], step)), np.isfinite(r).all()
    return _finite_device(X, r)


@jax.jit
def _finite_device(X: Array, r: Array) -> tuple[Array, Array]:
    """Whether ``X`` and ``r`` are all finite, chunk by chunk: XLA:CPU materialises the
    elementwise test before reducing, which over the whole panel is an ``[N, n]`` temporary."""
    C, n_full, rest = chunk_layout(X.shape[0], 65536)

    def body(ok, i):
        return ok & jnp.all(jnp.isfinite(jax.lax.dynamic_slice_in_dim(X, i * C, C, axis=0))), None

    ok, _ = jax.lax.scan(body, jnp.asarray(True), jnp.arange(n_full))
    if rest:
        ok = ok & jnp.all(jnp.isfinite(X[n_full * C:]))
    return ok, jnp.all(jnp.isfinite(r))


def _check_finite(X: Array, r: Array) -> None:
    """Reject NaN/inf inputs: a masked-out row still enters ``mask * resid²`` as NaN."""
    x_ok, r_ok = _finite(X, r)
    if not bool(x_ok):
        row, col = np.argwhere(~np.isfinite(np.asarray(X)))[0]
        raise ConfigError(f"data: non-finite factor value at row {row}, column {col}")
    if not bool(r_ok):
        row = int(np.flatnonzero(~np.isfinite(np.asarray(r)))[0])
        raise ConfigError(f"data: non-finite return at row {row}")


def _check_masks(train_masks: np.ndarray, valid_masks: np.ndarray, n_rows: int | None = None) -> None:
    if train_masks.shape != valid_masks.shape or train_masks.ndim != 2:
        raise ConfigError(
            f"masks: train {train_masks.shape} and valid {valid_masks.shape} must both be [W, N]"
        )
    if n_rows is not None and train_masks.shape[1] != n_rows:
        raise ConfigError(f"masks: shape {train_masks.shape} has {train_masks.shape[1]} columns, "
                          f"but the panel has N = {n_rows} rows")
    for name, m in (("training", train_masks), ("validation", valid_masks)):
        empty = np.flatnonzero(m.sum(axis=1) == 0)
        if empty.size:
            raise ConfigError(f"masks: window(s) {empty.tolist()} have no {name} rows")
    overlap = np.flatnonzero((train_masks.astype(bool) & valid_masks.astype(bool)).any(axis=1))
    if overlap.size:
        raise ConfigError(f"masks: window(s) {overlap.tolist()} share rows between training and validation")
