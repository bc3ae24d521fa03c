"""``fit_windows``: the public entry point that validates the panel and masks, picks the
trainer (rows, moments, or rows over a device mesh), runs the epochs in chunks (checkpoints,
progress) and returns one :class:`TrainResult` of ``S`` settings × ``W`` windows."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from . import moments, sharding
from .checkpoint import fingerprint, load_state, save_state
from .config import METHODS, Hyper, TrainConfig, hyper_from_config, n_batches_for
from .engine import EpochLog, TrainState, all_window_keys, window_keys
from .errors import ConfigError
from .model import FAPMParams
from .penalties import PENALTY_FIELDS
from .rowpass import chunk_layout
from .rows import finish_windows, init_state, init_windows, train_epochs, train_windows
from .solve import SolveLog


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
    linear_params: FAPMParams | None = None  # the OLS start of each (setting, window), V = 0
    solve: SolveLog | None = None  # the converged candidate's solve (Hyper.solve_steps), [S, W]

    def select(self, rule: str = "window", among=None) -> tuple[FAPMParams, np.ndarray]:
        """Per window, the chosen setting: ``(params [W], index [W])``.

        ``rule="window"`` (Algorithm 2): the setting with the best validation R² of that window.
        ``"pooled"``: the best mean validation R² over that window and every earlier one (the
        windows in test-year order) — steadier where a window's validation block is small,
        and still without look-ahead: every validation year used precedes the window's test
        year. ``among``: an ``[S]`` mask of the settings to choose from (default: all), e.g.
        one member of an ensemble."""
        score = self.best_valid_r2
        if rule == "pooled":
            v = jnp.where(jnp.isfinite(score), score, -1e30)  # a failed fit is never preferred
            score = jnp.cumsum(v, axis=1) / jnp.arange(1, v.shape[1] + 1)
        elif rule != "window":
            raise ConfigError(f"select: rule must be 'window' or 'pooled', got {rule!r}")
        if among is not None:
            among = np.asarray(among, bool)
            if among.shape != (score.shape[0],) or not among.any():
                raise ConfigError(f"select: among must be a non-empty [{score.shape[0]}] mask")
            # a failed member setting still beats every setting outside the member
            mine = jnp.nan_to_num(score, nan=-1e30, neginf=-1e30)
            score = jnp.where(jnp.asarray(among)[:, None], mine, -jnp.inf)
        idx = jnp.argmax(score, axis=0)
        W = idx.shape[0]
        chosen = jax.tree_util.tree_map(lambda a: a[idx, jnp.arange(W)], self.params)
        return chosen, np.asarray(idx)


#: Epochs per compiled call when ``fit_windows`` is not told (``epochs_per_call``): the chunk
#: does not depend on the number of epochs, so a run of any length compiles one program.
EPOCHS_PER_CALL = 25


def static_config(config: TrainConfig) -> TrainConfig:
    """``config`` with the fields that are values, not program structure, set to their
    defaults: the static argument of the compiled trainers. The learning rate, init scale, seed
    and penalty weights travel in :class:`Hyper` as arrays and the epoch count as a loop bound
    (:func:`~fapm_jax.core.engine.scan_epochs`), so changing them compiles nothing."""
    d = TrainConfig()
    values = ("learning_rate", "init_scale", "seed", "epochs", "estimator", *PENALTY_FIELDS)
    return dataclasses.replace(config, **{f: getattr(d, f) for f in values})


class _History:
    """The R² after every epoch, ``[S, W, E]`` on the host, filled from each call's
    :class:`~fapm_jax.core.engine.EpochLog` (``[S, W, n]``: which epoch was evaluated, 0 for none)."""

    def __init__(self, shape, dtype):
        self.valid = np.full(shape, np.nan, dtype)
        self.train = np.full(shape, np.nan, dtype)

    def add(self, log: EpochLog) -> None:
        e = np.asarray(log.epoch)
        s, w, i = np.nonzero(e > 0)
        idx = (s, w, e[s, w, i] - 1)
        self.valid[idx] = np.asarray(log.valid_r2)[s, w, i]
        self.train[idx] = np.asarray(log.train_r2)[s, w, i]


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
    ``config``. The epochs run in calls of ``epochs_per_call`` epochs (default
    :data:`EPOCHS_PER_CALL`; the last call skips what is past ``config.epochs``), so that
    ``progress(epochs_done, epochs_total, state)`` can report between them and no epoch count
    needs a program of its own.

    ``checkpoint``: a file where the state is saved (atomically) after every call; a later
    call with the same data, masks, configuration and settings resumes from it and gives the
    same result as an uninterrupted run. It is removed when training completes.

    ``method="moments"`` (full batch, R² loss) trains from each window's feature moments,
    computed in one pass (:mod:`~fapm_jax.core.moments`): the same models, each epoch ``O(p²)``
    instead of ``O(N n k)`` — for small factor sets such as FAPM-m sweeps. ``"auto"``: moments
    when the configuration allows them and they fit 2 GiB
    (:func:`~fapm_jax.core.moments.choose_method`).

    ``mesh`` (:func:`~fapm_jax.core.sharding.make_mesh`): train on several devices, the panel's
    rows, the windows and the settings split over the mesh's axes (:mod:`~fapm_jax.core.sharding`;
    row trainer only). The same models as on one device, up to float rounding.
    """
    if method not in METHODS:
        raise ConfigError(f"fit_windows: method must be one of {METHODS}, got {method!r}")
    if epochs_per_call is not None and (not isinstance(epochs_per_call, int) or epochs_per_call < 1):
        raise ConfigError(f"fit_windows: epochs_per_call={epochs_per_call!r}: must be a positive integer")
    if mesh is not None and checkpoint is not None and jax.process_count() > 1:
        raise ConfigError(
            "fit_windows: checkpoints are saved by one process; on a multi-host mesh use "
            "epochs_per_call and progress"
        )
    if mesh is not None:  # the panel stays on the host until it is split over the devices
        if method != "rows":
            raise ConfigError(
                f"fit_windows: mesh= splits the row trainer (method='rows'), got method={method!r}"
            )
        X = np.asarray(X)
        r = np.asarray(r, X.dtype)
    else:
        X = jnp.asarray(X)
        r = jnp.asarray(r, X.dtype)
    _check_masks(np.asarray(train_masks), np.asarray(valid_masks), X.shape[0])
    _check_finite(X, r)
    if hyper is None:
        hyper = jax.tree_util.tree_map(lambda a: a[None], hyper_from_config(config))
    if method == "auto":
        method = moments.choose_method(config, X.shape[1], train_masks, valid_masks)
    if hyper.solve_steps is not None and method != "moments":
        raise ConfigError(
            f"fit_windows: solve_steps (the converged candidate) needs method='moments', got {method!r}"
        )
    init, advance, finish, unpad, polish = _trainer(
        method, X, r, train_masks, valid_masks, hyper, config, mesh
    )
    E = config.epochs
    chunk = epochs_per_call or EPOCHS_PER_CALL
    limit = jnp.asarray(E, jnp.int32)
    state = init()
    linear_valid_r2, linear_params = state.best_valid_r2, state.best_params
    S, W = np.shape(hyper.seed)[0], np.shape(train_masks)[0]
    solving = hyper.solve_steps is not None  # the converged candidate is logged as epoch E + 1
    history = _History((S, W, E + solving), np.dtype(X.dtype))
    done = 0
    if checkpoint is not None:
        fp = _fingerprint(
            X,
            r,
            train_masks,
            valid_masks,
            config,
            hyper,
            method,
            None if mesh is None else tuple(mesh.shape.items()),
        )
        like = (
            state,
            linear_valid_r2,
            linear_params,
            jax.device_put(history.valid),
            jax.device_put(history.train),
        )
        resumed = load_state(checkpoint, like, fingerprint=fp)
        if resumed is not None:
            (state, linear_valid_r2, linear_params, hv, ht), done = resumed
            history.valid, history.train = np.array(hv), np.array(ht)
            if progress is not None:
                progress(done, E, state)
    while done < E:
        state, log = advance(state, jnp.asarray(done, jnp.int32), limit, chunk)
        history.add(log)
        done = min(done + chunk, E)
        if checkpoint is not None and done < E:
            save_state(
                checkpoint,
                (state, linear_valid_r2, linear_params, history.valid, history.train),
                fingerprint=fp,
                epochs_done=done,
            )
        if progress is not None:
            progress(done, E, state)
    state, log = finish(state)
    history.add(jax.tree_util.tree_map(lambda a: np.asarray(a)[..., None], log))
    slog = None
    if solving:
        state, log, slog = polish(state, jnp.asarray(E + 1, jnp.int32))
        history.add(jax.tree_util.tree_map(lambda a: np.asarray(a)[..., None], log))
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    best = unpad(
        (
            state.best_params,
            state.best_valid_r2,
            state.best_epoch,
            linear_valid_r2,
            state.diverged,
            state.diverged_epoch,
            linear_params,
        )
    )
    return TrainResult(
        *best[:6],
        valid_r2=jax.device_put(history.valid),
        train_r2=jax.device_put(history.train),
        hyper=hyper,
        linear_params=best[6],
        solve=slog,
    )


