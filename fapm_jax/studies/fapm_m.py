"""FAPM-m: FAPM on the ``m`` most and ``m`` least important factors (paper section 3.2,
Table 2, Figure 5), every ``m`` in one vmapped program.

The importance of factor ``i`` is ``|w_i| / Σ|w|`` of OLS on all factors
(:func:`window_importance`). By default it is computed **inside each window from that
window's training rows**, so a window's factor choice uses no validation or test data
(``ranking="window"``); the paper ranks the factors once on the full sample, which looks
ahead — offered as ``ranking="full"`` and labelled so in every output.

A subset is a 0/1 mask over the factors (:func:`top_bottom_mask`); a sweep over ``m`` is a
batch of masks ``[M, W, n]`` carried by :class:`~fapm_jax.core.config.Hyper` ``.features``, so all
``m`` and all windows train in one compiled program on the full ``X``: a masked factor's
parameters are held at zero (:func:`~fapm_jax.core.model.with_feature_mask`) and its OLS start
excluded (:func:`~fapm_jax.core.linear.fit_ols` ``columns``), which equals training on the kept
columns alone.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..core.config import Hyper, TrainConfig, hyper_from_config
from ..core.fit import TrainResult, fit_windows
from ..core.linear import fit_ols
from ..core.masked import window_rows
from ..data.levels import month_deviations, row_levels, window_means
from ..data.panel import Panel
from ..data.windows import WindowSpec, rolling_windows, window_masks
from .rolling import predict_test_rows, settings_sse

RANKINGS = ("window", "full")


def ols_importance_weights(
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    train_mask: Float[Array, " N"],
    ranked: Float[Array, " n"] | None = None,
) -> Float[Array, " n"]:
    """``|w_i| / Σ|w|`` of OLS on all factors over the rows with ``train_mask > 0``
    (``ranked``: OLS on the columns with 1 only; the others get 0)."""
    _, w = fit_ols(X, r, train_mask, columns=ranked)
    a = jnp.abs(w)
    return a / jnp.maximum(jnp.sum(a), jnp.finfo(a.dtype).tiny)


@eqx.filter_jit
def window_importance(
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    train_masks: Float[Array, "W N"],
    ranked: Float[Array, " n"] | None = None,
) -> Float[Array, "W n"]:
    """Each window's factor importance from its own training rows (vmapped over windows)."""
    return jax.vmap(ols_importance_weights, in_axes=(None, None, 0, None))(X, r, train_masks, ranked)


