"""Exact moment-based training of FAPM for small factor sets (full-batch ``1 − R²`` loss).

FAPM's prediction is linear in the features ``φ(x) = (1, x_i, [x_i²], x_i x_j for i < j)``
with coefficients ``θ = (w0, w, [d], <v_i, v_j>)`` (Equation (1)). Over any set of rows

    Σ (r − θᵀφ)² = Σ r² − 2 θᵀ Σ φ r + θᵀ (Σ φ φᵀ) θ,

so the paper's loss ``1 − R²`` on a window's training rows, and its validation R², depend on
the data only through the moments ``(S, b, c) = (Σ φφᵀ, Σ φr, Σ r²)`` of those rows. Rows
that belong to the same windows' training and validation sets (for year-based windows, one
calendar year) form a block; the blocks' moments are computed once, in one pass over the
panel (float64 accumulation of float32 chunks), and each window's moments are sums of
blocks. Every epoch of every window and sweep setting then costs ``O(p²)``, independent of the
number of stocks; ``p = 1 + n + n(n − 1)/2`` is 742 for 38 factors, 821 for 40 (FAPM-m, m ≤ 20).

R² is evaluated as ``(2θᵀb − θᵀSθ) / c``: both terms are of the size of the explained sum
of squares, so float32 loses nothing to the cancellation ``c − …`` would suffer.

The fitted models are those of the row trainer (:func:`~fapm_jax.core.rows.train_epochs`) with
``batch_size=None`` and ``loss="r2"`` up to float rounding (the same starts, steps, masks and
best-epoch rule: both run :func:`~fapm_jax.core.engine.run_epochs`). Memory is
``2 W p²`` floats for the windows plus the blocks' moments, so it suits factor sets up to a
few dozen (:func:`moment_bytes`); mini-batches and the Huber loss need the rows.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .config import Hyper, TrainConfig
from .engine import (
    EpochLog,
    TrainState,
    converge,
    epoch_step,
    finish,
    initial_params,
    over_settings,
    run_epochs,
    scan_epochs,
    start_state,
    window_keys,
)
from .errors import ConfigError
from .linear import Correlations, correlations_from_moments, ols_from_moments
from .model import FAPMParams

#: Default row chunk of the one pass that accumulates the block moments.
CHUNK = 2048


class Moments(NamedTuple):
    """Sums over a set of rows: ``S = Σ φφᵀ`` ``[p, p]``, ``b = Σ φ r`` ``[p]``, ``c = Σ r²``."""

    S: Float[Array, "p p"]
    b: Float[Array, " p"]
    c: Float[Array, ""]


def n_moment_features(n: int, self_interactions: bool = False) -> int:
    """``p``: the length of ``φ(x)`` for ``n`` factors."""
    return 1 + n + (n if self_interactions else 0) + n * (n - 1) // 2


def moment_bytes(n: int, n_windows: int, n_blocks: int, self_interactions: bool = False) -> int:
    """Bytes the moment trainer holds: float32 train and validation moments of every window and
    the float64 block moments."""
    p = n_moment_features(n, self_interactions)
    return 4 * 2 * n_windows * p * p + 8 * n_blocks * p * p


def phi(X: Float[Array, "... n"], self_interactions: bool = False) -> Float[Array, "... p"]:
    """``φ(x) = (1, x, [x²], x_i x_j for i < j)`` (pairs in ``numpy.triu_indices`` order)."""
    n = X.shape[-1]
    iu, ju = np.triu_indices(n, 1)
    parts = [jnp.ones(X.shape[:-1] + (1,), X.dtype), X]
    if self_interactions:
        parts.append(X * X)
    parts.append(X[..., iu] * X[..., ju])
    return jnp.concatenate(parts, axis=-1)


def theta(params: FAPMParams) -> Float[Array, " p"]:
    """The coefficients of ``φ``: ``(w0, w, [d], <v_i, v_j> for i < j)``, so that
    ``predict(params, x) = θᵀ φ(x)``."""
    n = params.w.shape[-1]
    iu, ju = np.triu_indices(n, 1)
    parts = [params.w0[None], params.w]
    if params.d is not None:
        parts.append(params.d)
    parts.append(jnp.sum(params.V[iu] * params.V[ju], axis=-1))
    return jnp.concatenate(parts)


def moment_r2(params: FAPMParams, m: Moments) -> Float[Array, ""]:
    """``1 − Σ(r − r̂)² / Σ r²`` over the rows summarised by ``m``."""
    t = theta(params)
    return (2.0 * t @ m.b - t @ (m.S @ t)) / m.c


@functools.partial(jax.jit, static_argnames=("self_interactions", "linear"))
def _chunk_moments(Xc, rc, wc, self_interactions=False, linear=False, shift=None):
    if shift is not None:  # moments of the shifted data: well conditioned in float32 for any means
        Xc, rc = Xc - shift[0], rc - shift[1]
    F = jnp.concatenate([jnp.ones_like(Xc[:, :1]), Xc], axis=1) if linear else phi(Xc, self_interactions)
    Fw = F * wc[:, None]
    return Fw.T @ F, Fw.T @ rc, jnp.sum(wc * rc * rc)


def mask_patterns(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct membership patterns of the rows across ``masks`` ``[K, N]``: ``patterns``
    ``[B, K]`` (bool, sorted), the rows in some mask (``used``, ``[N]``) and each used row's
    pattern (``inverse``). Runs of consecutive rows with one pattern (a panel sorted by month,
    year-based windows) are found first, so only the runs' patterns are sorted: ``O(K N)``
    instead of a sort of ``N`` rows of ``K`` bits."""
    masks = np.asarray(masks) > 0
    used = masks.any(axis=0)
    M = masks[:, used]
    change = np.ones(M.shape[1], bool)
    change[1:] = (M[:, 1:] != M[:, :-1]).any(axis=0)
    patterns, run_pattern = np.unique(M[:, change].T, axis=0, return_inverse=True)
    return patterns, used, run_pattern.ravel()[np.cumsum(change) - 1]


