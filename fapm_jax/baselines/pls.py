"""Partial least squares, PLS1 (GKX 2020, section 1.3; Table A.5 tunes the number of
components).

Where PCR keeps the directions of largest predictor variance, PLS keeps those most covariant
with the return. With a single target, PLS with ``K`` components (NIPALS with deflation, as in
scikit-learn's ``PLSRegression(scale=False)``) is least squares restricted to the Krylov space
``span{s, Cs, …, C^{K−1}s}``, ``C = Xc'Xc/n``, ``s = Xc'yc/n`` on the (mask-weighted, centred)
training rows. We build an orthonormal basis ``W`` of that space by Lanczos/Arnoldi with full
re-orthogonalization (Gram–Schmidt twice, so it stays orthonormal in float32), then for every
``K`` solve the ``K × K`` projected normal equations ``(W_K'CW_K) a = W_K's``, ``b_K = W_K a``,
by a batched symmetric eigendecomposition with a relative eigenvalue cut-off. Everything works
on the ``P × P`` moments, so its cost after forming ``C`` is ``O(P²·Kmax)``, not
``O(N·P·Kmax)``.
If the Krylov space stops growing (an invariant subspace: PLS has reached the OLS fit on it),
the later basis vectors are zero and the larger ``K`` repeat that fit.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .base import LinearParams
from .pcr import AbstractComponentRegression, _to_linear, centred_moments, default_rcond

#: Default largest number of components tried (GKX Table A.5 tune ``K``; capped at ``P``).
PLS_MAX_COMPONENTS = 30

_HI = "highest"


def krylov_basis(
    C: Float[Array, "P P"], s: Float[Array, " P"], kmax: int, tol: Float[Array, ""]
) -> Float[Array, "P K"]:
    """Orthonormal basis ``[w_1 … w_kmax]`` of ``span{s, Cs, …, C^{kmax−1}s}`` (Arnoldi, full
    re-orthogonalization twice). A new direction whose residual norm is ``≤ tol`` is a
    breakdown (the space is invariant): it and every later column are zero."""
    P = C.shape[-1]
    dtype = C.dtype
    s_norm = jnp.linalg.norm(s)
    ok = s_norm > jnp.finfo(dtype).tiny
    v0 = jnp.where(ok, s / jnp.where(ok, s_norm, 1.0), 0.0)

    def step(carry, j):
        W, v = carry
        W = W.at[:, j].set(v)
        r = jnp.matmul(C, v, precision=_HI)
        r = r - jnp.matmul(W, jnp.matmul(W.T, r, precision=_HI), precision=_HI)
        r = r - jnp.matmul(W, jnp.matmul(W.T, r, precision=_HI), precision=_HI)
        beta = jnp.linalg.norm(r)
        grow = beta > tol
        return (W, jnp.where(grow, r / jnp.where(grow, beta, 1.0), 0.0)), None

    (W, _), _ = jax.lax.scan(step, (jnp.zeros((P, kmax), dtype), v0), jnp.arange(kmax))
    return W


def pls_path(
    X: Float[Array, "N P"],
    y: Float[Array, " N"],
    mask: Float[Array, " N"],
    kmax: int,
    *,
    rcond: float | None = None,
) -> LinearParams:
    """PLS1 fits with ``K = 1..kmax`` components on the rows of ``mask``: ``LinearParams`` with
    a leading ``[kmax]`` axis (row ``k`` uses ``k+1`` components). ``kmax ≤ P`` (static)."""
    P = X.shape[-1]
    if not 1 <= kmax <= P:
        raise ValueError(f"kmax must be in 1..{P}, got {kmax}")
    if rcond is None:
        rcond = default_rcond(X.dtype, P)
    mu, y_mu, C, s = centred_moments(X, y, mask)
    scale = jnp.sqrt(jnp.sum(C * C))  # Frobenius norm ≥ λ_max(C)
    W = krylov_basis(C, s, kmax, rcond * scale)
    T = jnp.matmul(W.T, jnp.matmul(C, W, precision=_HI), precision=_HI)
    T = 0.5 * (T + T.T)  # [kmax, kmax], = W'CW
    u = jnp.matmul(W.T, s, precision=_HI)
    # Leading K × K blocks of T, padded with the identity to one batch of kmax × kmax systems.
    idx = jnp.arange(kmax)
    inside = idx[None, :] < idx[:, None] + 1  # [K, kmax]: column j is in the block K = k+1
    block = inside[:, :, None] & inside[:, None, :]
    TK = jnp.where(block, T, jnp.eye(kmax, dtype=T.dtype))
    uK = jnp.where(inside, u, 0.0)
    lam, Q = jnp.linalg.eigh(TK)  # [K, kmax], [K, kmax, kmax]
    lam_max = jnp.maximum(lam[-1, -1], 0.0)  # the largest eigenvalue of the full T (K = kmax)
    keep = lam > rcond * lam_max
    inv = jnp.where(keep, 1.0 / jnp.where(keep, lam, 1.0), 0.0)
    a = jnp.einsum("kij,kj,klj,kl->ki", Q, inv, Q, uK, precision=_HI)  # T_K⁺ u_K
    a = jnp.where(inside, a, 0.0)
    B = jnp.matmul(a, W.T, precision=_HI)  # [kmax, P]
    return _to_linear(mu, y_mu, B)


class PLS(AbstractComponentRegression):
    """Partial least squares (PLS1) on the Krylov directions of the training rows
    (:func:`pls_path`); ``Kmax`` defaults to :data:`PLS_MAX_COMPONENTS` (30). ``rcond`` also
    sets the Krylov breakdown test."""

    name: str = "PLS"
    default_components: ClassVar[int] = PLS_MAX_COMPONENTS

    def path(self, X, y, mask, kmax):
        return pls_path(X, y, mask, kmax, rcond=self.rcond)
