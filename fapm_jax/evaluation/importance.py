"""Factor importance (paper section 3.3, Table 4, Figures 10–11).

Two measures, each computed per window, normalised to sum to one within the window and then
averaged over windows (every training sample counts equally; the average still sums to one):

* **First-order importance** (FAPM only, Figure 10): ``|w_i| / Σ|w|`` of the fitted FAPM's
  linear weights (:func:`first_order_importance`).
* **R²-based importance** (GKX 2020, section 2.3; Table 4, Figure 11): the drop in the
  training-sample R² (zero benchmark) when factor ``i`` is set to zero in every row, the fitted
  model held fixed (:func:`r2_drops`). It applies to every model of the comparison suite, so
  Table 4 has all its columns. A negative drop (zeroing the factor *raises* R²) counts as no
  importance before normalising (:func:`normalise`). For the 8 macro predictors alone
  (Table 4, Figure 11) the same drops are normalised within the macro set.

Setting a factor to zero removes it everywhere it enters: its linear weight, all its
interactions and — under GKX covariates — every characteristic × macro product it is part of.
The factors are cross-sectional ranks in ``[−1, 1]`` or standardised macro series, so zero is
the median / mean, GKX's choice.

Cost: ``n`` extra predictions of each window's training rows; ``max_rows`` (default
:data:`IMPORTANCE_ROWS`) evaluates at most that many rows per window, evenly spaced through
the window's training rows (the same rows for every model).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import polars as pl
from jaxtyping import Array, Float

from ..core.masked import window_rows

#: Default number of training rows per window on which R²-based importance is evaluated.
IMPORTANCE_ROWS = 20_000


def first_order_importance(w: Float[Array, "W n"]) -> np.ndarray:
    """``[W, n]`` ``|w_i| / Σ_j |w_j|`` per window (all zeros for an all-zero row)."""
    return normalise(np.abs(np.asarray(w, np.float64)))


def normalise(drops: np.ndarray, subset: Sequence[int] | None = None) -> np.ndarray:
    """R² drops ``[..., n]`` → importances summing to one over ``subset`` (all columns by
    default) along the last axis; negative drops count as zero; columns outside ``subset``
    get 0; an all-zero row stays zero."""
    d = np.clip(np.asarray(drops, np.float64), 0.0, None)
    keep = np.zeros(d.shape[-1], bool)
    keep[list(range(d.shape[-1])) if subset is None else list(subset)] = True
    d = np.where(keep, d, 0.0)
    s = d.sum(axis=-1, keepdims=True)
    return np.divide(d, s, out=np.zeros_like(d), where=s > 0)


def zero_masks(n: int, groups: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """``[G, n]`` keep-masks: row ``g`` is 0 on group ``g``'s columns and 1 elsewhere (one group
    per column by default)."""
    groups = [[j] for j in range(n)] if groups is None else [list(g) for g in groups]
    keep = np.ones((len(groups), n), np.float32)
    for g, cols in enumerate(groups):
        keep[g, cols] = 0.0
    return keep


@eqx.filter_jit
def _drops_jax(predict, params, X, r, idx, wt, keep):
    """JAX parameters ``[W, ...]``: windows and groups in ``lax.map`` loops (memory: one
    window's rows)."""

    def one_window(inputs):
        p, i, w = inputs
        Xw, rw = X[i], r[i]
        tot = jnp.sum(w * rw * rw)
        base = jnp.sum(w * (rw - predict(p, Xw)) ** 2)
        sse = jax.lax.map(lambda k: jnp.sum(w * (rw - predict(p, Xw * k)) ** 2), keep)
        return (sse - base) / tot

    return jax.lax.map(one_window, (params, idx, wt))


def _drops_host(predict, params: list, X: np.ndarray, r: np.ndarray, idx, wt, keep) -> np.ndarray:
    """Host parameters (a list, one per window): windows and groups in a Python loop."""
    out = np.zeros((len(idx), len(keep)))
    for w in range(len(idx)):
        sel = idx[w][wt[w] > 0]
        Xw, rw = X[sel], r[sel]
        tot = np.sum(rw * rw)
        base = np.sum((rw - np.asarray(predict(params[w], Xw), np.float64)) ** 2)
        for g, k in enumerate(keep):
            zeroed = np.asarray(predict(params[w], Xw * k.astype(Xw.dtype)), np.float64)
            out[w, g] = (np.sum((rw - zeroed) ** 2) - base) / tot
    return out


def r2_drops(
    predict,
    params,
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    train_masks: Float[Array, "W N"],
    *,
    groups: Sequence[Sequence[int]] | None = None,
    max_rows: int | None = IMPORTANCE_ROWS,
) -> np.ndarray:
    """``[W, G]`` drop in training R² (zero benchmark, ``1 − Σ(r − r̂)² / Σr²``) of each
    window's model when group ``g``'s columns of ``X`` are set to zero (one group per factor
    by default).

    ``predict(params_w, X) -> r̂``. The kind of ``params`` picks the loop, as the model's family
    returned them (:meth:`~fapm_jax.baselines.AbstractModel.fit_windows`): a pytree with a
    leading ``[W]`` axis (JAX models: compiled ``lax.map`` loops, memory one window's rows) or a
    Python ``list`` of per-window parameters (host models such as trees: a Python loop).
    """
    idx, wt = window_rows(np.asarray(train_masks), max_rows)
    keep = zero_masks(X.shape[1], groups)
    if isinstance(params, list):
        return _drops_host(predict, params, np.asarray(X), np.asarray(r, np.float64), idx, wt, keep)
    X = jnp.asarray(X)
    out = _drops_jax(
        predict,
        params,
        X,
        jnp.asarray(r, X.dtype),
        jnp.asarray(idx),
        jnp.asarray(wt, X.dtype),
        jnp.asarray(keep, X.dtype),
    )
    return np.asarray(out, np.float64)


def importance_table(
    names: Sequence[str],
    columns: dict[str, np.ndarray],
    subset: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Table 4: one row per factor (those in ``subset``, default all), one column per model
    (``columns``: model → ``[n]`` window-averaged importance, :func:`window_average`)."""
    names = list(names)
    rows = names if subset is None else [s for s in subset if s in names]
    ix = [names.index(s) for s in rows]
    return pl.DataFrame({"factor": rows, **{m: np.asarray(v)[ix] for m, v in columns.items()}})


def window_average(
    per_window: np.ndarray, names: Sequence[str], subset: Sequence[str] | None = None, *, drops: bool = True
) -> np.ndarray:
    """``[n]``: per-window values ``[W, n]`` normalised within ``subset`` (R² ``drops``:
    :func:`normalise`; else ``|x|`` over its sum) and averaged over the windows in which any
    of them is positive (a window where zeroing no factor lowers R² carries no ranking), so
    the result sums to one over ``subset`` unless no window has a positive value."""
    names = list(names)
    sub = None if subset is None else [names.index(s) for s in subset if s in names]
    v = np.asarray(per_window, np.float64)
    v = normalise(v if drops else np.abs(v), sub)
    live = v.sum(axis=-1) > 0
    return v[live].mean(axis=0) if live.any() else np.zeros(v.shape[-1])


def top_factors(values: np.ndarray, names: Sequence[str], top: int = 12) -> list[tuple[str, float]]:
    """The ``top`` largest ``(name, value)`` pairs, largest first (Figure 10's bars)."""
    order = np.argsort(-np.asarray(values), kind="stable")[:top]
    return [(names[i], float(values[i])) for i in order]
