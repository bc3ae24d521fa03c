"""Month-specific random slopes in the Gibbs likelihood of Bayesian FAPM (a linear mixed model).

The i.i.d. likelihood ``y_it ~ N(ŷ(x_it), 1/α)`` treats every stock-month as independent
information. Returns are not: a monthly factor shock whose loadings are characteristics moves
the cross-sectional slope on those characteristics in every stock of the month at once, and a
characteristic × macro interaction ``B_ij c_i x_t`` — a slope on ``c_i`` that moves with the
month's macro predictor ``x_t`` — is identified only from the months' slopes, not from each
stock. With random slopes the model is

``y_it = ŷ(x_it) + z_itᵀ u_t + ε_it``,  ``z_it = (1, c_it[slopes])``,
``u_t ~ N(0, diag(1/λ_u))``,  ``λ_u,j ~ Gamma(α_λ/2, β_λ/2)``,

so that marginally ``y_t ~ N(ŷ_t, I/α + Z_t Λ_u⁻¹ Z_tᵀ)`` per month: the generalised least
squares weighting of the mixed-model literature (Laird and Ware 1982), whose posterior of the
FAPM parameters is as wide as the months allow. Given the rest, the ``u_t`` are independent
across months with the exact conditional ``N(P_t⁻¹ α Z_tᵀ r_t, P_t⁻¹)``,
``P_t = α Z_tᵀ Z_t + Λ_u`` (one ``q × q`` Cholesky per month per sweep; the Grams
``Z_tᵀ Z_t`` are computed once per window). Forecasts of a new month use ``E[u] = 0``: the
slopes absorb the months' shocks instead of the FAPM parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


class MonthDesign(NamedTuple):
    """One window's random-slope design over its ``size`` gathered rows and ``T`` months:
    ``Z`` (empty slots zero), each row's month id, the per-month Grams and the months with
    training rows."""

    Z: Float[Array, "size q"]
    month: Int[Array, " size"]
    gram: Float[Array, "T q q"]
    used: Bool[Array, " T"]


def month_design(X: Float[Array, "size n"], ok: Bool[Array, " size"], month, slopes, T: int) -> MonthDesign:
    """``Z = (1, X[:, slopes])`` on the rows where ``ok`` (0 elsewhere) and ``Σ_i z_i z_iᵀ`` per
    month: the window's part of every conditional that does not change between sweeps."""
    one = ok.astype(X.dtype)[:, None]
    Z = jnp.concatenate([one, jnp.where(ok[:, None], X[:, jnp.asarray(slopes, jnp.int32)], 0.0)], axis=1)
    gram = jax.ops.segment_sum(Z[:, :, None] * Z[:, None, :], month, T)
    used = jax.ops.segment_sum(ok.astype(jnp.int32), month, T) > 0
    return MonthDesign(Z, month, gram, used)


def slope_effect(design: MonthDesign, u: Float[Array, "T q"]) -> Float[Array, " size"]:
    """``z_itᵀ u_t`` of every row (0 on the empty slots)."""
    return jnp.sum(design.Z * u[design.month], axis=1)


def draw_slope_precision(gam: Float[Array, " q"], u, design: MonthDesign, beta_lambda: float):
    """``λ_u,j | u ~ Gamma((α_λ + T_used)/2, (β_λ + Σ_t u_tj²)/2)`` over the months with rows,
    from the ``Gamma((α_λ + T_used)/2, 1)`` draws ``gam``."""
    ss = jnp.sum(jnp.where(design.used[:, None], u * u, 0.0), axis=0)
    return gam / ((beta_lambda + ss) / 2.0)


def draw_slopes(z: Float[Array, "T q"], r_: Float[Array, " size"], design: MonthDesign, alpha, lam_u):
    """Every month's ``u_t`` from its exact conditional given the residuals without the slopes
    ``r_ = y − ŷ``, from the standard normals ``z``; 0 in the months without rows."""
    T, q = z.shape
    b = jax.ops.segment_sum(design.Z * r_[:, None], design.month, T)  # [T, q]
    P = alpha * design.gram + jnp.eye(q, dtype=z.dtype) * lam_u  # [T, q, q]
    L = jnp.linalg.cholesky(P)
    mean = jax.vmap(lambda L_, b_: jax.scipy.linalg.cho_solve((L_, True), alpha * b_))(L, b)
    dev = jax.vmap(lambda L_, z_: jax.scipy.linalg.solve_triangular(L_.T, z_, lower=False))(L, z)
    return jnp.where(design.used[:, None], mean + dev, 0.0)
