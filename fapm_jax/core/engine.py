"""The one epoch engine of every FAPM trainer (Figure 3, Algorithm 2, lines 7–13).

One epoch (:func:`epoch_step`) is optimizer steps through one guarded step
(:func:`guarded_update`: a non-finite loss or update is discarded and freezes the model,
``diverged``), then one best-on-validation record (:func:`record`). The row trainer
(:mod:`~fapm_jax.core.rows`), the moment trainer (:mod:`~fapm_jax.core.moments`) and the
sharded trainer (:mod:`~fapm_jax.core.sharding`) only supply the loss, its gradient and the R²
of a model; the networks of the comparison suite (:mod:`~fapm_jax.baselines.nn`) share the
guarded step and the record. :func:`scan_epochs` runs a chunk of epochs of any batch of models
with the epoch count as a value (epochs past it are skipped), so the compiled program depends on
neither the learning rate, the init scale, the seed nor the number of epochs.

The R² after each epoch leaves the compiled program as an :class:`EpochLog` per epoch (the scan's
outputs), not as a history inside the state: the state is the same size whatever the epochs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from .config import OPTIMIZERS, Hyper, TrainConfig
from .errors import ConfigError
from .model import FAPMParams, init_params, with_feature_mask, with_rank_mask
from .penalties import Penalty, prox, smooth_penalty
from .solve import SolveLog, solve

tree_where = optax.tree_utils.tree_where


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
    pending: Bool[Array, ""]  # params is an epoch's model not evaluated yet (fused passes)


class EpochLog(NamedTuple):
    """What one epoch evaluated: ``epoch`` (1-based; 0: nothing this epoch) and its R²."""

    epoch: Int[Array, ""]
    train_r2: Float[Array, ""]
    valid_r2: Float[Array, ""]


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
        pending=jnp.asarray(False),
    )


def all_finite(tree: PyTree) -> Bool[Array, ""]:
    """Whether every leaf of ``tree`` is finite."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def guarded_update(
    tx: optax.GradientTransformation,
    params: PyTree,
    opt_state: optax.OptState,
    grads: PyTree,
    loss: Float[Array, ""],
    ok: Bool[Array, ""],
    has_rows: Bool[Array, ""] = True,
    project: Callable[[PyTree], PyTree] | None = None,
    scale: Callable[[PyTree], PyTree] | None = None,
) -> tuple[PyTree, optax.OptState, Bool[Array, ""]]:
    """One optimizer step that can never corrupt a model: the update (``scale``-d, then
    ``project``-ed: masks) is taken only while ``ok`` and when the loss and the new parameters
    are finite; a non-finite one leaves params and optimizer state as they were and returns
    ``ok = False`` for good (the model is frozen at its last finite value: ``diverged``). A batch
    without rows (``has_rows`` False) is a no-op, not a divergence. ``project(params,
    opt_state)`` sees the optimizer's new state (the proximal step's metric,
    :func:`preconditioner`). optax's ``apply_if_finite`` would retry later steps; a diverged
    window here stays frozen, as the paper's early stopping keeps the best model seen."""
    updates, new_opt = tx.update(grads, opt_state, params)
    if scale is not None:
        updates = scale(updates)
    new_params = optax.apply_updates(params, updates)
    if project is not None:
        new_params = project(new_params, new_opt)
    finite = jnp.isfinite(loss) & all_finite(new_params)
    take = ok & has_rows & finite
    return (
        tree_where(take, new_params, params),
        tree_where(take, new_opt, opt_state),
        ok & (finite | ~has_rows),
    )


def improved(score: Float[Array, ""], best: Float[Array, ""], ok: Bool[Array, ""]) -> Bool[Array, ""]:
    """The best-on-validation rule: a finite ``score`` of a model that did not diverge, strictly
    above the ``best`` so far (higher is better: validation R², or minus an MSE)."""
    return ok & jnp.isfinite(score) & (score > best)


def epoch_updates(
    tx: optax.GradientTransformation,
    params: PyTree,
    opt_state: optax.OptState,
    ok: Bool[Array, ""],
    value_and_grad_fn: Callable,
    batches: PyTree | None,
    n_steps: int = 1,
    project: Callable[[PyTree], PyTree] | None = None,
    scale: Callable[[PyTree], PyTree] | None = None,
) -> tuple[PyTree, optax.OptState, Bool[Array, ""]]:
    """An epoch's optimizer steps: :func:`guarded_update` scanned over ``batches`` (``n_steps``
    of them; ``None``: ``n_steps`` full-batch steps). ``value_and_grad_fn(params, batch) ->
    ((loss, has_rows), grads)``. The epoch of every trainer that steps more than once per
    evaluation — FAPM on mini-batches, and the comparison suite's networks."""

    def step(carry, batch):
        p, o, good = carry
        (loss, has_rows), grads = value_and_grad_fn(p, batch)
        return guarded_update(tx, p, o, grads, loss, good, has_rows, project, scale), None

    (params, opt_state, ok), _ = jax.lax.scan(step, (params, opt_state, ok), batches, length=n_steps)
    return params, opt_state, ok


