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

Drawn in turn with the FAPM parameters, the slopes mix slowly where a month's slope is better
determined by its own stocks than by the prior: ``u_t`` follows the parameters and they follow
``u_t``. The collapsed conditionals integrate the slopes out instead (:func:`gls_terms`): a
parameter block with design ``H`` has likelihood precision ``Hᵀ Σ⁻¹ H`` and score
``Hᵀ Σ⁻¹ r`` under the months' covariance ``Σ_t = I/α + Z_t Λ_u⁻¹ Z_tᵀ``, by Woodbury
``Σ_t⁻¹ = α I − α² Z_t M_t⁻¹ Z_tᵀ``, ``M_t = Λ_u + α Z_tᵀ Z_t`` — ``O(size · q · k)`` per block
from the month sums ``Z_tᵀ H_t`` and ``Z_tᵀ r_t`` (:func:`month_sums`).
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


def month_design(
    X: Float[Array, "size n"], ok: Bool[Array, " size"], month, slopes, T: int, intercept: bool = True
) -> MonthDesign:
    """``Z = (1, X[:, slopes])`` (without the 1 for ``intercept=False``) on the rows where ``ok``
    (0 elsewhere) and ``Σ_i z_i z_iᵀ`` per month: the window's part of every conditional that
    does not change between sweeps. The rows must be in month order (the month sums use
    sorted segments; :func:`~fapm_jax.core.gibbs.sample_windows` sorts them)."""
    Z = jnp.where(ok[:, None], X[:, jnp.asarray(slopes, jnp.int32)], 0.0)
    if intercept:
        Z = jnp.concatenate([ok.astype(X.dtype)[:, None], Z], axis=1)
    gram = jax.ops.segment_sum(Z[:, :, None] * Z[:, None, :], month, T, indices_are_sorted=True)
    used = jax.ops.segment_sum(ok.astype(jnp.int32), month, T, indices_are_sorted=True) > 0
    return MonthDesign(Z, month, gram, used)


def month_sums(design: MonthDesign, H: Float[Array, "size ..."]) -> Float[Array, "T q ..."]:
    """``Z_tᵀ H_t`` of every month (``H`` a vector ``[size]`` or a matrix ``[size, k]``)."""
    T = design.gram.shape[0]
    ZH = design.Z * H[:, None] if H.ndim == 1 else design.Z[:, :, None] * H[:, None, :]
    return jax.ops.segment_sum(ZH, design.month, T, indices_are_sorted=True)


def marginal_inverse(design: MonthDesign, alpha, lam_u: Float[Array, " q"]) -> Float[Array, "T q q"]:
    """``M_t⁻¹ = (Λ_u + α Z_tᵀ Z_t)⁻¹`` of every month: the Woodbury core of ``Σ_t⁻¹``."""
    q = lam_u.shape[0]
    M = alpha * design.gram + jnp.eye(q, dtype=design.Z.dtype) * lam_u
    L = jnp.linalg.cholesky(M)
    eye = jnp.broadcast_to(jnp.eye(q, dtype=M.dtype), M.shape)
    return jax.vmap(lambda L_, I_: jax.scipy.linalg.cho_solve((L_, True), I_))(L, eye)


def gls_terms(A: Float[Array, "T q k"], Hh, Hr, b: Float[Array, "T q"], Minv, alpha):
    """``(Hᵀ Σ⁻¹ H, Hᵀ Σ⁻¹ r)`` under the months' marginal covariance
    ``Σ_t = I/α + Z_t Λ_u⁻¹ Z_tᵀ`` from ``A = Z_tᵀ H_t`` (:func:`month_sums`), ``Hh = HᵀH``,
    ``Hr = Hᵀ r``, ``b = Z_tᵀ r_t`` and :func:`marginal_inverse` (Woodbury:
    ``Σ_t⁻¹ = α I − α² Z_t M_t⁻¹ Z_tᵀ``)."""
    MA = jnp.einsum("tqr,trk->tqk", Minv, A)
    P = alpha * Hh - alpha**2 * jnp.einsum("tqk,tql->kl", A, MA)
    c = alpha * Hr - alpha**2 * jnp.einsum("tqk,tq->k", MA, b)
    return P, c


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
    b = month_sums(design, r_)  # [T, q]
    P = alpha * design.gram + jnp.eye(q, dtype=z.dtype) * lam_u  # [T, q, q]
    L = jnp.linalg.cholesky(P)
    mean = jax.vmap(lambda L_, b_: jax.scipy.linalg.cho_solve((L_, True), alpha * b_))(L, b)
    dev = jax.vmap(lambda L_, z_: jax.scipy.linalg.solve_triangular(L_.T, z_, lower=False))(L, z)
    return jnp.where(design.used[:, None], mean + dev, 0.0)