def _trainer(method, X, r, train_masks, valid_masks, hyper, config, mesh):
    """``(init(), advance(state, start, limit, n), finish(state), unpad(tree), polish(state,
    label))`` of the chosen trainer, each a compiled program of every (setting, window)
    (``polish``, the converged candidate: moment trainer only, else ``None``). On a mesh the
    state is padded to the mesh's shape; the logs come back without the padding, and
    ``unpad`` drops it from the final state's arrays."""
    cfg = static_config(config)
    if method == "moments":
        moments.check_config(config)
        mtr, mva = moments.window_moments(
            X, r, train_masks, valid_masks, self_interactions=config.self_interactions
        )
        return (
            lambda: moments.init_all(mtr, mva, hyper, config=cfg, n=X.shape[1]),
            lambda st, a, b, n: moments.epochs_all(st, mtr, mva, hyper, a, b, config=cfg, n_epochs=n),
            lambda st: moments.finish_all(st, mtr, mva, hyper, cfg.settings_batch),
            lambda tree: tree,
            lambda st, label: moments.converge_all(st, mtr, mva, hyper, label, cfg.settings_batch),
        )
    n_batches = n_batches_for(config, np.asarray(train_masks))
    starts = moments.window_correlations(X, r, train_masks)
    if mesh is not None:
        keys = all_window_keys(hyper, np.shape(train_masks)[0])
        placed = sharding.place(mesh, X, r, train_masks, valid_masks, hyper, starts, keys, config=cfg)

        def advance(st, a, b, n):
            st, log = sharding.train_sharded(
                mesh, st, placed, a, b, config=cfg, n_epochs=n, n_batches=n_batches
            )
            return st, sharding.unpad(mesh, log, placed)

        def finish(st):
            st, log = sharding.finish_sharded(mesh, st, placed, config=cfg)
            return st, sharding.unpad(mesh, log, placed)

        return (
            lambda: sharding.init_sharded(mesh, placed, config=cfg),
            advance,
            finish,
            lambda tree: sharding.unpad(mesh, tree, placed),
            None,
        )
    tm = jnp.asarray(train_masks, bool)  # 1 byte per row and window; widened chunk by chunk
    vm = jnp.asarray(valid_masks, bool)
    return (
        lambda: init_windows(X, r, tm, vm, hyper, starts, config=cfg),
        lambda st, a, b, n: train_windows(
            st, X, r, tm, vm, hyper, a, b, config=cfg, n_epochs=n, n_batches=n_batches
        ),
        lambda st: finish_windows(st, X, r, tm, vm, hyper, config=cfg),
        lambda tree: tree,
        None,
    )