def record(state: TrainState, train_r2, valid_r2, ok) -> tuple[TrainState, EpochLog]:
    """Evaluate the model of epoch ``state.epoch`` (the best-on-validation rule of Algorithm 2):
    keep it when its validation R² beats the best so far; log its R² (NaN when it diverged)."""
    e = state.epoch
    better = improved(valid_r2, state.best_valid_r2, ok)
    state = state._replace(
        best_params=tree_where(better, state.params, state.best_params),
        best_valid_r2=jnp.where(better, valid_r2, state.best_valid_r2),
        best_epoch=jnp.where(better, e, state.best_epoch),
    )
    nan = jnp.asarray(jnp.nan, state.best_valid_r2.dtype)
    log = EpochLog(
        e, jnp.where(ok, train_r2, nan).astype(nan.dtype), jnp.where(ok, valid_r2, nan).astype(nan.dtype)
    )
    return state, log


def no_log(state: TrainState) -> EpochLog:
    """The log of an epoch that evaluated nothing (of one model or of a batch of them)."""
    nan = jnp.full_like(state.best_valid_r2, jnp.nan)
    return EpochLog(jnp.zeros_like(state.epoch), nan, nan)


def preconditioner(opt_state: optax.OptState, params: FAPMParams, optimizer: str) -> FAPMParams:
    """The optimizer's per-coordinate step multiplier ``D`` (its update is ``−lr · D ⊙ m``):
    ``1/(√v̂ + ε)`` for Adam/AdamW (bias-corrected second moment), ``1/√(ν + ε)`` for RMSprop,
    ``1/√(Σg² + ε)`` for Adagrad, 1 for SGD and LAMB (whose trust ratio has no diagonal form).

    The proximal step of an L1 penalty after an adaptive step must use the same metric
    (scaled proximal gradient): threshold ``lr·λ·D_i``. With a plain ``lr·λ`` (the unscaled
    prox) Adam's normalised steps outrun the shrinkage, and a coordinate is zeroed only when
    ``λ`` exceeds about 1 whatever its gradient — the penalty barely acts. With ``D`` the
    fixed point is the lasso's: ``|∂loss/∂w_i| ≤ λ`` at every zero."""
    ones = jax.tree_util.tree_map(jnp.ones_like, params)

    def find(cls):
        leaves = jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, cls))
        hits = [s for s in leaves if isinstance(s, cls)]
        return hits[0] if hits else None

    if optimizer in ("adam", "adamw"):
        st = find(optax.ScaleByAdamState)
        corr = 1.0 - 0.999 ** jnp.maximum(st.count, 1).astype(params.w.dtype)
        return jax.tree_util.tree_map(lambda nu: 1.0 / (jnp.sqrt(nu / corr) + 1e-8), st.nu)
    if optimizer == "rmsprop":
        st = find(optax.ScaleByRmsState)
        return jax.tree_util.tree_map(lambda nu: jax.lax.rsqrt(nu + 1e-8), st.nu)
    if optimizer == "adagrad":
        st = find(optax.ScaleByRssState)
        return jax.tree_util.tree_map(lambda s: jax.lax.rsqrt(s + 1e-7), st.sum_of_squares)
    return ones


