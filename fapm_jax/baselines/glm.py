"""Generalized linear model with order-two splines and group lasso (GKX 2020, section 1.4).

Each input column ``z`` enters through ``K = 4`` basis functions

    p(z) = (z, (z − c₁)²₊, (z − c₂)²₊, (z − c₃)²₊),   c₁ < c₂ < c₃,

and the forecast is ``ŷ = b0 + Σ_j p(x_j)'θ_j``. GKX's text writes ``(z − c)²`` without the
positive part, but three untruncated squares span only ``{1, z, z²}`` and the model would collapse
to a quadratic; a spline of order two is built from *truncated* powers, as here (a piecewise
quadratic, continuously differentiable at the knots). **Knots** (GKX do not state theirs): the
25/50/75% quantiles of each column over the training rows of the window (masked, lower
interpolation as :func:`~fapm_jax.core.masked.masked_quantile`; ``knot_quantiles``), so they move with
the window and are stored in the parameters.

The objective is GKX's group lasso

    L(θ) + λ Σ_j ||θ_j||₂,

with ``L`` the mean squared error over the training rows, or the mean Huber loss ("+H"), the
intercept unpenalised and ``λ`` tuned over GKX's range ``(1e-4, 1e-1)`` on the validation SSE.
**Standardisation** (``standardize=True``, the default): the basis columns are centred and
scaled by their training standard deviation before the penalty is applied, i.e. the groups are
``s_j ⊙ θ_j`` — the raw columns ``z`` and ``(z − c)²₊`` have very different scales, and with
raw coefficients the penalty would depend on those scales and FISTA's step on the largest one.
The fitted coefficients are mapped back to the raw basis (``coef = z / s``, ``b0`` absorbs the
means); ``standardize=False`` penalises the raw ``θ_j`` (centring is still used, it does not
change the problem).

**Solver.** FISTA with block soft thresholding (:mod:`~fapm_jax.baselines.prox`), fixed
``n_iter``, all ``λ`` vmapped. Squared loss: the ``[4P, 4P]`` Gram matrix of the centred basis is
accumulated over row chunks of ``row_chunk`` rows, so the ``[N, 4P]`` basis is never stored
(memory ``row_chunk·4P + 16P²`` per window; ``P = 200``: 13 MB + 2.6 MB in float32), then each
iteration costs ``O(P²)``. Huber loss: each iteration applies the basis and its transpose to
vectors through ``X`` and the three ``[N, P]`` arrays ``(X − c_k)²₊`` built on the fly
(temporaries of the size of ``X``), started from the squared-loss solution.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .base import HUBER_QUANTILE, AbstractJaxModel, Fit, choose, masked_sse, model_huber_xi, solver_tol
from .enet import GKX_LAMBDAS, huber_psi
from .prox import fista, lipschitz_mse, prox_group_lasso

#: Basis functions per input column: the column and three truncated squares.
N_BASIS = 4
#: Default knots: quartiles of each column over the training rows.
KNOT_QUANTILES = (0.25, 0.5, 0.75)


class GLMParams(NamedTuple):
    """A fitted spline GLM: ``ŷ = b0 + Σ_j p(x_j; knots_j)' coef_j`` (raw basis)."""

    knots: Float[Array, "P 3"]
    coef: Float[Array, "P 4"]
    b0: Float[Array, ""]


def spline_knots(
    X: Float[Array, "N P"], mask: Float[Array, " N"], quantiles: tuple[float, ...] = KNOT_QUANTILES
) -> Float[Array, "P Q"]:
    """The ``quantiles`` of every column over the rows where ``mask > 0`` (one sort per column;
    the same lower-interpolation rule as :func:`~fapm_jax.core.masked.masked_quantile`)."""
    n = jnp.sum(mask > 0)
    xs = jnp.sort(jnp.where(mask[:, None] > 0, X, jnp.inf), axis=0)
    q = jnp.asarray(quantiles, jnp.float32)
    i = jnp.clip(jnp.floor(q * (n - 1)).astype(jnp.int32), 0, X.shape[0] - 1)
    return xs[i].T


def spline_basis(X: Float[Array, "N P"], knots: Float[Array, "P 3"]) -> Float[Array, "N P 4"]:
    """The explicit basis ``(x, (x − c₁)²₊, (x − c₂)²₊, (x − c₃)²₊)`` of every column (for small
    data and tests; the fit never builds it for all rows)."""
    t = jnp.maximum(X[:, :, None] - knots[None, :, :], 0.0)
    return jnp.concatenate([X[:, :, None], t * t], axis=-1)


