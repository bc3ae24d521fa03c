"""What every comparison model shares (GKX 2020, section 1; Internet Appendix Table A.5): the
abstract contract and its two families, linear parameters, validation choice over a
hyperparameter grid, the Huber threshold, and the drivers over windows.

A model is an :class:`equinox.Module` holding its hyperparameter grid in Python scalars,
strings and tuples, so it is hashable and static under ``eqx.filter_jit``: fitting an equal
model again reuses the compiled program. Its ``fit`` is written for **one data set and one
window** — rows enter through 0/1 ``train``/``valid`` masks over one shared ``X`` — fits every
grid point on the training rows and keeps the one with the smallest validation sum of squared
errors (equivalently the largest validation R², whatever the benchmark). How windows (and the
simulation's repetitions) are batched belongs to the model's family, as the stepping of an ODE
belongs to a diffrax ``AbstractSolver``:

* :class:`AbstractJaxModel` — ``fit`` is a pure JAX function: all windows are one ``vmap``-ed,
  compiled program, the forecasts one ``lax.scan`` over windows;
* :class:`AbstractHostModel` — ``fit`` runs host libraries (the trees): a loop over windows.
"""

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from equinox import AbstractClassVar, AbstractVar
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


class RollingFit(NamedTuple):
    """All windows of one model: ``params`` with a leading ``[W]`` axis (JAX models) or a list
    of ``W`` per-window parameters (host models); ``valid_sse`` ``[W, G]``; ``choice`` ``[W]``."""

    params: Any
    valid_sse: np.ndarray
    choice: np.ndarray


class LinearParams(NamedTuple):
    """A linear forecast ``ŷ = b0 + X b`` over all ``P`` input columns."""

    b0: Float[Array, ""]
    b: Float[Array, " P"]


def linear_predict(params: LinearParams, X: Float[Array, "N P"]) -> Float[Array, " N"]:
    return params.b0 + X @ params.b


# ----------------------------------------------------------------------------- the contract


def fields_repr(obj: eqx.Module, label: str, is_jax_after: str | None) -> str:
    """``label(field=value, …)`` as a frozen dataclass prints it, with ``is_jax=…`` after the
    field ``is_jax_after`` (``""``: after the last field; ``None``: not listed)."""
    parts = []
    for f in dataclasses.fields(obj):
        if f.repr:
            parts.append(f"{f.name}={getattr(obj, f.name)!r}")
        if f.name == is_jax_after:
            parts.append(f"is_jax={obj.is_jax!r}")
    if is_jax_after == "":
        parts.append(f"is_jax={obj.is_jax!r}")
    return f"{label}({', '.join(parts)})"


class AbstractModel(eqx.Module):
    """The contract of a comparison model (GKX section 1; grids of Table A.5).

    ``name`` labels it in tables (GKX's names: ``OLS+H``, ``ENet+H``, ``NN3`` …). ``fit`` and
    ``predict`` handle one window; ``fit_windows``, ``predict_windows`` and
    ``fit_predict_datasets`` batch them, implemented once per family. ``is_jax`` names the
    family (callers dispatch through these methods, not on it).
    """

    name: AbstractVar[str]
    is_jax: AbstractClassVar[bool]

    #: Where ``repr`` lists ``is_jax`` (see :func:`fields_repr`): where the frozen dataclasses
    #: that the models were had it as a field, so that the fingerprints of saved results (the
    #: resumable comparison and simulation cells) stay valid.
    _repr_is_jax_after: ClassVar[str | None] = ""

    @abc.abstractmethod
    def fit(
        self,
        X: Float[Array, "N P"],
        y: Float[Array, " N"],
        train: Float[Array, " N"],
        valid: Float[Array, " N"],
        key: PRNGKeyArray | None,
    ) -> Fit:
        """Fit every grid point on the rows of ``train``; keep the best on ``valid``."""

    @abc.abstractmethod
    def predict(self, params: Any, X: Float[Array, "N P"]) -> Float[Array, " N"]:
        """The forecast of every row of ``X`` by the fitted ``params``."""

    @abc.abstractmethod
    def fit_windows(
        self,
        X: Float[Array, "N P"],
        y: Float[Array, " N"],
        train_masks: Bool[Array, "W N"],
        valid_masks: Bool[Array, "W N"],
        key: PRNGKeyArray,
        window_chunk: int | None = None,
    ) -> RollingFit:
        """Fit every window; window ``w`` gets ``jax.random.fold_in(key, w)``."""

    @abc.abstractmethod
    def predict_windows(
        self, params: Any, X: Float[Array, "N P"], test_masks: Bool[Array, "W N"]
    ) -> np.ndarray:
        """Each row's forecast by the model of the window whose test block holds it (0 elsewhere)."""

    @abc.abstractmethod
    def fit_predict_datasets(
        self,
        X: Float[Array, "R N P"],
        y: Float[Array, "R N"],
        train: Float[Array, " N"],
        valid: Float[Array, " N"],
        keys: PRNGKeyArray,
    ) -> np.ndarray:
        """``[R, N]``: fit each of ``R`` data sets on the shared masks (data set ``r`` with
        ``keys[r]``) and forecast all its rows — the simulation's repetitions (Table A.1)."""

    def window_bytes(self, n_rows: int, n_cols: int, itemsize: int = 4) -> int:
        """Working memory of one window's fit, to size vmapped window chunks (0: not stated)."""
        return 0

    def __repr__(self) -> str:
        return fields_repr(self, type(self).__qualname__, self._repr_is_jax_after)