def fapm_update_rules(hyper: Hyper, config: TrainConfig, dtype):
    """FAPM's update rules around the optimizer: the linear part's steps scaled by
    ``config.linear_lr_scale`` (it starts at its OLS optimum), the proximal step of the L1 and
    group-L1 penalties (:func:`~fapm_jax.core.penalties.prox`, in the optimizer's metric,
    :func:`preconditioner`), rank and factor masks re-applied."""
    rank_mask = hyper.rank_mask.astype(dtype)
    features = None if hyper.features is None else hyper.features.astype(dtype)
    pen = hyper.penalty

    def scale(u):
        if config.linear_lr_scale == 1.0:
            return u
        c = jnp.asarray(config.linear_lr_scale, dtype)
        return eqx.tree_at(lambda t: (t.w0, t.w), u, (u.w0 * c, u.w * c))

    def project(p, opt_state):
        if pen is not None:
            lr = hyper.learning_rate.astype(dtype)
            D = preconditioner(opt_state, p, config.optimizer)
            # a latent vector's group step: its active columns' mean denominator (a rank-masked
            # column has no gradient, hence no metric)
            den = jnp.sum(rank_mask / D.V, axis=-1) / jnp.maximum(jnp.sum(rank_mask), 1.0)
            D = eqx.tree_at(lambda t: t.V, D, jnp.broadcast_to((1.0 / den)[:, None], p.V.shape))
            p = prox(p, pen, lr, lr * jnp.asarray(config.linear_lr_scale, dtype), metric=D)
        p = with_rank_mask(p, rank_mask)
        return p if features is None else with_feature_mask(p, features)

    return scale, project


def with_smooth_penalty(value_and_grad_fn: Callable, pen: Penalty) -> Callable:
    """``value_and_grad_fn`` of the data loss plus the L2 part of the penalty
    (:func:`~fapm_jax.core.penalties.smooth_penalty`): the loss the optimizer steps on."""

    def penalised(params, batch):
        (loss, aux), grads = value_and_grad_fn(params, batch)
        p, g = jax.value_and_grad(smooth_penalty)(params, pen)
        return (loss + p.astype(loss.dtype), aux), jax.tree_util.tree_map(jnp.add, grads, g)

    return penalised


def epoch_step(
    state: TrainState,
    hyper: Hyper,
    *,
    config: TrainConfig,
    value_and_grad_fn: Callable,
    r2_fn: Callable,
    batches_fn: Callable | None = None,
    n_steps: int = 1,
    fused: bool = False,
) -> tuple[TrainState, EpochLog]:
    """One epoch of one window and setting: the epoch body of every FAPM trainer.

    ``value_and_grad_fn(params, batch) -> ((loss, aux), grads)`` with ``aux = has_rows`` or,
    when ``fused``, ``aux = (has_rows, train_r2, valid_r2)`` of the parameters the gradient is
    taken at; ``r2_fn(params) -> (train_r2, valid_r2)``; ``batches_fn(key)``: the ``n_steps``
    batches of the epoch (``None``: one full-batch step, ``batch=None``).

    Without ``fused``, the epoch's steps run and the new model is evaluated (:func:`r2_fn`).
    With ``fused`` (one full-batch step that reads the data once: :mod:`~fapm_jax.core.rowpass`),
    the pass of epoch ``e`` evaluates the model of epoch ``e − 1`` (``state.pending``) before
    its step, and :func:`finish` evaluates the last — the same evaluations in the same order. A
    setting whose ``hyper.epochs`` budget is spent keeps its state."""
    if fused and (batches_fn is not None or n_steps != 1):
        raise ConfigError("epoch_step: a fused pass needs one full-batch step per epoch")
    tx = make_optimizer(config.optimizer)
    scale, project = fapm_update_rules(hyper, config, state.params.w.dtype)
    if hyper.penalty is not None:
        value_and_grad_fn = with_smooth_penalty(value_and_grad_fn, hyper.penalty)
    key, k_epoch = jax.random.split(state.key)
    log = no_log(state)
    if fused:
        (loss, (has_rows, train_r2, valid_r2)), grads = value_and_grad_fn(state.params, None)
        state, log = jax.lax.cond(
            state.pending,
            lambda: record(state._replace(pending=jnp.asarray(False)), train_r2, valid_r2, ~state.diverged),
            lambda: (state, log),
        )
        params, opt_state, ok = guarded_update(
            tx, state.params, state.opt_state, grads, loss, ~state.diverged, has_rows, project, scale
        )
    else:
        batches = None if batches_fn is None else batches_fn(k_epoch)
        params, opt_state, ok = epoch_updates(
            tx,
            state.params,
            state.opt_state,
            ~state.diverged,
            value_and_grad_fn,
            batches,
            n_steps,
            project,
            scale,
        )
    e = state.epoch + 1
    new = state._replace(
        params=params,
        opt_state=opt_state,
        epoch=e,
        diverged=state.diverged | ~ok,
        diverged_epoch=jnp.where(~ok & ~state.diverged, e, state.diverged_epoch),
        key=key,
        pending=jnp.asarray(fused),
    )
    new_log = log
    if not fused:
        new, new_log = record(new, *r2_fn(params), ok)
    active = jnp.asarray(True) if hyper.epochs is None else state.epoch < hyper.epochs
    return tree_where(active, new, state), tree_where(active, new_log, log)