def block_moments(
    X: np.ndarray,
    r: np.ndarray,
    masks: np.ndarray,
    *,
    self_interactions: bool = False,
    chunk: int = CHUNK,
    linear: bool = False,
) -> tuple[Moments, np.ndarray]:
    """The moments of every block of rows sharing one membership pattern across ``masks``
    ``[K, N]`` (rows in no mask are skipped), as float64 ``Moments`` ``[B]``, and the patterns
    ``[B, K]`` (0/1): any mask's moments are ``patterns[:, k] @ blocks``. ``linear``: of the
    features ``(1, x)`` only (``p = n + 1``; the OLS starts of :func:`window_correlations`),
    each block's chunks taken about the block's own float64 means — so that float32 chunk
    products lose nothing to large means — and turned back into raw float64 sums."""
    masks = np.asarray(masks) > 0
    dt = np.float64 if np.asarray(X).dtype == np.float64 else np.float32
    X = np.asarray(X, dt)
    r = np.asarray(r, dt)
    patterns, used, inverse = mask_patterns(masks)
    rows_used = np.flatnonzero(used)
    order = np.argsort(inverse, kind="stable")  # the used rows grouped by pattern, in order
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(patterns)))])
    p = X.shape[1] + 1 if linear else n_moment_features(X.shape[1], self_interactions)
    S = np.zeros((len(patterns), p, p))
    b = np.zeros((len(patterns), p))
    c = np.zeros(len(patterns))
    for k in range(len(patterns)):
        rows = rows_used[order[bounds[k] : bounds[k + 1]]]
        sh = None
        if linear:
            mean = sum(
                X[rows[lo : lo + chunk]].sum(axis=0, dtype=np.float64) for lo in range(0, rows.size, chunk)
            )
            mean = mean / rows.size
            mean_r = float(r[rows].mean(dtype=np.float64))
            sh = (jnp.asarray(mean, dt), jnp.asarray(mean_r, dt))
            mean = np.asarray(sh[0], np.float64)  # the shift as applied, for the exact inverse
            mean_r = float(np.asarray(sh[1], np.float64))
        for lo in range(0, rows.size, chunk):
            sel = rows[lo : lo + chunk]
            pad = chunk - sel.size
            Xc = np.concatenate([X[sel], np.zeros((pad, X.shape[1]), dt)])
            rc = np.concatenate([r[sel], np.zeros(pad, dt)])
            wc = np.concatenate([np.ones(sel.size, dt), np.zeros(pad, dt)])
            s_, b_, c_ = _chunk_moments(
                Xc, rc, wc, self_interactions=self_interactions, linear=linear, shift=sh
            )
            S[k] += np.asarray(s_, np.float64)
            b[k] += np.asarray(b_, np.float64)
            c[k] += float(c_)
        if linear:  # φ = T φ' with φ' = (1, x − mean), r = r' + mean_r: back to raw sums
            T = np.eye(p)
            T[1:, 0] = mean
            c[k] = c[k] + 2.0 * mean_r * b[k][0] + S[k][0, 0] * mean_r**2
            b[k] = T @ (b[k] + mean_r * S[k][:, 0])
            S[k] = T @ S[k] @ T.T
    return Moments(S, b, c), patterns.astype(np.float64)


