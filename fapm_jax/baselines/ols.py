"""OLS and OLS-3, with squared or Huber loss (GKX 2020, section 1.1; Table A.5).

OLS uses every input column; OLS-3 only size, book-to-market and momentum (``mvel1``, ``bm``,
``mom12m``), given as column indices. With ``huber=True`` ("+H") the loss is GKX's Huber
function ``H(e; ξ) = e²`` for ``|e| ≤ ξ`` and ``2ξ|e| − ξ²`` beyond, minimised by iteratively
reweighted least squares (weights ``min(1, ξ/|e|)``; each step is a weighted OLS, so the
objective never increases). ``ξ`` is fixed, or the 99.9% quantile of the absolute OLS residuals
on the training rows (:func:`~fapm_jax.baselines.base.huber_threshold`). No hyperparameters:
the grid has one point.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..core.linear import fit_ols
from ..core.masked import masked_quantile
from .base import (
    HUBER_QUANTILE,
    AbstractJaxModel,
    Fit,
    LinearParams,
    linear_predict,
    masked_sse,
    solver_tol,
)

#: GKX's OLS-3 covariates: size, book-to-market, momentum.
OLS3_NAMES = ("mvel1", "bm", "mom12m")


def fit_huber(
    X: Float[Array, "N P"],
    y: Float[Array, " N"],
    mask: Float[Array, " N"],
    xi: Float[Array, ""],
    max_iter: int = 100,
    tol: float | None = None,
) -> LinearParams:
    """Minimise ``Σ mask·H(y − b0 − Xb; ξ)`` by IRLS started from OLS.

    Stops when the largest coefficient change is below ``tol`` relative to the largest
    coefficient (default ``max(1e-7, 64·eps)`` of the dtype: float32 solves cannot do better),
    or after ``max_iter`` steps (under ``vmap``: when every window has stopped).
    With GKX's threshold only ~0.1% of rows are down-weighted and a handful of steps suffice.
    """
    tol = solver_tol(1e-7 if tol is None else tol, X.dtype)
    b0, b = fit_ols(X, y, mask)

    def step(carry):
        b0, b, it, _ = carry
        e = jnp.abs(y - b0 - X @ b)
        w = jnp.where(e > xi, xi / jnp.maximum(e, xi), 1.0)
        n0, n = fit_ols(X, y, mask * w)
        scale = jnp.maximum(jnp.max(jnp.abs(n)), jnp.abs(n0))
        change = jnp.maximum(jnp.max(jnp.abs(n - b)), jnp.abs(n0 - b0)) / jnp.maximum(scale, 1e-30)
        return n0, n, it + 1, change

    def more(carry):
        return (carry[2] < max_iter) & (carry[3] > tol)

    init = (b0, b, jnp.asarray(0, jnp.int32), jnp.asarray(jnp.inf, X.dtype))
    b0, b, _, _ = jax.lax.while_loop(more, step, init)
    return LinearParams(b0, b)


class OLS(AbstractJaxModel):
    """Pooled OLS (``huber=False``) or its Huber-loss version (``huber=True``, "+H").

    ``columns``: the input columns used (``None``: all; OLS-3: the indices of
    :data:`OLS3_NAMES`); the other coefficients are zero. ``huber_xi``: a fixed threshold, or
    ``None`` for the ``huber_quantile`` of the absolute OLS residuals.
    """

    name: str = "OLS"
    columns: tuple[int, ...] | None = None
    huber: bool = False
    huber_xi: float | None = None
    huber_quantile: float = HUBER_QUANTILE
    irls_iters: int = 100
    irls_tol: float | None = None

    def fit(self, X, y, train, valid, key: PRNGKeyArray | None = None) -> Fit:
        P = X.shape[-1]
        cols = list(range(P)) if self.columns is None else list(self.columns)
        Xs = X[:, cols]

        def full(b0, b):  # coefficients of the used columns, zeros elsewhere
            return LinearParams(b0, jnp.zeros(P, X.dtype).at[jnp.asarray(cols)].set(b))

        params = full(*fit_ols(Xs, y, train))
        if self.huber:
            if self.huber_xi is None:
                xi = masked_quantile(jnp.abs(y - linear_predict(params, X)), train, self.huber_quantile)
            else:
                xi = jnp.asarray(self.huber_xi, X.dtype)
            params = full(*fit_huber(Xs, y, train, xi, self.irls_iters, self.irls_tol))
        sse = masked_sse(y, linear_predict(params, X), valid)
        return Fit(params, sse[None], jnp.asarray(0, jnp.int32))

    def predict(self, params: LinearParams, X: Float[Array, "N P"]) -> Float[Array, " N"]:
        return linear_predict(params, X)