class WindowFit(NamedTuple):
    """:func:`fit_window`'s outcome: one window's final state and its R² after each epoch.
    The state's fields read through (``fit.best_params`` is ``fit.state.best_params``)."""

    state: TrainState
    valid_r2: Float[Array, " E"]
    train_r2: Float[Array, " E"]

    def __getattr__(self, name):
        return getattr(self.state, name)


@eqx.filter_jit
def _fit_one(X, r, train_mask, valid_mask, hyper, key, start, *, config, n_epochs, n_batches):
    state = init_state(X, r, train_mask, valid_mask, hyper, key, config=config, start=start)
    return train_epochs(
        state, X, r, train_mask, valid_mask, hyper, config=config, n_epochs=n_epochs, n_batches=n_batches
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
) -> WindowFit:
    """Train a single window (no ``vmap``, all epochs in one ``lax.scan``): the reference the
    vmapped trainer must match.

    ``window``/``n_windows`` pick the same random key as window ``window`` of
    :func:`fit_windows`; ``n_batches`` must match too when mini-batching.
    """
    X = jnp.asarray(X)
    hyper = hyper if hyper is not None else hyper_from_config(config)
    key = window_keys(hyper.seed, n_windows)[window]
    if n_batches is None:
        n_batches = n_batches_for(config, np.asarray(train_mask)[None])
    start = jax.tree_util.tree_map(
        lambda a: a[0], moments.window_correlations(X, r, np.asarray(train_mask)[None])
    )
    state, log = _fit_one(
        X,
        jnp.asarray(r, X.dtype),
        jnp.asarray(train_mask, bool),
        jnp.asarray(valid_mask, bool),
        hyper,
        key,
        start,
        config=static_config(config),
        n_epochs=config.epochs,
        n_batches=n_batches,
    )
    E = config.epochs
    history = _History((1, 1, E), np.asarray(state.best_valid_r2).dtype)
    history.add(jax.tree_util.tree_map(lambda a: np.asarray(a)[None, None], log))
    return WindowFit(state, jax.device_put(history.valid[0, 0]), jax.device_put(history.train[0, 0]))