def window_moments(
    X: np.ndarray,
    r: np.ndarray,
    train_masks: np.ndarray,
    valid_masks: np.ndarray,
    *,
    self_interactions: bool = False,
    budget: int | None = 6 * 2**30,
) -> tuple[Moments, Moments]:
    """Moments ``[W]`` (in ``X``'s float dtype) of every window's training and validation rows,
    from one pass over the panel. ``budget``: the most bytes to hold (:func:`moment_bytes`); past it, a
    one-line error says to train on the rows."""
    tm, vm = np.asarray(train_masks) > 0, np.asarray(valid_masks) > 0
    W, n = tm.shape[0], np.asarray(X).shape[1]
    if budget is not None:
        n_blocks = len(mask_patterns(np.concatenate([tm, vm]))[0])
        need = moment_bytes(n, W, n_blocks, self_interactions)
        if need > budget:
            raise ConfigError(
                f"moment trainer: {n} factors need {need / 2**30:.1f} GiB of moments "
                f"(p = {n_moment_features(n, self_interactions)}), over the {budget / 2**30:.1f} GiB budget; "
                "train on the rows (method='rows')"
            )
    blocks, pat = block_moments(X, r, np.concatenate([tm, vm]), self_interactions=self_interactions)
    dtype = jnp.asarray(X).dtype

    def combine(weights):
        return Moments(
            S=jnp.asarray(np.einsum("bk,bpq->kpq", weights, blocks.S), dtype),
            b=jnp.asarray(weights.T @ blocks.b, dtype),
            c=jnp.asarray(weights.T @ blocks.c, dtype),
        )

    return combine(pat[:, :W]), combine(pat[:, W:])


def window_correlations(
    X: np.ndarray, r: np.ndarray, masks: np.ndarray, *, chunk: int = 16384
) -> Correlations:
    """The standardised normal equations (:class:`~fapm_jax.core.linear.Correlations`, ``[K]``, in
    ``X``'s float dtype) of the OLS of ``r`` on ``(1, x)`` over each mask's rows: the OLS starts
    of every window (:func:`~fapm_jax.core.linear.ols_from_correlations`), from one pass over the
    panel — block moments of ``(1, x)`` accumulated in float64 (:func:`block_moments`),
    ``2 N n²`` flops in all, where an OLS per window on the rows costs ``W`` times that. Means,
    standard deviations and correlations are formed in float64 before the cast."""
    Xh, rh = np.asarray(X), np.asarray(r)
    blocks, pat = block_moments(Xh, rh, masks, linear=True, chunk=chunk)
    S = np.einsum("bk,bpq->kpq", pat, blocks.S)
    corr = correlations_from_moments(S, pat.T @ blocks.b, Xh.shape[1], xp=np)
    dtype = jnp.asarray(Xh[:1]).dtype
    return Correlations(*(jnp.asarray(a, dtype) for a in corr))