#: The former name of the contract (a ``Protocol``).
Model = AbstractModel


def window_keys(key: PRNGKeyArray, n: int) -> PRNGKeyArray:
    """``[n]`` keys, ``jax.random.fold_in(key, w)`` for window (or data set) ``w``."""
    return jax.vmap(lambda w: jax.random.fold_in(key, w))(jnp.arange(n))


@eqx.filter_jit
def predict_by_window(
    predict: Callable[[Any, Float[Array, "N P"]], Float[Array, " N"]],
    params: Any,
    X: Float[Array, "N P"],
    test_masks: Bool[Array, "W N"],
) -> Float[Array, " N"]:
    """Each row's forecast ``predict(params_w, X)`` by the window ``w`` whose test mask holds it
    (``params`` with a leading ``[W]`` axis); rows in no test block get 0. A ``lax.scan`` over
    windows keeps memory at ``O(N)`` (no ``[W, N]`` forecast matrix). Serves every JAX model
    and FAPM's rolling study (:func:`~fapm_jax.studies.rolling.predict_test_rows`)."""

    def add(acc, inputs):
        p, m = inputs
        return acc + jnp.where(m > 0, predict(p, X), 0.0), None

    out, _ = jax.lax.scan(add, jnp.zeros(X.shape[0], X.dtype), (params, test_masks))
    return out


@eqx.filter_jit
def _fit_window_chunk(model, X, y, train_masks, valid_masks, keys):
    """One compiled call: ``model.fit`` vmapped over a chunk of windows (masks and keys)."""
    return jax.vmap(model.fit, in_axes=(None, None, 0, 0, 0))(X, y, train_masks, valid_masks, keys)


@eqx.filter_jit
def _fit_predict_each_dataset(model, X, y, train, valid, keys):
    """One compiled call: fit and forecast vmapped over data sets (``X``, ``y``, ``keys``)."""

    def one(X, y, key):
        return model.predict(model.fit(X, y, train, valid, key).params, X)

    return jax.vmap(one)(X, y, keys)


