"""Credible bands of the window-averaged interactions of Bayesian FAPM (Tables 5–6 with bands).

Tables 5–6 report the mean over the 30 windows of each ``B_ij`` and each factor's average
``|B_ij|``. With Gibbs draws (:mod:`~fapm_jax.core.gibbs`) every such statistic has a
posterior once the windows' draws are coupled: draw ``s`` of the statistic is the window mean
of one draw of each window's ``B``, and its equal-tailed quantiles over ``s`` are the band.
The windows are separate analyses of nearly the same data — the expanding training windows of
section 3.1 share all their years but one — so the default coupling is **comonotone** (each
entry's draws sorted within every window, the ``s``-th of each paired): the band of each
``B_ij`` is then the mean of the windows' bands, the band of the mean under perfect
dependence. ``"independent"`` pairs draw ``s`` of every window as if the windows' chains
were of independent data, and narrows the band by about ``√W``. The posterior mean is the same
under both. The bands are of the estimate the paper reports, not of one window's ``B``
(:func:`~fapm_jax.core.gibbs.posterior_interactions`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl
from jaxtyping import Array, Float

from ..core.errors import ConfigError
from ..core.gibbs import GibbsDraws
from ..core.model import interaction_matrix
from .interactions import pair_kind


class AveragedPosterior(NamedTuple):
    """Posterior mean and equal-tailed bounds of the window-mean ``B`` [n, n] and of each
    factor's average ``|B_ij|`` over its partners (Table 6) [n]."""

    B_mean: Float[Array, "n n"]
    B_lo: Float[Array, "n n"]
    B_hi: Float[Array, "n n"]
    avg_mean: Float[Array, " n"]
    avg_lo: Float[Array, " n"]
    avg_hi: Float[Array, " n"]


#: How :func:`averaged_posterior` pairs the windows' draws.
COUPLINGS = ("comonotone", "independent")


def _independent(params) -> Float[Array, "S n n"]:
    """Draw ``s`` of the window mean: the mean of draw ``s`` of every window (leaves [W, S, ...])."""
    one = lambda ps: jax.vmap(interaction_matrix)(ps).mean(0)  # noqa: E731  ps: leaves [W, ...]
    return jax.lax.map(one, jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), params))


def _comonotone(params) -> Float[Array, "S n n"]:
    """Draw ``s`` of the window mean under the comonotone coupling: the mean over windows of
    each entry's ``s``-th smallest draw (a scan over windows: one window's draws at a time)."""
    W, S, n = params.w.shape[0], params.w.shape[1], params.w.shape[-1]

    def add(total, pw):  # pw: one window's draws, leaves [S, ...]
        return total + jnp.sort(jax.vmap(interaction_matrix)(pw), axis=0), None

    total, _ = jax.lax.scan(add, jnp.zeros((S, n, n), params.w.dtype), params)
    return total / W


@functools.partial(jax.jit, static_argnames=("level", "couple"))
def _averaged(params, level: float, couple):
    n = params.w.shape[-1]
    Bs = couple(params)  # [S, n, n]: the draws of the window mean
    A = jnp.abs(Bs) * (1.0 - jnp.eye(n, dtype=Bs.dtype))
    avgs = A.sum(-1) / max(n - 1, 1)
    q = jnp.asarray([(1 - level) / 2, (1 + level) / 2], Bs.dtype)
    Bq, aq = jnp.quantile(Bs, q, axis=0), jnp.quantile(avgs, q, axis=0)
    return AveragedPosterior(Bs.mean(0), Bq[0], Bq[1], avgs.mean(0), aq[0], aq[1])


def averaged_posterior(
    draws: GibbsDraws, level: float = 0.95, coupling: str = "comonotone"
) -> AveragedPosterior:
    """The posterior of the window means of Tables 5–6 from :func:`~fapm_jax.core.gibbs.sample_windows`'
    draws (leaves ``[W, C, K, ...]``; chains × draws pooled into ``S = C·K`` draws per window),
    the windows' draws coupled as ``coupling`` (:data:`COUPLINGS`; see the module docstring)."""
    if not 0 < level < 1:
        raise ConfigError(f"averaged_posterior: level={level!r} must lie in (0, 1)")
    if coupling not in COUPLINGS:
        raise ConfigError(f"averaged_posterior: coupling={coupling!r} must be one of {', '.join(COUPLINGS)}")
    p = draws.params
    if p.w0.ndim != 3:
        raise ConfigError(f"averaged_posterior: draws need axes [windows, chains, draws], got {p.w0.shape}")
    S = p.w0.shape[1] * p.w0.shape[2]
    flat = jax.tree_util.tree_map(lambda a: a.reshape((a.shape[0], S) + a.shape[3:]), p)
    couple = _comonotone if coupling == "comonotone" else _independent
    return jax.tree_util.tree_map(np.asarray, _averaged(flat, float(level), couple))


def posterior_pair_table(post: AveragedPosterior, names, macro_names) -> pl.DataFrame:
    """One row per pair ``i < j``, largest ``|posterior mean|`` first: ``a, b, kind, mean,
    ci_low, ci_high, credible`` (the band excludes 0)."""
    n = len(names)
    iu, ju = np.triu_indices(n, 1)
    m = np.asarray(post.B_mean)[iu, ju]
    order = np.argsort(-np.abs(m), kind="stable")
    iu, ju = iu[order], ju[order]
    lo, hi = np.asarray(post.B_lo)[iu, ju], np.asarray(post.B_hi)[iu, ju]
    return pl.DataFrame(
        {
            "a": [names[i] for i in iu],
            "b": [names[j] for j in ju],
            "kind": [pair_kind(names[i], names[j], macro_names) for i, j in zip(iu, ju)],
            "mean": m[order],
            "ci_low": lo,
            "ci_high": hi,
            "credible": (lo > 0) | (hi < 0),
        }
    )


def posterior_factor_table(post: AveragedPosterior, names) -> pl.DataFrame:
    """Table 6 with bands: each factor's posterior-mean average ``|B_ij|``, its band and its
    share of the sum over factors, largest first."""
    avg = np.asarray(post.avg_mean, np.float64)
    total = avg.sum()
    return pl.DataFrame(
        {
            "factor": list(names),
            "average": avg,
            "ci_low": np.asarray(post.avg_lo, np.float64),
            "ci_high": np.asarray(post.avg_hi, np.float64),
            "share": avg / total if total > 0 else np.zeros_like(avg),
        }
    ).sort("average", descending=True, maintain_order=True)