def choose_method(
    config: TrainConfig, n: int, train_masks: np.ndarray, valid_masks: np.ndarray, budget: int = 2 * 2**30
) -> str:
    """``"moments"`` when the configuration allows it (full batch, R² loss) and the moments of
    ``n`` factors fit ``budget`` bytes; else ``"rows"``."""
    if config.batch_size is not None or config.loss != "r2" or config.precision != "highest":
        return "rows"
    masks = np.concatenate([np.asarray(train_masks) > 0, np.asarray(valid_masks) > 0])
    n_blocks = len(mask_patterns(masks)[0])
    return (
        "moments"
        if moment_bytes(n, masks.shape[0] // 2, n_blocks, config.self_interactions) <= budget
        else "rows"
    )


def check_config(config: TrainConfig) -> None:
    """The moment trainer covers the full-batch ``1 − R²`` loss only."""
    if config.batch_size is not None:
        raise ConfigError(
            f"moment trainer: batch_size={config.batch_size}: it trains full batch only (batch_size=None)"
        )
    if config.loss != "r2":
        raise ConfigError(f"moment trainer: loss={config.loss!r}: it trains the R² loss only")
    if config.precision != "highest":
        raise ConfigError(
            f"moment trainer: precision={config.precision!r}: its moments are float64 sums "
            "(reduced precision is a row-trainer option)"
        )


def init_state_moments(
    train: Moments, valid: Moments, hyper: Hyper, key: PRNGKeyArray, *, config: TrainConfig, n: int
) -> TrainState:
    """:func:`~fapm_jax.core.rows.init_state` from one window's moments (the Huber threshold is not
    used by the R² loss and is left NaN)."""
    dtype = train.S.dtype
    f = None if hyper.features is None else hyper.features.astype(dtype)
    w0, w = ols_from_moments(train, n, columns=f)
    params, linear, k_shuffle = initial_params(key, n, w0, w, hyper, config=config, dtype=dtype)
    return start_state(params, linear, moment_r2(linear, valid), jnp.nan, hyper, k_shuffle, config=config)


def moment_fns(train: Moments, valid: Moments) -> dict:
    """The epoch keywords of :func:`~fapm_jax.core.engine.epoch_step` from one window's moments
    (full batch, R² loss: the gradient of ``1 − R²`` by autodiff of the quadratic form)."""

    def loss(p, _):
        return 1.0 - moment_r2(p, train), train.c > 0

    return dict(
        value_and_grad_fn=jax.value_and_grad(loss, has_aux=True),
        r2_fn=lambda p: (moment_r2(p, train), moment_r2(p, valid)),
    )


def train_epochs_moments(
    state: TrainState, train: Moments, valid: Moments, hyper: Hyper, *, config: TrainConfig, n_epochs: int
) -> tuple[TrainState, EpochLog]:
    """:func:`~fapm_jax.core.rows.train_epochs` (full batch, R² loss) from one window's moments."""
    return run_epochs(state, hyper, n_epochs=n_epochs, config=config, **moment_fns(train, valid))


@eqx.filter_jit
def init_all(train: Moments, valid: Moments, hyper: Hyper, *, config: TrainConfig, n: int):
    """Every (setting, window) state, vmapped (the row trainer's keys: the same ``V`` draws)."""

    def one_setting(h):
        keys = window_keys(h.seed, train.c.shape[0])
        return jax.vmap(
            lambda tr, va, k, f: init_state_moments(tr, va, h._replace(features=f), k, config=config, n=n)
        )(train, valid, keys, h.features)

    return over_settings(one_setting, hyper, batch=config.settings_batch)


def _all(fn, state, train: Moments, valid: Moments, hyper: Hyper, batch: int | None):
    """``fn`` of every (setting, window): settings ``batch`` at a time
    (:func:`~fapm_jax.core.engine.over_settings`), windows vmapped."""

    def one_setting(st, h):
        return jax.vmap(lambda s, tr, va, f: fn(s, tr, va, h._replace(features=f)))(
            st, train, valid, h.features
        )

    return over_settings(one_setting, state, hyper, batch=batch)


@eqx.filter_jit
def epochs_all(
    state, train: Moments, valid: Moments, hyper: Hyper, start, limit, *, config: TrainConfig, n_epochs: int
):
    """A chunk of ``n_epochs`` epochs of every (setting, window), vmapped
    (:func:`~fapm_jax.core.engine.scan_epochs`: epochs from ``limit`` on are skipped)."""

    def one(s, tr, va, h):
        return epoch_step(s, h, config=config, **moment_fns(tr, va))

    return scan_epochs(
        lambda st: _all(one, st, train, valid, hyper, config.settings_batch), state, n_epochs, start, limit
    )


@eqx.filter_jit
def finish_all(state, train: Moments, valid: Moments, hyper: Hyper, batch: int | None = None):
    """No model is left pending by the moment trainer (it evaluates after each step); kept so
    that every trainer ends the same way."""
    fn = lambda s, tr, va, h: finish(s, moment_fns(tr, va)["r2_fn"])  # noqa: E731
    return _all(fn, state, train, valid, hyper, batch)


@eqx.filter_jit
def converge_all(state, train: Moments, valid: Moments, hyper: Hyper, label, batch: int | None = None):
    """Every (setting, window)'s converged candidate (:func:`~fapm_jax.core.engine.converge`):
    the penalised ``1 − R²`` of the window's training moments minimised from the last iterate,
    logged as epoch ``label``. Returns the state, the log and the
    :class:`~fapm_jax.core.solve.SolveLog`, each ``[S, W]``."""

    def one(s, tr, va, h):
        fns = moment_fns(tr, va)
        return converge(s, h, label, data_loss=lambda p: 1.0 - moment_r2(p, tr), r2_fn=fns["r2_fn"])

    return _all(one, state, train, valid, hyper, batch)
