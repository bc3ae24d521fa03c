"""Masked ordinary least squares: the linear model FAPM starts from (section 2.4, Figure 3).

Solved from the normal equations of standardized columns, so the system is a correlation
matrix (well conditioned in float32 even for factors on very different scales), with an
eigenvalue cut-off that gives the minimum-norm solution when columns are collinear (e.g.
industry dummies that sum to the intercept). Pure and vmappable over masks.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float


class Correlations(NamedTuple):
    """The standardised normal equations of an OLS (:func:`ols_from_correlations`): ``G`` the
    correlation matrix of the columns, ``b`` their covariance with ``r`` over ``sd``, ``mu`` and
    ``sd`` the column means and standard deviations (1 where 0), ``r_mu`` the mean of ``r``."""

    G: Float[Array, "n n"]
    b: Float[Array, " n"]
    mu: Float[Array, " n"]
    sd: Float[Array, " n"]
    r_mu: Float[Array, ""]


def fit_ols(
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    mask: Float[Array, " N"],
    *,
    rcond: float | None = None,
    columns: Float[Array, " n"] | None = None,
) -> tuple[Float[Array, ""], Float[Array, " n"]]:
    """OLS ``r ≈ w0 + X w`` on the rows where ``mask`` is non-zero (weighted by ``mask``).

    Returns ``(w0, w)``. ``rcond`` is the relative eigenvalue cut-off of the standardized
    Gram matrix (default: 100 × machine epsilon of the dtype × ``n``). ``columns`` (0/1):
    regress on the columns with 1 only (the others get ``w = 0``); the Gram matrix is built
    from all columns and then restricted, so under ``vmap`` over column subsets it is shared.
    """
    dtype = X.dtype
    m = mask.astype(dtype)
    total = jnp.sum(m)
    mu = (m @ X) / total
    r_mu = jnp.sum(m * r) / total
    Xc = X - mu
    sd = jnp.sqrt((m @ (Xc * Xc)) / total)
    sd = jnp.where(sd > 0, sd, 1.0)
    Z = Xc / sd
    G = (Z * m[:, None]).T @ Z / total  # correlation matrix, [n, n]
    b = (Z.T @ (m * (r - r_mu))) / total
    return ols_from_correlations(G, b, mu, sd, r_mu, rcond=rcond, columns=columns)


def ols_from_correlations(
    G: Float[Array, "n n"],
    b: Float[Array, " n"],
    mu: Float[Array, " n"],
    sd: Float[Array, " n"],
    r_mu: Float[Array, ""],
    *,
    rcond: float | None = None,
    columns: Float[Array, " n"] | None = None,
) -> tuple[Float[Array, ""], Float[Array, " n"]]:
    """The OLS solve of :func:`fit_ols` from the standardised normal equations: ``G`` the
    correlation matrix of the columns, ``b`` their covariance with ``r`` over ``sd``, ``mu``
    and ``sd`` the column means and standard deviations (1 where 0), ``r_mu`` the mean of ``r``.
    Shared with the moment trainer (:mod:`~fapm_jax.core.moments`), which has these from moments."""
    dtype = G.dtype
    if columns is not None:
        c = columns.astype(dtype)
        G = G * jnp.outer(c, c) + jnp.diag(1.0 - c)  # excluded columns: identity, b = 0
        b = b * c
    evals, evecs = jnp.linalg.eigh(G)
    if rcond is None:
        rcond = 100.0 * jnp.finfo(dtype).eps * G.shape[-1]
    keep = evals > rcond * jnp.max(evals)
    inv = jnp.where(keep, 1.0 / jnp.where(keep, evals, 1.0), 0.0)
    beta = evecs @ (inv * (evecs.T @ b))
    if columns is not None:
        beta = beta * c  # exactly zero (the eigen-solve leaves rounding-level values)
    w = beta / sd
    w0 = r_mu - mu @ w
    return w0, w


def correlations_from_moments(S, b, n: int, xp=jnp) -> Correlations:
    """:class:`Correlations` of the rows summarised by the moments ``S = Σ φφᵀ``, ``b = Σ φ r``
    with ``φ = (1, x, …)`` (leading batch axes allowed): the ``(1, x)`` block of ``S`` holds the
    count, the column sums and the Gram matrix. ``xp``: ``jax.numpy``, or ``numpy`` to form them
    in float64 on the host."""
    count = S[..., 0, 0]
    mu = S[..., 0, 1 : 1 + n] / count[..., None]
    r_mu = b[..., 0] / count
    cov = S[..., 1 : 1 + n, 1 : 1 + n] / count[..., None, None] - mu[..., :, None] * mu[..., None, :]
    sd = xp.sqrt(xp.maximum(xp.diagonal(cov, axis1=-2, axis2=-1), 0.0))
    sd = xp.where(sd > 0, sd, 1.0)
    G = cov / (sd[..., :, None] * sd[..., None, :])
    bb = (b[..., 1 : 1 + n] / count[..., None] - mu * r_mu[..., None]) / sd
    return Correlations(G, bb, mu, sd, r_mu)


def ols_from_moments(
    m, n: int, *, columns: Float[Array, " n"] | None = None
) -> tuple[Float[Array, ""], Float[Array, " n"]]:
    """:func:`fit_ols` of the rows that the moments ``m`` (:class:`~fapm_jax.core.moments.Moments`)
    summarise."""
    return ols_from_correlations(*correlations_from_moments(m.S, m.b, n), columns=columns)