def finish(state: TrainState, r2_fn: Callable) -> tuple[TrainState, EpochLog]:
    """Evaluate a model the last fused pass left pending (one forward pass)."""
    return jax.lax.cond(
        state.pending,
        lambda: record(state._replace(pending=jnp.asarray(False)), *r2_fn(state.params), ~state.diverged),
        lambda: (state, no_log(state)),
    )


def converge(
    state: TrainState,
    hyper: Hyper,
    label: Int[Array, ""],
    *,
    data_loss: Callable[[FAPMParams], Float[Array, ""]],
    r2_fn: Callable,
) -> tuple[TrainState, EpochLog, SolveLog]:
    """The converged candidate after the epochs: the penalised objective (``data_loss`` plus
    ``hyper.penalty``) minimised from the last iterate by :func:`~fapm_jax.core.solve.solve`
    for at most ``hyper.solve_steps`` iterations, then judged by the same best-on-validation
    rule as every epoch (:func:`record`), as epoch ``label`` (one past the run's last). The
    OLS start and the early-stopped model stay candidates; a diverged model is not solved."""
    pen = hyper.penalty
    dtype = state.params.w.dtype

    def f(p):
        return data_loss(p) + (0.0 if pen is None else smooth_penalty(p, pen).astype(dtype))

    budget = jnp.where(state.diverged, 0, hyper.solve_steps)
    params, slog = solve(state.params, f, pen, budget, rank_mask=hyper.rank_mask, features=hyper.features)
    ok = ~state.diverged & jnp.isfinite(slog.objective) & all_finite(params)
    epoch = state.epoch
    new, log = record(state._replace(params=params, epoch=label), *r2_fn(params), ok)
    return tree_where(ok, new._replace(epoch=epoch), state), log, slog


def run_epochs(state: TrainState, hyper: Hyper, *, n_epochs: int, **step_kw) -> tuple[TrainState, EpochLog]:
    """``n_epochs`` epochs of one window (:func:`epoch_step` in a ``lax.scan``), the pending
    evaluation included; the log is ``[n_epochs + 1]`` (the last entry: :func:`finish`)."""
    state, logs = jax.lax.scan(lambda s, _: epoch_step(s, hyper, **step_kw), state, None, length=n_epochs)
    state, last = finish(state, step_kw["r2_fn"])
    return state, jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b[None]]), logs, last)


def scan_epochs(
    step_all: Callable[[TrainState], tuple[TrainState, EpochLog]],
    state: TrainState,
    n_epochs: int,
    start: Int[Array, ""],
    limit: Int[Array, ""],
) -> tuple[TrainState, EpochLog]:
    """A chunk of ``n_epochs`` epochs of a batch of models (``step_all``: one epoch of all of
    them) in which the epochs ``start + i ≥ limit`` are skipped (``lax.cond`` on an unbatched
    count: no work). Equal chunks of a run of any length run one compiled program. The log's
    epoch axis is last: ``[..., n_epochs]``."""

    def body(s, i):
        return jax.lax.cond(start + i < limit, step_all, lambda s: (s, no_log(s)), s)

    state, logs = jax.lax.scan(body, state, jnp.arange(n_epochs))
    return state, jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 0, -1), logs)


def over_settings(fn: Callable, *xs, batch: int | None = None):
    """``fn`` of one sweep setting over the leading settings axis of ``xs``: all settings
    vmapped side by side (``batch=None``), or ``batch`` settings at a time (``lax.map`` with
    ``batch_size``: a scan over groups of ``batch`` vmapped settings, the remainder in one more
    group), so that the intermediates of only ``batch`` settings are held at once — the memory
    budget of a large sweep (``TrainConfig.settings_batch``). The same models either way, up to
    float rounding."""
    if batch is None:
        return jax.vmap(fn)(*xs)
    return jax.lax.map(lambda a: fn(*a), xs, batch_size=batch)


def window_keys(seed: Int[Array, ""], n_windows: int) -> PRNGKeyArray:
    """One key per window derived from a setting's seed (the same in the vmapped and looped
    trainers, so that both draw the same ``V``)."""
    return jax.random.split(jax.random.key(seed), n_windows)


def all_window_keys(hyper: Hyper, n_windows: int) -> PRNGKeyArray:
    """The keys of every (setting, window), ``[S, W]``: :func:`window_keys` of each setting's seed."""
    return jax.vmap(lambda seed: window_keys(seed, n_windows))(hyper.seed)
