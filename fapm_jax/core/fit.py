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

from .checkpoint import fingerprint, load_state, save_state
from .config import METHODS, Hyper, TrainConfig, hyper_from_config, n_batches_for
from .engine import TrainState, all_window_keys, window_keys
from .errors import ConfigError
from .model import FAPMParams
from .rowpass import chunk_layout
from .rows import init_state, init_windows, train_epochs, train_windows


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
    computed in one pass (:mod:`~fapm_jax.core.moments`): the same models, each epoch ``O(p²)``
    instead of ``O(N n k)`` — for small factor sets such as FAPM-m sweeps. ``"auto"``: moments
    when the configuration allows them and they fit 2 GiB (:func:`~fapm_jax.core.moments.choose_method`).

    ``mesh`` (:func:`~fapm_jax.core.sharding.make_mesh`): train on several devices, the panel's
    rows, the windows and the settings split over the mesh's axes (:mod:`~fapm_jax.core.sharding`;
    row trainer only). The same models as on one device, up to float rounding.
    """
    if mesh is not None and checkpoint is not None and jax.process_count() > 1:
        raise ConfigError(
            "fit_windows: checkpoints are saved by one process; on a multi-host mesh use epochs_per_call and progress"
        )
    if mesh is not None:  # the panel stays on the host until it is split over the devices
        X = np.asarray(X)
        r = np.asarray(r, X.dtype)
        if method != "rows":
            raise ConfigError(
                f"fit_windows: mesh= splits the row trainer (method='rows'), got method={method!r}"
            )
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
        mtr, mva = moments.window_moments(
            X, r, train_masks, valid_masks, self_interactions=config.self_interactions
        )
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
        state,
        X,
        r,
        train_mask,
        valid_mask,
        hyper,
        config=config,
        n_epochs=config.epochs,
        n_batches=n_batches,
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
        X,
        jnp.asarray(r, X.dtype),
        jnp.asarray(train_mask, bool),
        jnp.asarray(valid_mask, bool),
        hyper,
        key,
        start,
        config=config,
        n_batches=n_batches,
    )


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
