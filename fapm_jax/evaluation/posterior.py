"""Credible bands of the window-averaged interactions of Bayesian FAPM (Tables 5–6 with bands).

Tables 5–6 report the mean over the 30 windows of each ``B_ij`` and each factor's average
``|B_ij|``. With Gibbs draws (:mod:`~fapm_jax.core.gibbs`) every such statistic has a
posterior: pairing draw ``s`` of every window (the windows' chains are independent), the
statistic of draw ``s`` is the window mean of the draws' ``B``, and its equal-tailed
quantiles over ``s`` are the band. The bands are of the estimate the paper reports, not of one
window's ``B`` (:func:`~fapm_jax.core.gibbs.posterior_interactions`).
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


@functools.partial(jax.jit, static_argnames="level")
def _averaged(params, level: float):
    n = params.w.shape[-1]

    def one(ps):  # ps: one draw of every window, leaves [W, ...]
        B = jax.vmap(interaction_matrix)(ps).mean(0)
        A = jnp.abs(B) * (1.0 - jnp.eye(n, dtype=B.dtype))
        return B, A.sum(1) / max(n - 1, 1)

    Bs, avgs = jax.lax.map(one, jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), params))
    q = jnp.asarray([(1 - level) / 2, (1 + level) / 2], Bs.dtype)
    Bq, aq = jnp.quantile(Bs, q, axis=0), jnp.quantile(avgs, q, axis=0)
    return AveragedPosterior(Bs.mean(0), Bq[0], Bq[1], avgs.mean(0), aq[0], aq[1])


def averaged_posterior(draws: GibbsDraws, level: float = 0.95) -> AveragedPosterior:
    """The posterior of the window means of Tables 5–6 from :func:`~fapm_jax.core.gibbs.sample_windows`'
    draws (leaves ``[W, C, K, ...]``; chains × draws pooled into ``S = C·K`` paired draws)."""
    if not 0 < level < 1:
        raise ConfigError(f"averaged_posterior: level={level!r} must lie in (0, 1)")
    p = draws.params
    if p.w0.ndim != 3:
        raise ConfigError(f"averaged_posterior: draws need axes [windows, chains, draws], got {p.w0.shape}")
    S = p.w0.shape[1] * p.w0.shape[2]
    flat = jax.tree_util.tree_map(lambda a: a.reshape((a.shape[0], S) + a.shape[3:]), p)
    return jax.tree_util.tree_map(np.asarray, _averaged(flat, float(level)))


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
