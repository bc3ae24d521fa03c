"""What every comparison model shares: the fit/predict protocol, linear parameters, validation
choice over a hyperparameter grid, the Huber threshold, and the rolling driver.

A model (GKX 2020, section 1 and Internet Appendix Table A.5) is a frozen dataclass holding its
hyperparameter grid; it is static under ``jit``. Its ``fit`` is written for **one data set and
one window** — rows enter through 0/1 ``train``/``valid`` masks over one shared ``X`` — fits
every grid point on the training rows, and keeps the one with the smallest validation sum of
squared errors (equivalently the largest validation R², whatever the benchmark). Windows are
batched with ``vmap`` (:func:`fit_rolling`); so are the simulation's repetitions.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..core.linear import fit_ols
from ..core.masked import masked_quantile

#: GKX's Huber threshold rule (Table A.5): the 99.9% quantile of absolute residuals.
HUBER_QUANTILE = 0.999


class Fit(NamedTuple):
    """One window's fitted model: the chosen grid point's ``params``, the validation SSE of
    every grid point (``[G]``; ``inf`` where a fit failed) and the chosen index."""

    params: Any
    valid_sse: Float[Array, " G"]
    choice: Int[Array, ""]


class LinearParams(NamedTuple):
    """A linear forecast ``ŷ = b0 + X b`` over all ``P`` input columns."""

    b0: Float[Array, ""]
    b: Float[Array, " P"]


def linear_predict(params: LinearParams, X: Float[Array, "N P"]) -> Float[Array, " N"]:
    return params.b0 + X @ params.b


class Model(Protocol):
    """The protocol of a comparison model.

    ``name`` labels it in tables (GKX's names: ``OLS+H``, ``ENet+H``, ``NN3`` …); ``is_jax``
    says whether ``fit`` is pure JAX (vmappable over windows) or host code (trees).
    """

    name: str
    is_jax: bool

    def fit(
        self,
        X: Float[Array, "N P"],
        y: Float[Array, " N"],
        train: Float[Array, " N"],
        valid: Float[Array, " N"],
        key: PRNGKeyArray,
    ) -> Fit: ...

    def predict(self, params: Any, X: Float[Array, "N P"]) -> Float[Array, " N"]: ...


def masked_sse(
    y: Float[Array, " N"], y_hat: Float[Array, " N"], mask: Float[Array, " N"]
) -> Float[Array, ""]:
    """``Σ mask·(y − ŷ)²``."""
    d = y - y_hat
    return jnp.sum(mask * d * d)


def choose(grid_params: Any, valid_sse: Float[Array, " G"]) -> Fit:
    """The grid point with the smallest validation SSE (non-finite SSEs never win)."""
    sse = jnp.where(jnp.isfinite(valid_sse), valid_sse, jnp.inf)
    i = jnp.argmin(sse)
    return Fit(jax.tree_util.tree_map(lambda a: a[i], grid_params), sse, i.astype(jnp.int32))


def huber_threshold(
    X: Float[Array, "N P"],
    y: Float[Array, " N"],
    train: Float[Array, " N"],
    quantile: float = HUBER_QUANTILE,
) -> Float[Array, ""]:
    """GKX's Huber threshold ``ξ``: the ``quantile`` of the absolute residuals of OLS of ``y``
    on ``X`` over the training rows (Table A.5: the 99.9% quantile)."""
    b0, b = fit_ols(X, y, train)
    return masked_quantile(jnp.abs(y - b0 - X @ b), train, quantile)


def model_huber_xi(model, X: Float[Array, "N P"], y: Float[Array, " N"], train: Float[Array, " N"]):
    """The Huber threshold of a model with fields ``huber``, ``huber_xi``, ``huber_quantile``:
    ``None`` for squared loss, the fixed ``huber_xi``, or GKX's quantile rule."""
    if not model.huber:
        return None
    if model.huber_xi is not None:
        return jnp.asarray(model.huber_xi, X.dtype)
    return huber_threshold(X, y, train, model.huber_quantile)


def solver_tol(tol: float | None, dtype) -> float | None:
    """A relative stopping tolerance no finer than the dtype allows (``64·eps``)."""
    return None if tol is None else max(tol, 64 * float(jnp.finfo(dtype).eps))


class RollingFit(NamedTuple):
    """All windows of one model: ``params`` and ``valid_sse`` with a leading ``[W]`` axis."""

    params: Any
    valid_sse: np.ndarray
    choice: np.ndarray


@eqx.filter_jit
def _fit_windows(model, X, y, train_masks, valid_masks, keys):
    return jax.vmap(model.fit, in_axes=(None, None, 0, 0, 0))(X, y, train_masks, valid_masks, keys)


@eqx.filter_jit
def _predict_rows(model, params, X, test_masks):
    def add(acc, inputs):
        p, m = inputs
        return acc + jnp.where(m > 0, model.predict(p, X), 0.0), None

    out, _ = jax.lax.scan(add, jnp.zeros(X.shape[0], X.dtype), (params, test_masks))
    return out


def fit_rolling(
    model: Model,
    X: Float[Array, "N P"],
    y: Float[Array, " N"],
    train_masks: Bool[Array, "W N"],
    valid_masks: Bool[Array, "W N"],
    key: PRNGKeyArray,
    window_chunk: int | None = None,
) -> RollingFit:
    """Fit ``model`` on every window: one compiled, vmapped program for JAX models, a loop over
    windows for host models. Window ``w`` gets ``jax.random.fold_in(key, w)``.

    ``window_chunk``: JAX models fit ``window_chunk`` windows per vmapped call, the calls in a
    host loop (one compilation: a short last chunk is padded with copies of its last window);
    ``None``: all windows in one call. The result does not depend on it. Chunks of one suit
    early-stopping trainers on a CPU, where vmapped windows run in lockstep until the slowest
    member stops (see :func:`~fapm_jax.studies.comparison.run_comparison`).
    """
    W = train_masks.shape[0]
    keys = jax.vmap(lambda w: jax.random.fold_in(key, w))(jnp.arange(W))
    dtype = jnp.asarray(X).dtype
    tm = jnp.asarray(train_masks, dtype)
    vm = jnp.asarray(valid_masks, dtype)
    if model.is_jax:
        X, y = jnp.asarray(X), jnp.asarray(y)
        k = W if window_chunk is None else max(1, min(int(window_chunk), W))
        parts = []
        for lo in range(0, W, k):
            idx = jnp.minimum(jnp.arange(lo, lo + k), W - 1)  # pad the last chunk
            parts.append(_fit_windows(model, X, y, tm[idx], vm[idx], keys[idx]))
        fit = (
            parts[0] if len(parts) == 1 else jax.tree_util.tree_map(lambda *a: jnp.concatenate(a)[:W], *parts)
        )
    else:
        fits = [model.fit(X, y, tm[w], vm[w], keys[w]) for w in range(W)]
        fit = Fit(
            params=[f.params for f in fits],
            valid_sse=np.stack([np.asarray(f.valid_sse) for f in fits]),
            choice=np.array([int(f.choice) for f in fits]),
        )
    return RollingFit(fit.params, np.asarray(fit.valid_sse), np.asarray(fit.choice))


def predict_rolling(
    model: Model, fit: RollingFit, X: Float[Array, "N P"], test_masks: Bool[Array, "W N"]
) -> np.ndarray:
    """Each row's forecast by the model of the window whose test block holds it (0 elsewhere).

    JAX models: a ``lax.scan`` over windows (memory ``O(N)``); host models: a loop.
    """
    if model.is_jax:
        X = jnp.asarray(X)
        return np.asarray(_predict_rows(model, fit.params, X, jnp.asarray(test_masks, X.dtype)))
    X = np.asarray(X)
    out = np.zeros(X.shape[0], X.dtype)
    for w, m in enumerate(np.asarray(test_masks)):
        rows = np.flatnonzero(m)
        out[rows] = model.predict(fit.params[w], X[rows])
    return out
