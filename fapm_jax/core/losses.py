"""Losses and R² in the paper's convention (section 2.3).

R² here is measured against a **zero** forecast, not the sample mean, as in Gu, Kelly and Xiu
(2020) and Equation (FAPM: R²_is): ``R² = 1 − Σ (r − r̂)² / Σ r²``. Rows enter through a
0/1 (or weight) ``mask`` so that one panel can serve many windows without copies.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from .model import FAPMParams, predict


def masked_sse_ratio(
    r: Float[Array, " N"], r_hat: Float[Array, " N"], mask: Float[Array, " N"]
) -> Float[Array, ""]:
    """``Σ mask·(r − r̂)² / Σ mask·r²``, i.e. ``1 − R²`` against a zero forecast."""
    resid = r - r_hat
    return jnp.sum(mask * resid * resid) / jnp.sum(mask * r * r)


def r2_score(
    r: Float[Array, " N"], r_hat: Float[Array, " N"], mask: Float[Array, " N"] | None = None
) -> Float[Array, ""]:
    """Pooled R² of forecasts ``r̂`` for ``r`` over the masked rows, Equation (FAPM: R²_oos)."""
    if mask is None:
        mask = jnp.ones_like(r)
    return 1.0 - masked_sse_ratio(r, r_hat, mask)


def r2_loss(
    params: FAPMParams, X: Float[Array, "N n"], r: Float[Array, " N"], mask: Float[Array, " N"]
) -> Float[Array, ""]:
    """The training loss ``1 − R²_is`` (Equation FAPM: R²_is) over the masked rows."""
    return masked_sse_ratio(r, predict(params, X), mask)


def huber(x: Float[Array, ...], delta: float | Float[Array, ""]) -> Float[Array, ...]:
    """Gu–Kelly–Xiu's Huber function: ``x²`` inside ``|x| ≤ δ``, ``2δ|x| − δ²`` outside.

    It equals ``2 ×`` optax's ``huber_loss`` (which carries a factor ½), so that it agrees with
    the squared error inside the threshold.
    """
    return 2.0 * optax.losses.huber_loss(x, delta=delta)


def masked_huber_ratio(
    r: Float[Array, " N"],
    r_hat: Float[Array, " N"],
    mask: Float[Array, " N"],
    delta: float | Float[Array, ""],
) -> Float[Array, ""]:
    """``Σ mask·H(r − r̂; δ) / Σ mask·r²``; tends to :func:`masked_sse_ratio` as ``δ → ∞``."""
    return jnp.sum(mask * huber(r - r_hat, delta)) / jnp.sum(mask * r * r)


def huber_r2_loss(
    params: FAPMParams,
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    mask: Float[Array, " N"],
    delta: float | Float[Array, ""],
) -> Float[Array, ""]:
    """Huber variant of :func:`r2_loss` (GKX's "+H"): robust to the fat tails of returns.

    The squared residual is replaced by the Huber function with threshold ``delta`` and the
    same normalisation ``Σ mask·r²`` is kept, so the two losses share their scale.
    """
    return masked_huber_ratio(r, predict(params, X), mask, delta)
