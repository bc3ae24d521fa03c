"""The exact conditional draws of Bayesian FAPM's Gibbs sweep (:mod:`~fapm_jax.core.gibbs`):
a parameter block entering the model linearly (Rendle 2012, Eq. 32–33) under the i.i.d.
likelihood or with the month random slopes integrated out
(:func:`~fapm_jax.core.random_slopes.gls_terms`), and the hyperparameters of a group
(Eq. 35–38)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .random_slopes import MonthDesign, gls_terms, month_sums


def normal_draw(key, mean, prec, z=None):
    """A draw of ``N(mean, 1/prec)`` (from the standard normal ``z`` when given)."""
    z = jax.random.normal(key, jnp.shape(mean), jnp.result_type(mean)) if z is None else z
    return mean + z / jnp.sqrt(prec)


def draw_hyper(gam, z, theta, onehot, lam, mu, cfg):
    """``(λ_g, μ_g)`` of the columns of ``theta`` ``[n, c]`` per group (Rendle 2012, Eq. 35–38):
    ``μ | λ ~ N((γ0 μ0 + Σ θ)/(γ0 + n_g), 1/((γ0 + n_g) λ))``, then
    ``λ | μ ~ Gamma((α_λ + n_g + 1)/2, (β_λ + γ0 (μ − μ0)² + Σ (θ − μ)²)/2)``, from the standard
    normals ``z`` and the ``Gamma((α_λ + n_g + 1)/2, 1)`` draws ``gam`` (both ``[G, c]``)."""
    if cfg.fixed_prec is not None:
        return lam, mu
    c = cfg.gamma_0 + jnp.sum(onehot, axis=0)[:, None]
    mu = normal_draw(None, (cfg.gamma_0 * cfg.mu_0 + onehot.T @ theta) / c, c * lam, z)
    dev2 = onehot.T @ (theta - onehot @ mu) ** 2
    return gam / ((cfg.beta_lambda + cfg.gamma_0 * (mu - cfg.mu_0) ** 2 + dev2) / 2.0), mu


class Likelihood(NamedTuple):
    """The likelihood part of every parameter block's conditional: i.i.d. (``design`` None:
    precision ``α HᵀH``, score ``α Hᵀ r``) or with the month slopes integrated out
    (:func:`~fapm_jax.core.random_slopes.gls_terms`). The residuals it carries are ``(e, b)``:
    ``e`` per row and, collapsed, their month sums ``b = Z_tᵀ e_t``."""

    alpha: Float[Array, ""]
    design: MonthDesign | None = None
    Minv: Float[Array, "T q q"] | None = None

    def terms(self, H, r):
        """``(P, c, A)``: precision and score of the block with design ``H`` ``[size, k]`` at the
        residuals ``r``, and its month sums ``A`` (``None`` when i.i.d.)."""
        e, b = r
        Hh, Hr = H.T @ H, H.T @ e
        if self.design is None:
            return self.alpha * Hh, self.alpha * Hr, None
        A = month_sums(self.design, H)
        return *gls_terms(A, Hh, Hr, b, self.Minv, self.alpha), A

    @staticmethod
    def shift(r, H, A, delta):
        """The residuals after the block moved by ``delta``: ``e − H δ`` (and ``b − A δ``)."""
        e, b = r
        return e - H @ delta, (None if A is None else b - A @ delta)


def draw_block(lik: Likelihood, theta, H, r, z, lam, mu):
    """One exact draw of a block ``θ`` ``[k]`` entering ``ŷ = g + H θ`` (Rendle 2012,
    Eq. 32–33; a latent vector as one block) given the residuals ``r`` at the old value:
    ``N(P⁻¹(c + P_lik θ + λ μ), P⁻¹)``, ``P = P_lik + λ I``; returns it and the new residuals."""
    P_lik, c, A = lik.terms(H, r)
    k = theta.shape[0]
    L = jnp.linalg.cholesky(P_lik + lam * jnp.eye(k, dtype=theta.dtype))
    mean = jax.scipy.linalg.cho_solve((L, True), c + P_lik @ theta + lam * mu)
    new = mean + jax.scipy.linalg.solve_triangular(L.T, z, lower=False)
    return new, lik.shift(r, H, A, new - theta)


def draw_scalar(lik: Likelihood, theta, h, r, z, lam, mu):
    """:func:`draw_block` for one parameter with feature ``h`` ``[size]`` (no Cholesky)."""
    if lik.design is None:  # the i.i.d. case in two passes over the rows
        e, _ = r
        prec = lik.alpha * jnp.dot(h, h) + lam
        new = normal_draw(None, (lik.alpha * jnp.dot(h, e + theta * h) + lam * mu) / prec, prec, z)
        return new, (e - (new - theta) * h, None)
    H = h[:, None]
    P_lik, c, A = lik.terms(H, r)
    prec = P_lik[0, 0] + lam
    new = normal_draw(None, (c[0] + P_lik[0, 0] * theta + lam * mu) / prec, prec, z)
    return new, lik.shift(r, H, A, jnp.atleast_1d(new - theta))