class AbstractJaxModel(AbstractModel):
    """A model whose ``fit`` is a pure JAX function of ``(X, y, masks, key)``: windows and data
    sets are vmapped, one compiled program per model and shape."""

    is_jax: ClassVar[bool] = True

    def fit_windows(self, X, y, train_masks, valid_masks, key, window_chunk=None) -> RollingFit:
        """All windows vmapped: ``window_chunk`` windows per compiled call, the calls in a host
        loop (one compilation: a short last chunk is padded with copies of its last window);
        ``None``: all windows in one call. The result does not depend on it. Chunks of one suit
        early-stopping trainers on a CPU, where vmapped windows run in lockstep until the
        slowest member stops (see :func:`~fapm_jax.studies.comparison.run_comparison`)."""
        W = train_masks.shape[0]
        keys = window_keys(key, W)
        X, y = jnp.asarray(X), jnp.asarray(y)
        tm = jnp.asarray(train_masks, X.dtype)
        vm = jnp.asarray(valid_masks, X.dtype)
        k = W if window_chunk is None else max(1, min(int(window_chunk), W))
        parts = []
        for lo in range(0, W, k):
            idx = jnp.minimum(jnp.arange(lo, lo + k), W - 1)  # pad the last chunk
            parts.append(_fit_window_chunk(self, X, y, tm[idx], vm[idx], keys[idx]))
        fit = parts[0]
        if len(parts) > 1:
            fit = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a)[:W], *parts)
        return RollingFit(fit.params, np.asarray(fit.valid_sse), np.asarray(fit.choice))

    def predict_windows(self, params, X, test_masks) -> np.ndarray:
        """A ``lax.scan`` over windows (:func:`predict_by_window`; memory ``O(N)``)."""
        X = jnp.asarray(X)
        return np.asarray(predict_by_window(self.predict, params, X, jnp.asarray(test_masks, X.dtype)))

    def fit_predict_datasets(self, X, y, train, valid, keys) -> np.ndarray:
        """All data sets in one vmapped, compiled call."""
        out = _fit_predict_each_dataset(
            self, jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), jnp.asarray(valid), keys
        )
        return np.asarray(out)


class AbstractHostModel(AbstractModel):
    """A model fitted by host libraries (GKX's trees: scikit-learn, LightGBM): windows and data
    sets in a Python loop, on numpy copies of the data."""

    is_jax: ClassVar[bool] = False

    def fit_windows(self, X, y, train_masks, valid_masks, key, window_chunk=None) -> RollingFit:
        """One window after another (``window_chunk`` is ignored); ``params`` is a list."""
        keys = window_keys(key, train_masks.shape[0])
        X, y = np.asarray(X), np.asarray(y)
        tm = np.asarray(train_masks, np.float32)
        vm = np.asarray(valid_masks, np.float32)
        fits = [self.fit(X, y, tm[w], vm[w], keys[w]) for w in range(tm.shape[0])]
        return RollingFit(
            params=[f.params for f in fits],
            valid_sse=np.stack([np.asarray(f.valid_sse) for f in fits]),
            choice=np.array([int(f.choice) for f in fits]),
        )

    def predict_windows(self, params, X, test_masks) -> np.ndarray:
        """Each window's model on its own test rows only."""
        X = np.asarray(X)
        out = np.zeros(X.shape[0], X.dtype)
        for w, m in enumerate(np.asarray(test_masks)):
            rows = np.flatnonzero(m)
            out[rows] = self.predict(params[w], X[rows])
        return out

    def fit_predict_datasets(self, X, y, train, valid, keys) -> np.ndarray:
        """One data set after another."""
        X, y, train, valid = (np.asarray(a) for a in (X, y, train, valid))
        preds = []
        for r in range(X.shape[0]):
            fit = self.fit(X[r], y[r], train, valid, keys[r])
            preds.append(np.asarray(self.predict(fit.params, X[r])))
        return np.stack(preds)


def fit_rolling(
    model: AbstractModel,
    X: Float[Array, "N P"],
    y: Float[Array, " N"],
    train_masks: Bool[Array, "W N"],
    valid_masks: Bool[Array, "W N"],
    key: PRNGKeyArray,
    window_chunk: int | None = None,
) -> RollingFit:
    """Fit ``model`` on every window (:meth:`AbstractModel.fit_windows`)."""
    return model.fit_windows(X, y, train_masks, valid_masks, key, window_chunk)


def predict_rolling(
    model: AbstractModel, fit: RollingFit, X: Float[Array, "N P"], test_masks: Bool[Array, "W N"]
) -> np.ndarray:
    """Each row's forecast by the model of the window whose test block holds it (0 elsewhere;
    :meth:`AbstractModel.predict_windows`)."""
    return model.predict_windows(fit.params, X, test_masks)


# ----------------------------------------------------------------------------- shared pieces


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