def _fingerprint(X, r, train_masks, valid_masks, config, hyper, method="rows", mesh_shape=None) -> str:
    """What a checkpoint must match: data (shape and checksums), masks, configuration and
    settings. Checksums instead of all bytes keep this cheap for GKX-scale panels."""
    stats = np.asarray(jnp.stack([jnp.sum(X), jnp.sum(X * X), jnp.sum(r), jnp.sum(r * r)]))
    return fingerprint(
        X.shape,
        str(X.dtype),
        stats,
        np.asarray(train_masks, bool),
        np.asarray(valid_masks, bool),
        dataclasses.asdict(config),
        *jax.tree_util.tree_leaves(hyper),
        method,
        mesh_shape,
    )


def _finite(X, r) -> tuple:
    """Whether ``X`` and ``r`` are all finite, on the device that holds them (a host array, as
    :func:`fit_windows` keeps the panel before splitting it over a mesh, is checked on the host)."""
    if isinstance(X, np.ndarray):
        step = 65536
        return all(np.isfinite(X[i : i + step]).all() for i in range(0, X.shape[0], step)), np.isfinite(
            r
        ).all()
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
        ok = ok & jnp.all(jnp.isfinite(X[n_full * C :]))
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
        raise ConfigError(
            f"masks: shape {train_masks.shape} has {train_masks.shape[1]} columns, "
            f"but the panel has N = {n_rows} rows"
        )
    for name, m in (("training", train_masks), ("validation", valid_masks)):
        empty = np.flatnonzero(m.sum(axis=1) == 0)
        if empty.size:
            raise ConfigError(f"masks: window(s) {empty.tolist()} have no {name} rows")
    overlap = np.flatnonzero((train_masks.astype(bool) & valid_masks.astype(bool)).any(axis=1))
    if overlap.size:
        raise ConfigError(f"masks: window(s) {overlap.tolist()} share rows between training and validation")
