"""Regression trees: random forest (RF) and gradient-boosted trees (GBRT, GBRT+H) (GKX 2020,
section 1.6; Internet Appendix Table A.5).

Trees are not written here: RF is scikit-learn's ``RandomForestRegressor`` and GBRT is
LightGBM, both well kept and far faster than anything hand-rolled. They are host models
(:class:`~fapm_jax.baselines.base.AbstractHostModel`: windows run in a loop), and ``fit``
gathers the rows of its ``train`` / ``valid`` masks into numpy, so rows outside both
masks never reach the libraries (they may even hold NaN).

GKX's grids (Table A.5), chosen by validation SSE like every other model:

* **RF**: 300 trees; depth 1–6; features per split {3, 5, 10, 20, 30, 50} (values above the
  number of input columns ``P`` are clipped to ``P`` and duplicates dropped, so ``G ≤ 36``).
* **GBRT**: depth 1–2 (``num_leaves = 2**depth``); learning rate {0.01, 0.1}; 1–1000 trees.
  The number of trees is chosen *without refitting*: one booster of ``n_trees`` trees per
  (depth, learning rate) and the validation SSE of every prefix of it (the first ``k`` trees
  are exactly the model trained for ``k`` rounds, as boosting is sequential and nothing is
  sampled). ``huber=True`` ("GBRT+H") boosts LightGBM's Huber objective with ``alpha = ξ``;
  LightGBM's ``½e²`` / ``ξ(|e| − ½ξ)`` is GKX's ``H(e; ξ)`` halved, so the same minimiser.
  ``ξ`` is fixed, or the 99.9% quantile of the absolute OLS residuals on the training rows
  (:func:`~fapm_jax.baselines.base.huber_threshold`, as for OLS+H).

Reproducibility: the integer seed is drawn from the ``key`` (same key, same fit). RF's trees
do not depend on ``n_jobs`` (sklearn draws every tree's seed up front) and its forecasts are
averaged over trees in a fixed order (:func:`forest_predict`), so they are bitwise the same
for any ``n_jobs``; LightGBM runs with ``deterministic=True`` and forced column-wise
histograms, reproducible for a fixed ``n_jobs``.

Both libraries are optional: install them with ``pip install "fapm-jax[trees]"``. They are
imported when a model is fitted, so this module always imports.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .base import HUBER_QUANTILE, AbstractHostModel, Fit, huber_threshold

_EXTRA = 'pip install "fapm-jax[trees]"'

#: Rows × trees per block when GBRT evaluates every prefix of a booster on the validation rows.
_STAGED_BLOCK = 1 << 22


def _require(module: str, model: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{model} needs {module.split('.')[0]}, which is not installed: {_EXTRA}") from e


def key_seed(key: PRNGKeyArray | None) -> int:
    """A non-negative int32 seed drawn from ``key`` (``0`` for ``None``), for host libraries;
    the same with or without JAX's float64 mode."""
    if key is None:
        return 0
    return int(jax.random.randint(key, (), 0, 2**31 - 1, dtype=jnp.int32))


