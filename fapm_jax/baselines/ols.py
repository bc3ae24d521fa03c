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

import dataclasses

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..linear import fit_ols
from .base import HUBER_QUANTILE, Fit, LinearParams, linear_predict, masked_sse, select_columns

#: GKX's OLS-3 covariates: size, book-to-market, momentum.
OLS3_NAMES = ("mvel1", "bm", "mom12m")


def fit_huber(
    X: Float[Array, "N P"],
    y: Float[Array, " N"],
    mask: Float[Array, " N"],
    xi: Float[Array, ""],
    n_iter: int = 50,
) -> LinearParams:
    """Minimise ``Σ mask·H(y − b0 − Xb; ξ)`` by IRLS started from OLS."""
    b0, b = fit_ols(X, y, mask)

    def step(carry, _):
        b0, b = carry
        e = jnp.abs(y - b0 - X @ b)
        w = jnp.where(e > xi, xi / jnp.maximum(e, xi), 1.0)
        return fit_ols(X, y, mask * w), None

    (b0, b), _ = jax.lax.scan(step, (b0, b), None, length=n_iter)
    return LinearParams(b0, b)


@dataclasses.dataclass(frozen=True)
class OLS:
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
    irls_iters: int = 50
    is_jax: bool = True

    def fit(self, X, y, train, valid, key: PRNGKeyArray | None = None) -> Fit:
        cols = jnp.asarray(select_columns(X.shape[-1], self.columns), X.dtype)
        Xs = X * cols
        b0, b = fit_ols(Xs, y, train)
        params = LinearParams(b0, b * cols)
        if self.huber:
            if self.huber_xi is None:
                from ..masked import masked_quantile

                xi = masked_quantile(jnp.abs(y - linear_predict(params, X)), train, self.huber_quantile)
            else:
                xi = jnp.asarray(self.huber_xi, X.dtype)
            p = fit_huber(Xs, y, train, xi, self.irls_iters)
            params = LinearParams(p.b0, p.b * cols)
        sse = masked_sse(y, linear_predict(params, X), valid)
        return Fit(params, sse[None], jnp.asarray(0, jnp.int32))

    def predict(self, params: LinearParams, X: Float[Array, "N P"]) -> Float[Array, " N"]:
        return linear_predict(params, X)