def basis_matvec(
    X: Float[Array, "N P"], knots: Float[Array, "P 3"], coef: Float[Array, "P 4"]
) -> Float[Array, " N"]:
    """``B θ`` without building ``B``: ``X θ₀ + Σ_k (X − c_k)²₊ θ_k``."""
    out = X @ coef[:, 0]
    for k in range(knots.shape[-1]):
        t = jnp.maximum(X - knots[:, k], 0.0)
        out = out + (t * t) @ coef[:, k + 1]
    return out


def basis_rmatvec(
    X: Float[Array, "N P"], knots: Float[Array, "P 3"], v: Float[Array, " N"]
) -> Float[Array, "P 4"]:
    """``B' v`` without building ``B``."""
    cols = [v @ X]
    for k in range(knots.shape[-1]):
        t = jnp.maximum(X - knots[:, k], 0.0)
        cols.append(v @ (t * t))
    return jnp.stack(cols, axis=-1)


def _centred_gram(X, y, m, n, mu, ybar, knots, chunk):
    """``(B − μ)' M (B − μ) / n`` ``[4P, 4P]`` and ``(B − μ)' M (y − ȳ) / n`` ``[4P]``,
    accumulated over row blocks of ``chunk`` rows (no padding copy of ``X``)."""
    N, P = X.shape
    K = N_BASIS
    mu = mu.reshape(P * K)

    def block(Xb, yb, mb):
        Bc = spline_basis(Xb, knots).reshape(Xb.shape[0], P * K) - mu
        return (Bc * mb[:, None]).T @ Bc, Bc.T @ (mb * (yb - ybar))

    chunk = max(1, min(chunk, N))
    n_full = N // chunk
    G = jnp.zeros((P * K, P * K), X.dtype)
    c = jnp.zeros(P * K, X.dtype)

    def body(i, acc):
        s = i * chunk
        sl = lambda a: jax.lax.dynamic_slice_in_dim(a, s, chunk, axis=0)  # noqa: E731
        g, cc = block(sl(X), sl(y), sl(m))
        return acc[0] + g, acc[1] + cc

    G, c = jax.lax.fori_loop(0, n_full, body, (G, c))
    if N > n_full * chunk:
        r = n_full * chunk
        g, cc = block(X[r:], y[r:], m[r:])
        G, c = G + g, c + cc
    return G / n, c / n


def solve_glm(
    X: Float[Array, "N P"],
    y: Float[Array, " N"],
    train: Float[Array, " N"],
    knots: Float[Array, "P 3"],
    lams: Float[Array, " G"],
    n_iter: int,
    xi: Float[Array, ""] | None = None,
    *,
    standardize: bool = True,
    restart: bool = True,
    row_chunk: int = 4096,
    huber_tol: float | None = None,
    huber_iter: int | None = None,
) -> GLMParams:
    """The group-lasso spline GLM on the training rows for every ``λ`` in ``lams`` (params with a
    leading ``[G]`` axis): squared loss (``xi=None``) or mean Huber loss with threshold ``xi``."""
    dtype = X.dtype
    P = X.shape[-1]
    K = N_BASIS
    m = train.astype(dtype)
    n = jnp.sum(m)
    ybar = jnp.sum(m * y) / n
    mu = basis_rmatvec(X, knots, m) / n  # [P, K]
    G, c = _centred_gram(X, y, m, n, mu, ybar, knots, row_chunk)
    if standardize:
        var = jnp.diagonal(G).reshape(P, K)
        s = jnp.where(var > 0, jnp.sqrt(jnp.where(var > 0, var, 1.0)), 1.0)
    else:
        s = jnp.ones((P, K), dtype)
    sf = s.reshape(P * K)
    Gs = G / (sf[:, None] * sf[None, :])
    cs = (c / sf).reshape(P, K)
    L_mse = lipschitz_mse(Gs)
    lams = jnp.asarray(lams, dtype)

    def squared(lam):
        return fista(
            lambda z: 2.0 * ((Gs @ z.reshape(P * K)).reshape(P, K) - cs),
            lambda v, t: prox_group_lasso(v, t, lam),
            jnp.zeros((P, K), dtype),
            L_mse,
            n_iter,
            restart=restart,
        )

    def params(a, z):
        coef = z / s
        return GLMParams(knots, coef, a - jnp.sum(mu * coef))

    if xi is None:

        def one(lam):
            return params(ybar, squared(lam))

    else:
        L = lipschitz_mse(Gs, with_intercept=True)

        def grad(theta):
            a, z = theta
            coef = z / s
            e = y - (a - jnp.sum(mu * coef)) - basis_matvec(X, knots, coef)
            w = m * huber_psi(e, xi)
            sw = jnp.sum(w)
            return (-2.0 * sw / n, -2.0 * (basis_rmatvec(X, knots, w) - mu * sw) / n / s)

        def one(lam):
            a, z = fista(
                grad,
                lambda v, t: (v[0], prox_group_lasso(v[1], t, lam)),
                (ybar, squared(lam)),  # warm start: the squared-loss fit
                L,
                n_iter if huber_iter is None else huber_iter,
                restart=restart,
                tol=huber_tol,
            )
            return params(a, z)

    return jax.vmap(one)(lams)