def _rows(X, y, train, valid, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The training and validation rows as numpy (``X`` keeps its float dtype, ``y`` float64)."""
    X = np.asarray(X)
    y = np.asarray(y, np.float64)
    tr = np.flatnonzero(np.asarray(train) > 0)
    va = np.flatnonzero(np.asarray(valid) > 0)
    if tr.size == 0 or va.size == 0:
        raise ValueError(f"{model}: needs training and validation rows, got {tr.size} and {va.size}")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    return X[tr], y[tr], X[va], y[va]


def _threads(n_jobs: int | None) -> int:
    if n_jobs is None or n_jobs == 0:
        return 1
    return n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)


# ----------------------------------------------------------------------------- random forest


class RFParams(NamedTuple):
    """The chosen forest (a fitted ``RandomForestRegressor``) and its grid point."""

    forest: Any
    max_depth: int
    max_features: int


def forest_predict(
    forest: Any, X: Float[np.ndarray, "N P"], n_jobs: int | None = 1
) -> Float[np.ndarray, " N"]:
    """The forest's mean forecast, summed over trees in their order for every row.

    Bitwise equal to ``forest.predict`` with ``n_jobs=1``; sklearn's threaded predict adds the
    trees in completion order, so its last bits vary from run to run. Here threads split the
    rows instead (tree traversal releases the GIL), which keeps the order fixed.
    """
    X = np.ascontiguousarray(X, np.float32)  # sklearn trees work in float32
    trees = forest.estimators_

    def block(lo: int, hi: int) -> np.ndarray:
        out = np.zeros(hi - lo, np.float64)
        Xb = X[lo:hi]
        for t in trees:
            out += t.predict(Xb, check_input=False)
        return out

    n, k = X.shape[0], _threads(n_jobs)
    if k == 1 or n < 4096:
        out = block(0, n)
    else:
        edges = np.linspace(0, n, min(4 * k, n // 1024) + 1).astype(int)
        with ThreadPoolExecutor(k) as pool:
            parts = list(pool.map(block, edges[:-1], edges[1:]))
        out = np.concatenate(parts)
    out /= len(trees)
    return out


class RF(AbstractHostModel):
    """Random forest (GKX section 1.6.1): ``n_estimators`` bootstrap trees, each split drawn
    from ``max_features`` random columns, grown to ``max_depth``; the forecast is their mean.

    The grid is ``max_depth × max_features`` (depth-major, see :meth:`grid`), each point fitted
    with the same seed, and the point with the smallest validation SSE is kept (only that
    forest is held in memory). Defaults are GKX's. ``max_samples``: rows per bootstrap draw
    (sklearn's meaning: a fraction or a count; ``None`` = all training rows, as GKX) — a
    fraction well below one cuts the cost on the full panel. ``n_jobs``: threads (``-1``: all
    cores; the forecasts do not depend on it).
    """

    name: str = "RF"
    n_estimators: int = 300
    max_depth: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    max_features: tuple[int, ...] = (3, 5, 10, 20, 30, 50)
    max_samples: float | int | None = None
    n_jobs: int = -1

    def grid(self, P: int) -> list[tuple[int, int]]:
        """The ``(max_depth, max_features)`` grid for ``P`` input columns, in ``valid_sse``
        order; ``max_features`` above ``P`` is clipped to ``P`` and duplicates dropped."""
        feats = list(dict.fromkeys(min(int(m), P) for m in self.max_features))
        return [(int(d), f) for d, f in itertools.product(self.max_depth, feats)]

    def fit(
        self,
        X: Float[Array, "N P"],
        y: Float[Array, " N"],
        train: Float[Array, " N"],
        valid: Float[Array, " N"],
        key: PRNGKeyArray | None,
    ) -> Fit:
        ensemble = _require("sklearn.ensemble", self.name)
        Xt, yt, Xv, yv = _rows(X, y, train, valid, self.name)
        seed = key_seed(key)
        grid = self.grid(Xt.shape[1])
        sse = np.empty(len(grid))
        best = None
        for g, (depth, feats) in enumerate(grid):
            forest = ensemble.RandomForestRegressor(
                n_estimators=self.n_estimators,
                max_depth=depth,
                max_features=feats,
                max_samples=self.max_samples,
                bootstrap=True,
                n_jobs=self.n_jobs,
                random_state=seed,
            ).fit(Xt, yt)
            e = yv - forest_predict(forest, Xv, self.n_jobs)
            sse[g] = e @ e
            if best is None or sse[g] < sse[best[0]]:
                best = (g, RFParams(forest, depth, feats))
            del forest
        return Fit(best[1], sse, best[0])

    def predict(self, params: RFParams, X: Float[Array, "N P"]) -> Float[np.ndarray, " N"]:
        return forest_predict(params.forest, np.asarray(X), self.n_jobs)


# ----------------------------------------------------------------------------- boosted trees


class GBRTParams(NamedTuple):
    """The chosen booster (a ``lightgbm.Booster``; forecasts use its first ``n_trees`` trees),
    its grid point and the Huber threshold (``None`` for squared loss)."""

    booster: Any
    max_depth: int
    learning_rate: float
    n_trees: int
    huber_alpha: float | None


def staged_sse(
    booster: Any, X: Float[np.ndarray, "N P"], y: Float[np.ndarray, " N"]
) -> Float[np.ndarray, " T"]:
    """``Σ (y − ŷ_k)²`` for every prefix ``k = 1..T`` of a regression booster's trees.

    ``ŷ_k`` is exactly ``booster.predict(X, num_iteration=k)`` (each row's leaf values are
    summed in tree order, as LightGBM does), at the cost of one ``pred_leaf`` pass: rows go in
    blocks of at most ``2**22`` row × tree entries.
    """
    T = booster.num_trees()
    info = booster.dump_model()["tree_info"]
    L = max(t["num_leaves"] for t in info)
    leaf = np.zeros((T, L))
    for t, ti in enumerate(info):
        for j in range(ti["num_leaves"]):
            leaf[t, j] = booster.get_leaf_output(t, j)
    flat = leaf.ravel()
    offset = (np.arange(T) * L)[None, :]
    sse = np.zeros(T)
    step = max(1, _STAGED_BLOCK // max(T, 1))
    for lo in range(0, X.shape[0], step):
        idx = booster.predict(X[lo : lo + step], pred_leaf=True).reshape(-1, T)
        y_hat = np.cumsum(flat[idx + offset], axis=1)
        e = y[lo : lo + step, None] - y_hat
        sse += np.einsum("nt,nt->t", e, e)
    return sse


class GBRT(AbstractHostModel):
    """Gradient-boosted regression trees (GKX section 1.6.2), by LightGBM.

    For each ``(max_depth, learning_rate)`` grid point (depth-major, see :meth:`grid`) one
    booster of ``n_trees`` trees of depth ``d`` (``num_leaves = 2**d``) is grown on the
    training rows; its validation SSE is evaluated after every tree (:func:`staged_sse`), the
    best count is that point's SSE (``valid_sse[g]``), and the point with the smallest SSE is
    kept with its count. Nothing is subsampled, so the seed only pins LightGBM's bin sampling on
    very large data. ``huber``: Huber objective ("GBRT+H") with threshold ``huber_xi`` or, when
    ``None``, the ``huber_quantile`` of the absolute OLS residuals on the training rows.
    ``n_jobs``: LightGBM threads (``-1``: all cores). Defaults are GKX's.
    """

    name: str = "GBRT"
    max_depth: tuple[int, ...] = (1, 2)
    learning_rate: tuple[float, ...] = (0.01, 0.1)
    n_trees: int = 1000
    huber: bool = False
    huber_xi: float | None = None
    huber_quantile: float = HUBER_QUANTILE
    n_jobs: int = -1

    def grid(self) -> list[tuple[int, float]]:
        """The ``(max_depth, learning_rate)`` grid, in ``valid_sse`` order."""
        return [(int(d), float(lr)) for d, lr in itertools.product(self.max_depth, self.learning_rate)]

    def threshold(
        self, X: Float[np.ndarray, "N P"], y: Float[np.ndarray, " N"], train: Float[np.ndarray, " N"]
    ) -> float:
        """The Huber threshold ``ξ`` of the training rows of the full ``X``, ``y``.

        Computed on the full-size arrays with the mask (rows outside it zeroed), so every
        window has the same shapes and JAX compiles the rule once, not once per window.
        """
        if self.huber_xi is not None:
            return float(self.huber_xi)
        m = np.asarray(train) > 0
        Xj = jnp.asarray(np.where(m[:, None], np.asarray(X), 0))
        yj = jnp.asarray(np.where(m, np.asarray(y), 0), Xj.dtype)
        return float(huber_threshold(Xj, yj, jnp.asarray(m, Xj.dtype), self.huber_quantile))

    def fit(
        self,
        X: Float[Array, "N P"],
        y: Float[Array, " N"],
        train: Float[Array, " N"],
        valid: Float[Array, " N"],
        key: PRNGKeyArray | None,
    ) -> Fit:
        lgb = _require("lightgbm", self.name)
        Xt, yt, Xv, yv = _rows(X, y, train, valid, self.name)
        seed = key_seed(key)
        alpha = self.threshold(X, y, train) if self.huber else None
        base: dict[str, Any] = dict(
            objective="huber" if self.huber else "regression",
            metric="None",
            seed=seed,
            deterministic=True,
            force_col_wise=True,
            num_threads=_threads(self.n_jobs),
            verbose=-1,
        )
        if alpha is not None:
            base["alpha"] = alpha
        data = lgb.Dataset(Xt, yt, params=dict(base)).construct()  # binned once for all points
        grid = self.grid()
        sse = np.empty(len(grid))
        best = None
        for g, (depth, lr) in enumerate(grid):
            params = dict(base, num_leaves=2**depth, max_depth=depth, learning_rate=lr)
            booster = lgb.train(params, data, num_boost_round=self.n_trees)
            path = staged_sse(booster, Xv, yv)
            k = int(np.argmin(path))
            sse[g] = path[k]
            if best is None or sse[g] < sse[best[0]]:
                best = (g, GBRTParams(booster, depth, lr, k + 1, alpha))
            del booster
        return Fit(best[1], sse, best[0])

    def predict(self, params: GBRTParams, X: Float[Array, "N P"]) -> Float[np.ndarray, " N"]:
        X = np.asarray(X)
        if not np.issubdtype(X.dtype, np.floating):
            X = X.astype(np.float64)
        return params.booster.predict(X, num_iteration=params.n_trees, num_threads=_threads(self.n_jobs))
