"""Checks of the Gibbs sampler's inputs (:mod:`~fapm_jax.core.gibbs`) before anything compiles:
the panel and the windows' masks, the month random-slope design, a chain start (and whether its
latent vectors are degenerate); each bad input is one ConfigError/DataError line."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .errors import ConfigError, DataError
from .model import FAPMParams


def check_data(X, y, masks, groups):
    """Shapes, a non-empty mask per window, finite training rows; the groups as ``int32``."""
    X, y, masks = np.asarray(X), np.asarray(y), np.asarray(masks)
    if X.ndim != 2 or y.shape != X.shape[:1]:
        raise DataError(f"gibbs: X must be [N, n] and y [N], got {X.shape} and {y.shape}")
    if masks.ndim != 2 or masks.shape[1] != X.shape[0] or masks.dtype != bool:
        raise DataError(
            f"gibbs: train_masks must be boolean [W, {X.shape[0]}], got {masks.dtype} {masks.shape}"
        )
    if not masks.any(axis=1).all():
        raise DataError(f"gibbs: windows {np.flatnonzero(~masks.any(axis=1)).tolist()} have no training rows")
    used = masks.any(axis=0)
    if not (np.isfinite(X[used]).all() and np.isfinite(y[used]).all()):
        raise DataError("gibbs: X or y has a non-finite value in a training row")
    g = np.zeros(X.shape[1], np.int32) if groups is None else np.asarray(groups)
    if g.shape != (X.shape[1],) or not np.issubdtype(g.dtype, np.integer) or (g < 0).any():
        raise DataError(f"gibbs: groups must be {X.shape[1]} non-negative integers, got {g.dtype} {g.shape}")
    return g.astype(np.int32), int(g.max()) + 1


def check_months(X, months, slopes, intercept: bool = True):
    """The month random slopes' inputs: dense month ids ``[N]`` (in the order of the labels, so
    that later months get later ids), their count and the slope factors as a tuple; ``None``
    for both without them."""
    if (months is None) != (slopes is None):
        raise ConfigError("gibbs: months and slopes go together (random slopes need both)")
    if months is None:
        return None, 0, None
    months, sl = np.asarray(months), np.asarray(slopes, dtype=np.int64 if len(slopes) == 0 else None)
    n = np.shape(X)[1]
    if months.shape != (np.shape(X)[0],) or not np.issubdtype(months.dtype, np.integer):
        raise DataError(
            f"gibbs: months must be {np.shape(X)[0]} integer labels, got {months.dtype} {months.shape}"
        )
    if sl.ndim != 1 or not np.issubdtype(sl.dtype, np.integer) or ((sl < 0) | (sl >= n)).any():
        raise ConfigError(f"gibbs: slopes must be factor indices in [0, {n}), got {sl.tolist()}")
    if np.unique(sl).size != sl.size:
        raise ConfigError(f"gibbs: slopes has a repeated factor: {sl.tolist()}")
    if sl.size == 0 and not intercept:
        raise ConfigError("gibbs: no random effect: slopes is empty and month_intercept is False")
    labels, ids = np.unique(months, return_inverse=True)
    return ids.astype(np.int32), labels.size, tuple(int(i) for i in sl)


def check_start(start, W: int, n: int, rank: int, self_interactions: bool, C: int = 1):
    """``start`` (``None``, or :class:`FAPMParams` with a leading ``[W]`` axis — every chain of a
    window starts there — or ``[W, C]`` — a start per chain, e.g. an ensemble's members) checked
    against the windows, the chains, the factors and the sampler's rank and terms
    (``GibbsConfig.rank`` and ``.self_interactions``); returned with the ``[W, C]`` axes,
    ``None`` stays ``None``."""
    if start is None:
        return None
    if not isinstance(start, FAPMParams):
        raise ConfigError(f"gibbs: start must be FAPMParams or None, got {type(start).__name__}")
    lead = np.shape(start.w0)[:2] if np.ndim(start.w0) == 2 else (W,)
    if lead not in ((W,), (W, C)):
        raise ConfigError(
            f"gibbs: start.w0 must be [{W}] (windows) or [{W}, {C}] (windows, chains), "
            f"got {list(np.shape(start.w0))}"
        )
    want = {"w0": (), "w": (n,), "V": (n, rank), "d": (n,) if self_interactions else None}
    for name, shape in want.items():
        a = getattr(start, name)
        got = None if a is None else tuple(np.shape(a))
        if got != (None if shape is None else lead + shape):
            raise ConfigError(
                f"gibbs: start.{name} must be {'absent' if shape is None else list(lead + shape)} "
                f"({'windows, chains' if len(lead) == 2 else 'windows'}, factors, rank {rank}, "
                f"self_interactions={self_interactions}), got {'absent' if got is None else list(got)}"
            )
        if a is not None and not np.isfinite(np.asarray(a)).all():
            raise DataError(f"gibbs: start.{name} has a non-finite value")
    if len(lead) == 1:  # every chain of a window from the window's start (on the host: no program)
        start = jax.tree_util.tree_map(
            lambda a: np.broadcast_to(np.asarray(a)[:, None], (W, C, *np.shape(a)[1:])), start
        )
    return jax.tree_util.tree_map(jnp.asarray, start)


def window_size(masks) -> int:
    """Slots of the gathered training block: the largest window's row count."""
    return int(np.asarray(masks).sum(axis=-1).max())


def degenerate(V: Float[Array, "n k"]) -> Bool[Array, ""]:
    """Whether some latent vector's block design ``x_i q⁽⁻ⁱ⁾`` spans fewer than ``k``
    dimensions, i.e. the other rows ``V₋ᵢ`` have numerical rank < ``k`` (smallest singular value
    at most √eps of ``V``'s largest): e.g. a fit that dropped all but ``k`` or fewer vectors.
    There each block's precision is ``λ`` plus a singular matrix, which in float32 can lose its
    Cholesky factor (a 12-stock panel's chain from ``V = 0`` went to NaN)."""
    n, k = V.shape
    if k == 0:
        return jnp.asarray(False)
    loo = jax.vmap(lambda i: jnp.linalg.svd(V.at[i].set(0.0), compute_uv=False)[-1])(jnp.arange(n))
    top = jnp.linalg.svd(V, compute_uv=False)[0]
    return jnp.min(loo) <= jnp.sqrt(jnp.finfo(V.dtype).eps) * top
