"""Training across devices: the panel's rows, the windows and the sweep settings on a mesh.

The trainer (:mod:`~fapm_jax.core.fit`) is written for one window and one setting and batched
with ``vmap`` over ``S`` settings × ``W`` windows. On a mesh of devices with axes
:data:`AXES` = ``("settings", "windows", "rows")`` it runs under ``jax.shard_map``:

* ``rows`` (data parallel): each device holds ``N / R`` rows of the panel, computes its
  rows' sums of the loss, gradient and R² (:func:`~fapm_jax.core.rowpass.row_pass`), and one
  ``psum`` per epoch adds them up, so every device takes the same optimizer step. The panel is
  held once across the row devices — what lets a panel larger than one device's memory train.
* ``windows`` and ``settings`` (model parallel): each device trains its block of the
  ``S × W`` models on all of its rows; no communication at all.

The axes combine (a ``2 × 2 × 2`` mesh of 8 devices is valid). Shapes that the mesh does not
divide are padded — rows with zeros outside every mask (they add exactly 0), windows and
settings with copies of the first, dropped from the result — so any mesh fits any problem.

The same program runs on one host with several devices and on several hosts: start each
process with :func:`jax.distributed.initialize`, build the mesh over ``jax.devices()`` (all
hosts' devices) and call :func:`~fapm_jax.core.fit.fit_windows` with ``mesh=`` in every process
with the same arguments; each process places only its own devices' shards
(:func:`jax.make_array_from_callback`) and gathers the (small) result. See README, "Several
devices".

The row sums are added explicitly (``psum`` in :func:`~fapm_jax.core.rowpass.row_pass`), so the
``shard_map`` runs without JAX's replication typing (``check_vma=False``): with it, the
gradient with respect to the replicated parameters would already be summed over the rows axis
by autodiff, and the explicit sum would count every shard ``R`` times.

The results equal one device's up to float rounding: the row sums are added in another order
(tests/test_sharding.py: float64, 1e-10, same best epochs).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Bool, Float

from .config import Hyper, TrainConfig
from .engine import EpochLog, TrainState
from .errors import ConfigError
from .linear import Correlations
from .rows import epochs_block, finish_block, init_block

#: The mesh axes, outermost first: sweep settings, windows, the panel's rows.
AXES = ("settings", "windows", "rows")


def make_mesh(*, rows: int = 1, windows: int = 1, settings: int = 1, devices=None) -> Mesh:
    """A ``settings × windows × rows`` :class:`~jax.sharding.Mesh` of the first
    ``settings · windows · rows`` of ``devices`` (default ``jax.devices()``: on several hosts,
    all hosts' devices, so rows split across hosts communicate once per epoch)."""
    shape = (settings, windows, rows)
    if any(not isinstance(k, int) or k < 1 for k in shape):
        raise ConfigError(f"make_mesh: settings, windows and rows must be positive integers, got {shape}")
    devices = list(jax.devices() if devices is None else devices)
    need = settings * windows * rows
    if need > len(devices):
        raise ConfigError(
            f"make_mesh: settings × windows × rows = {need} devices, but only {len(devices)} are available"
        )
    if jax.process_count() > 1 and need != len(devices):
        raise ConfigError(
            f"make_mesh: on {jax.process_count()} hosts the mesh must hold all {len(devices)} "
            f"devices, got {need}"
        )
    return Mesh(np.asarray(devices[:need], dtype=object).reshape(shape), AXES)


class Placed(NamedTuple):
    """A training problem padded to the mesh and placed on it (one shard per device)."""

    X: Float[Array, "Np n"]  # sharded over rows
    r: Float[Array, " Np"]
    train_masks: Bool[Array, "Wp Np"]  # sharded over windows × rows
    valid_masks: Bool[Array, "Wp Np"]
    hyper: Hyper  # [Sp], sharded over settings
    starts: Correlations  # [Wp], sharded over windows
    keys: Array  # [Sp, Wp, ...] uint32 key data, sharded over settings × windows
    n_settings: int  # S and W before padding
    n_windows: int


def _pad(a: np.ndarray, axis: int, size: int, fill=None) -> np.ndarray:
    """``a`` grown to ``size`` along ``axis`` with ``fill`` (``None``: copies of index 0)."""
    extra = size - a.shape[axis]
    if extra == 0:
        return a
    shape = list(a.shape)
    shape[axis] = extra
    block = (
        np.full(shape, fill, a.dtype) if fill is not None else np.repeat(np.take(a, [0], axis), extra, axis)
    )
    return np.concatenate([a, block], axis=axis)


def _ceil_to(n: int, k: int) -> int:
    return -(-n // k) * k


def _specs(hyper: Hyper) -> Hyper:
    """Partition specs of a batched :class:`~fapm_jax.core.config.Hyper` ``[S]``."""
    specs = jax.tree_util.tree_map(lambda _: P("settings"), hyper)
    return specs if hyper.features is None else specs._replace(features=P("settings", "windows"))


def place(
    mesh: Mesh,
    X,
    r,
    train_masks,
    valid_masks,
    hyper: Hyper,
    starts: Correlations,
    keys,
    *,
    config: TrainConfig,
) -> Placed:
    """Pad the problem to the mesh's shape and put each device's shard on it.

    ``X``/``r``/masks are host arrays (every process passes the whole panel and places only
    its devices' rows); ``hyper`` ``[S]``, ``starts`` ``[W]`` and ``keys`` ``[S, W]``
    (:func:`~fapm_jax.core.engine.all_window_keys`) as :func:`~fapm_jax.core.rows.init_windows` takes them."""
    if tuple(mesh.axis_names) != AXES:
        raise ConfigError(f"mesh: axes must be {AXES} (fapm_jax.make_mesh), got {tuple(mesh.axis_names)}")
    R, Wd, Sd = mesh.shape["rows"], mesh.shape["windows"], mesh.shape["settings"]
    if R > 1 and config.batch_size is not None:
        raise ConfigError(
            "mesh: rows split over devices need full-batch training (TrainConfig.batch_size=None)"
        )
    X, r = np.asarray(X), np.asarray(r)
    tm, vm = np.asarray(train_masks, bool), np.asarray(valid_masks, bool)
    N, (W, S) = X.shape[0], (tm.shape[0], int(np.shape(hyper.seed)[0]))
    Np, Wp, Sp = _ceil_to(N, R), _ceil_to(W, Wd), _ceil_to(S, Sd)

    def put(a, spec):
        a = np.asarray(a)
        return jax.make_array_from_callback(a.shape, NamedSharding(mesh, spec), lambda idx: a[idx])

    def settings_first(h):  # pad [S, ...] (features: [S, W, n], also along windows)
        h = _pad(np.asarray(h), 0, Sp)
        return _pad(h, 1, Wp) if h.ndim == 3 else h

    hyper_p = jax.tree_util.tree_map(settings_first, hyper)
    key_data = _pad(_pad(np.asarray(jax.random.key_data(keys)), 0, Sp), 1, Wp)
    return Placed(
        X=put(_pad(X, 0, Np, 0), P("rows")),
        r=put(_pad(r, 0, Np, 0), P("rows")),
        train_masks=put(_pad(_pad(tm, 0, Wp), 1, Np, False), P("windows", "rows")),
        valid_masks=put(_pad(_pad(vm, 0, Wp), 1, Np, False), P("windows", "rows")),
        hyper=jax.tree_util.tree_map(put, hyper_p, _specs(hyper_p)),
        starts=jax.tree_util.tree_map(lambda a: put(_pad(np.asarray(a), 0, Wp), P("windows")), starts),
        keys=put(key_data, P("settings", "windows")),
        n_settings=S,
        n_windows=W,
    )


def _in_specs(placed: Placed):
    return (P("rows"), P("rows"), P("windows", "rows"), P("windows", "rows"), _specs(placed.hyper))


def _rows_axis(mesh: Mesh) -> str | None:
    """The axis the row sums are added over (``None`` when the rows are not split: then the
    mini-batch trainer, which needs all rows on a device, can run too)."""
    return "rows" if mesh.shape["rows"] > 1 else None


@eqx.filter_jit
def init_sharded(mesh: Mesh, placed: Placed, *, config: TrainConfig) -> TrainState:
    """:func:`~fapm_jax.core.rows.init_block` on every device's block (state ``[Sp, Wp]``)."""

    def block(X, r, tm, vm, hyper, starts, key_data):
        keys = jax.random.wrap_key_data(key_data)
        return init_block(X, r, tm, vm, hyper, starts, keys, config=config, axis_name=_rows_axis(mesh))

    f = jax.shard_map(
        block,
        mesh=mesh,
        in_specs=(*_in_specs(placed), P("windows"), P("settings", "windows")),
        out_specs=P("settings", "windows"),
        check_vma=False,
    )
    p = placed
    return f(p.X, p.r, p.train_masks, p.valid_masks, p.hyper, p.starts, p.keys)


@eqx.filter_jit
def train_sharded(
    mesh: Mesh,
    state: TrainState,
    placed: Placed,
    start,
    limit,
    *,
    config: TrainConfig,
    n_epochs: int,
    n_batches: int = 1,
) -> tuple[TrainState, EpochLog]:
    """A chunk of :func:`~fapm_jax.core.rows.epochs_block` on every device's block; the row
    devices add their sums once per epoch."""

    def block(st, X, r, tm, vm, hyper, start, limit):
        return epochs_block(
            st,
            X,
            r,
            tm,
            vm,
            hyper,
            start,
            limit,
            config=config,
            n_epochs=n_epochs,
            n_batches=n_batches,
            axis_name=_rows_axis(mesh),
        )

    f = jax.shard_map(
        block,
        mesh=mesh,
        in_specs=(P("settings", "windows"), *_in_specs(placed), P(), P()),
        out_specs=P("settings", "windows"),
        check_vma=False,
    )
    p = placed
    return f(state, p.X, p.r, p.train_masks, p.valid_masks, p.hyper, start, limit)


@eqx.filter_jit
def finish_sharded(mesh: Mesh, state: TrainState, placed: Placed, *, config: TrainConfig):
    """:func:`~fapm_jax.core.rows.finish_block` on every device's block."""

    def block(st, X, r, tm, vm, hyper):
        return finish_block(st, X, r, tm, vm, hyper, config=config, axis_name=_rows_axis(mesh))

    f = jax.shard_map(
        block,
        mesh=mesh,
        in_specs=(P("settings", "windows"), *_in_specs(placed)),
        out_specs=P("settings", "windows"),
        check_vma=False,
    )
    p = placed
    return f(state, p.X, p.r, p.train_masks, p.valid_masks, p.hyper)


@functools.lru_cache(maxsize=8)
def _replicate(mesh: Mesh):
    """One compiled identity per mesh that gathers a sharded tree onto every device."""
    return jax.jit(lambda t: t, out_shardings=NamedSharding(mesh, P()))


def unpad(mesh: Mesh, tree, placed: Placed):
    """The first ``S × W`` entries of ``[Sp, Wp, ...]`` arrays (the padding dropped), as host
    arrays in every process: the sharded result is first replicated over the mesh (on several
    hosts, each process then holds all of it)."""
    S, W = placed.n_settings, placed.n_windows
    everywhere = _replicate(mesh)(tree)
    return jax.tree_util.tree_map(lambda a: np.asarray(a.addressable_data(0))[:S, :W], everywhere)