def top_bottom_mask(
    importance: Float[Array, " n"], m: int | None, ranked: np.ndarray | None = None
) -> Float[Array, " n"]:
    """1 on the ``m`` most and the ``m`` least important factors, 0 elsewhere (``None`` or
    ``2m ≥`` the number ranked: every factor). Ties rank the lower column index as more
    important. ``ranked`` (0/1, concrete): only those columns compete; the others (e.g. the
    SIC2 dummies the paper adds to every pair, section 3.2) are always kept."""
    n = importance.shape[-1]
    ranked = np.ones(n, bool) if ranked is None else np.asarray(ranked) > 0
    n_r = int(ranked.sum())
    if m is not None and m < 1:
        raise ValueError(f"FAPM-m: m must be >= 1, got {m}")
    if m is None or 2 * m >= n_r:
        return jnp.ones_like(importance)
    key = jnp.where(jnp.asarray(ranked), -importance, jnp.inf)  # unranked columns last
    order = jnp.argsort(key, stable=True)  # most important first
    rank = jnp.zeros(n, jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
    chosen = (rank < m) | ((rank >= n_r - m) & (rank < n_r))
    return (chosen | ~jnp.asarray(ranked)).astype(importance.dtype)


def fapm_m_features(
    importance: Float[Array, "W n"], ms: Sequence[int | None], ranked: np.ndarray | None = None
) -> Float[Array, "M W n"]:
    """The factor masks of every ``m`` (``None`` = all factors) in every window."""
    return jnp.stack([jax.vmap(lambda imp: top_bottom_mask(imp, m, ranked))(importance) for m in ms])


def fapm_m_hyper(config: TrainConfig, features: Float[Array, "M W n"]) -> Hyper:
    """``config``'s setting once per subset: a batched :class:`Hyper` ``[M]`` whose
    ``features`` are the subsets' masks (the same seed, so every ``m`` starts from the same
    ``V`` draw on its kept rows)."""
    h = hyper_from_config(config)
    M = features.shape[0]
    return Hyper(
        learning_rate=jnp.broadcast_to(h.learning_rate, (M,)),
        init_scale=jnp.broadcast_to(h.init_scale, (M,)),
        rank_mask=jnp.broadcast_to(h.rank_mask, (M,) + h.rank_mask.shape),
        seed=jnp.broadcast_to(h.seed, (M,)),
        features=jnp.asarray(features, jnp.float32),
    )


@dataclasses.dataclass(frozen=True, eq=False)
class FAPMmSweep:
    """The result of :func:`fapm_m_sweep`.

    ``ms`` the subsets (``None`` = all factors); ``r2_oos``/``r2_is`` ``[M]``: pooled R² over
    all test rows / all windows' training rows (against zero, as R²_oos); ``r2_is_window``
    ``[M, W]`` each window's in-sample R² (Figures 7–9: by training period); ``importance``
    ``[W, n]``; ``features`` ``[M, W, n]`` the masks; ``result`` the raw training result
    (leading axes ``[M, W]``); ``ranking`` ``"window"`` or ``"full"`` (look-ahead);
    ``level`` ``[W]`` what each window adds to its forecasts (``TrainConfig.level``; ``None``:
    nothing).
    """

    ms: tuple[int | None, ...]
    r2_oos: np.ndarray
    r2_is: np.ndarray
    r2_is_window: np.ndarray
    importance: np.ndarray
    features: np.ndarray
    feature_names: tuple[str, ...]
    result: TrainResult
    ranking: str
    seconds: float
    always: tuple[str, ...] = ()
    level: np.ndarray | None = None

    def selected(self, m: int | None, window: int = 0) -> list[tuple[str, float]]:
        """``(factor, importance)`` of the ranked factors FAPM-m uses in ``window``, most
        important first (Table 2; the ``always`` columns are not listed)."""
        i = self.ms.index(m)
        keep = [
            j
            for j in np.flatnonzero(self.features[i, window] > 0)
            if self.feature_names[j] not in self.always
        ]
        keep = np.asarray(keep, np.int64)
        imp = self.importance[window]
        keep = keep[np.argsort(-imp[keep], kind="stable")]
        return [(self.feature_names[j], float(imp[j])) for j in keep]

    def test_forecasts(self, m: int | None, panel: Panel, spec: WindowSpec) -> Float[np.ndarray, " N"]:
        """FAPM-m's forecast of every row of ``panel`` by the model of the window whose test year
        holds it, 0 outside the test years (Table 1's FAPM-m row). ``panel`` holds the sweep's
        factors (it may hold more, e.g. the SIC2 dummies); ``spec``: the sweep's windows."""
        i = self.ms.index(m)
        params = jax.tree_util.tree_map(lambda a: a[i], self.result.params)
        _, _, test_m = window_masks(panel.year, rolling_windows(spec))
        X = jnp.asarray(panel.X[:, panel.feature_index(list(self.feature_names))])
        level = 0.0 if self.level is None else row_levels(self.level, test_m)
        return np.asarray(predict_test_rows(params, X, jnp.asarray(test_m))) + level


def _f64(arrays):
    return tuple(np.asarray(a, np.float64) for a in arrays)


def _rows(masks):
    idx, wt = window_rows(masks)
    return jnp.asarray(idx), jnp.asarray(wt)


def subset_masks(
    panel: Panel,
    train_masks: np.ndarray,
    ms: Sequence[int | None],
    *,
    ranking: str = "window",
    always: Sequence[str] = (),
) -> tuple[Float[Array, "W n"], Float[Array, "M W n"]]:
    """The factor importance ``[W, n]`` and the FAPM-m masks ``[M, W, n]`` of every ``m`` in
    ``ms`` (see :func:`fapm_m_sweep` for ``ranking`` and ``always``)."""
    if ranking not in RANKINGS:
        raise ValueError(f"FAPM-m: ranking must be one of {RANKINGS}, got {ranking!r}")
    ms = tuple(ms)
    for m in ms:
        if m is not None and not (isinstance(m, int) and m >= 1):
            raise ValueError(f"FAPM-m: every m must be a positive integer or None, got {m!r}")
    n = panel.X.shape[1]
    ranked = np.ones(n, np.float32)
    if always:
        ranked[panel.feature_index(list(always))] = 0.0
    X = jnp.asarray(panel.X)
    r = jnp.asarray(panel.r, X.dtype)
    if ranking == "window":
        imp = window_importance(X, r, jnp.asarray(train_masks, X.dtype), jnp.asarray(ranked))
    else:
        full = ols_importance_weights(X, r, jnp.ones_like(r), jnp.asarray(ranked))
        imp = jnp.broadcast_to(full, (np.asarray(train_masks).shape[0], n))
    return imp, fapm_m_features(imp, ms, ranked)


def fapm_m_sweep(
    panel: Panel,
    config: TrainConfig = TrainConfig(),
    spec: WindowSpec = WindowSpec(),
    ms: Sequence[int | None] = (*range(1, 21), None),
    *,
    ranking: str = "window",
    always: Sequence[str] = (),
    method: str = "auto",
) -> FAPMmSweep:
    """Train FAPM-m for every ``m`` in ``ms`` on every window in one program (Figure 5).

    Each window's subset comes from its own training rows (``ranking="window"``) or, as in
    the paper, from OLS on every row of the panel (``"full"``, which looks ahead).
    ``always``: factors kept in every subset and left out of the ranking — the paper's
    "with SIC2" variant (Table 3) passes the ``sic2_XX`` dummy columns
    (:meth:`~fapm_jax.data.panel.Panel.with_sic2_dummies`). ``method``: the trainer of
    :func:`~fapm_jax.core.fit.fit_windows`; by default the moment trainer wherever it applies
    (the same models, each epoch independent of the number of stocks). ``config.level =
    "train-mean"``: the importance ranking and the fits use the months' deviations
    (:mod:`~fapm_jax.data.levels`), and every R² here is of ``r``, each window's mean training
    return added, as :func:`~fapm_jax.studies.rolling.run_rolling`.
    """
    ms = tuple(ms)
    t0 = time.perf_counter()
    windows = rolling_windows(spec)
    train_m, valid_m, test_m = window_masks(panel.year, windows)
    X = jnp.asarray(panel.X)
    r = jnp.asarray(panel.r, X.dtype)
    level = window_means(panel.r, train_m) if config.level == "train-mean" else None
    if level is not None:
        panel = dataclasses.replace(panel, r=month_deviations(panel.r, panel.month))
    imp, features = subset_masks(panel, train_m, ms, ranking=ranking, always=always)
    r_fit = jnp.asarray(panel.r, X.dtype)
    hyper = fapm_m_hyper(config, features)
    result = fit_windows(X, r_fit, train_m, valid_m, config, hyper=hyper, method=method)
    lv = None if level is None else jnp.asarray(level, X.dtype)
    sse_te, tot_te = _f64(settings_sse(result.params, X, r, *_rows(test_m), lv))
    sse_tr, tot_tr = _f64(settings_sse(result.params, X, r, *_rows(train_m), lv))
    r2_oos = 1.0 - sse_te.sum(axis=1) / tot_te.sum()
    r2_is = 1.0 - sse_tr.sum(axis=1) / tot_tr.sum()
    r2_is_w = 1.0 - sse_tr / tot_tr
    return FAPMmSweep(
        ms=ms,
        r2_oos=np.asarray(r2_oos),
        r2_is=np.asarray(r2_is),
        r2_is_window=np.asarray(r2_is_w),
        importance=np.asarray(imp),
        features=np.asarray(features),
        feature_names=tuple(panel.feature_names),
        result=result,
        ranking=ranking,
        seconds=time.perf_counter() - t0,
        always=tuple(always),
        level=level,
    )
