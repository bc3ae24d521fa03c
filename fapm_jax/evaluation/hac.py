"""Newey–West (1987) heteroskedasticity- and autocorrelation-consistent long-run covariance.

One Bartlett-kernel sum serves the Diebold–Mariano statistic (GKX's test of section 3.1,
:mod:`~fapm_jax.evaluation.diebold_mariano`) and the portfolio alphas' t statistics
(:mod:`~fapm_jax.evaluation.deciles`); the lag rule is Newey and West (1994).
"""

from __future__ import annotations

import math

import numpy as np
from jaxtyping import Float

from ..core.errors import DataError


def long_run_covariance(u: Float[np.ndarray, "T k"], lag: int) -> Float[np.ndarray, "k k"]:
    """``Γ₀ + Σ_{l=1}^{L} (1 − l/(L+1)) (Γ_l + Γ_lᵀ)`` with ``Γ_l = Σ_t u_t u_{t−l}ᵀ`` (sums, not
    means: the caller scales). ``u``: the (already centred) score series, one row per period."""
    u = np.asarray(u, np.float64)
    if u.ndim == 1:
        u = u[:, None]
    S = u.T @ u
    for lg in range(1, int(lag) + 1):
        G = u[lg:].T @ u[:-lg]
        S += (1.0 - lg / (lag + 1.0)) * (G + G.T)
    return S


def default_lag(n: int) -> int:
    """Newey and West's (1994) rule ``⌊4 (T/100)^{2/9}⌋`` for ``T = n`` periods."""
    if n < 1:
        raise DataError(f"default lag: need at least 1 month, got {n}")
    return int(math.floor(4.0 * (n / 100.0) ** (2.0 / 9.0)))
