"""Summaries of Bayesian FAPM's Gibbs draws (:mod:`~fapm_jax.core.gibbs`): the posterior-mean
forecast with its posterior sd (Rendle 2012, Eq. 29) and the posterior means and credible
intervals of every interaction ``B_ij`` and first-order weight ``w_i``."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .errors import ConfigError
from .gibbs import GibbsDraws
from .model import FAPMParams, interaction_matrix, predict


class Interactions(NamedTuple):
    """Posterior means and equal-tailed credible bounds of ``B`` (:func:`interaction_matrix`:
    ``<v_i, v_j>`` off the diagonal, ``d`` or 0 on it) and of ``w``."""

    B_mean: Float[Array, "... n n"]
    B_lo: Float[Array, "... n n"]
    B_hi: Float[Array, "... n n"]
    w_mean: Float[Array, "... n"]
    w_lo: Float[Array, "... n"]
    w_hi: Float[Array, "... n"]


def _pooled(draws: GibbsDraws):
    """The draws' parameters as ``[B, S, ...]``: batch axes flattened, chains × draws pooled."""
    p = draws.params
    batch, S = p.w0.shape[:-2], p.w0.shape[-2] * p.w0.shape[-1]
    return batch, jax.tree_util.tree_map(lambda a: a.reshape((-1, S) + a.shape[len(batch) + 2 :]), p)


@jax.jit
def _predict_moments(p: FAPMParams, X):
    """Mean and sd over the draws ``S`` of ``ŷ`` per batch and row (Welford's recurrence)."""
    B, S, N = p.w0.shape[0], p.w0.shape[1], X.shape[0]

    def step(c, ps):
        j, mean, m2 = c
        pred = jax.vmap(lambda q: predict(q, X))(ps)
        delta = pred - mean
        mean = mean + delta / (j + 1)
        return (j + 1, mean, m2 + delta * (pred - mean)), None

    zero = jnp.zeros((B, N), X.dtype)
    (_, mean, m2), _ = jax.lax.scan(
        step, (0, zero, zero), jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), p)
    )
    return mean, jnp.sqrt(m2 / max(S - 1, 1))


def posterior_predict(
    draws: GibbsDraws, X: Float[Array, "N n"]
) -> tuple[Float[Array, "... N"], Float[Array, "... N"]]:
    """The posterior-mean forecast ``E[ŷ(x)]`` of every row and its posterior sd, over all
    chains and draws (Rendle 2012, Eq. 29: the MCMC average of the draws' predictions); shapes
    ``[W, N]`` for :func:`sample_windows`' draws. The sd is that of the mean function ``ŷ``; the
    predictive sd of ``y`` adds ``E[1/α]``."""
    batch, p = _pooled(draws)
    mean, sd = _predict_moments(p, jnp.asarray(X, p.w.dtype))
    return mean.reshape(batch + mean.shape[1:]), sd.reshape(batch + sd.shape[1:])


@functools.partial(jax.jit, static_argnames="level")
def _interactions(p: FAPMParams, level: float):
    q = jnp.asarray([(1 - level) / 2, (1 + level) / 2], p.w.dtype)

    def one(ps):
        B = jax.vmap(interaction_matrix)(ps)
        Bq, wq = jnp.quantile(B, q, axis=0), jnp.quantile(ps.w, q, axis=0)
        return Interactions(B.mean(0), Bq[0], Bq[1], ps.w.mean(0), wq[0], wq[1])

    return jax.lax.map(one, p)


def posterior_interactions(draws: GibbsDraws, level: float = 0.95) -> Interactions:
    """Posterior mean and ``level`` equal-tailed credible interval (default 2.5%–97.5%) of every
    ``B_ij = <v_i, v_j>`` (Rendle 2012, Eq. 3) and of every ``w_i``, over all chains and draws."""
    if not 0 < level < 1:
        raise ConfigError(f"posterior_interactions: level={level!r} must lie in (0, 1)")
    batch, p = _pooled(draws)
    out = _interactions(p, float(level))
    return jax.tree_util.tree_map(lambda a: a.reshape(batch + a.shape[1:]), out)