def glm_predict(params: GLMParams, X: Float[Array, "N P"]) -> Float[Array, " N"]:
    return params.b0 + basis_matvec(X, params.knots, params.coef)


class GLM(AbstractJaxModel):
    """GKX's spline GLM with group lasso, tuned over ``lambdas`` on the validation SSE;
    ``huber=True`` is "+H".

    ``knot_quantiles``: the knots' training-row quantiles (three, increasing). ``huber_xi``: a
    fixed Huber threshold, or ``None`` for the ``huber_quantile`` of the absolute OLS residuals
    of ``y`` on the raw ``X`` over the training rows (the same ``ξ`` as ``OLS+H``).
    ``standardize``: penalise the standardised basis coefficients (see the module docstring).
    ``n_iter``: FISTA iterations (static), for the squared-loss fit and again for the Huber
    refinement, at most ``huber_iter`` steps (``None``: ``n_iter``; each is a pass over the rows,
    and the squared-loss start is already close as few rows are clipped), stopping once no
    coefficient moves by more than ``huber_tol`` relative (``None``: never). ``row_chunk``: rows
    per block when accumulating the Gram matrix.
    """

    name: str = "GLM"
    lambdas: tuple[float, ...] = GKX_LAMBDAS
    knot_quantiles: tuple[float, float, float] = KNOT_QUANTILES
    standardize: bool = True
    huber: bool = False
    huber_xi: float | None = None
    huber_quantile: float = HUBER_QUANTILE
    n_iter: int = 2000
    restart: bool = True
    row_chunk: int = 4096
    huber_tol: float | None = 1e-6
    huber_iter: int | None = 200

    def fit(
        self,
        X: Float[Array, "N P"],
        y: Float[Array, " N"],
        train: Float[Array, " N"],
        valid: Float[Array, " N"],
        key: PRNGKeyArray | None = None,
    ) -> Fit:
        xi = model_huber_xi(self, X, y, train)
        knots = spline_knots(X, train, self.knot_quantiles)
        grid = solve_glm(
            X,
            y,
            train,
            knots,
            jnp.asarray(self.lambdas, X.dtype),
            self.n_iter,
            xi,
            standardize=self.standardize,
            restart=self.restart,
            row_chunk=self.row_chunk,
            huber_iter=self.huber_iter,
            huber_tol=solver_tol(self.huber_tol, X.dtype),
        )
        sse = jax.vmap(lambda p: masked_sse(y, glm_predict(p, X), valid))(grid)
        return choose(grid, sse)

    def predict(self, params: GLMParams, X: Float[Array, "N P"]) -> Float[Array, " N"]:
        return glm_predict(params, X)

    def window_bytes(self, n_rows: int, n_cols: int, itemsize: int = 4) -> int:
        """Rough working memory of one window's fit: the ``[N, P]`` truncated-square
        temporaries of the basis products, about four per ``λ`` (all ``λ`` are vmapped). Used
        to size window chunks (:func:`~fapm_jax.studies.comparison.window_chunk_for`): on the embedded
        default (144,000 × 38, four ``λ``) 30 vmapped windows of GLM+H peaked at 11.7 GB."""
        return 4 * len(self.lambdas) * n_rows * n_cols * itemsize


def glm(huber: bool = False, **kwargs) -> GLM:
    """GKX's GLM, labelled ``GLM`` or ``GLM+H``."""
    return GLM(name=kwargs.pop("name", "GLM" + ("+H" if huber else "")), huber=huber, **kwargs)
