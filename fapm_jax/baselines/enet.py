"""Elastic net, lasso and ridge, with squared or Huber loss (GKX 2020, section 1.2; Table A.5).

GKX penalise the pooled linear model ``ŷ = b0 + x'θ`` with

    L(θ) + φ(θ; λ, ρ),   φ = λ(1 − ρ) Σ_j |θ_j| + ½ λ ρ Σ_j θ_j²,

where ``L`` is the mean squared error ``(1/n) Σ (y − b0 − x'θ)²`` over the training rows, or
the mean of GKX's Huber function ``(1/n) Σ H(y − b0 − x'θ; ξ)`` ("+H"). ``ρ = 0`` is the lasso,
``ρ = 1`` ridge, GKX use ``ρ = 0.5`` and tune ``λ ∈ (1e-4, 1e-1)`` on the validation rows. The
intercept ``b0`` is not penalised. :func:`lasso` and :func:`ridge` build the two special cases
(GKX Table A.1 reports Lasso, Ridge and ENet, each ±H).

**scikit-learn.** Its ``ElasticNet`` minimises ``(1/2n)||y − b0 − Xw||² + α·r·||w||₁ +
½α(1 − r)||w||²``; twice that is GKX's objective exactly when ``α = λ/2`` and ``r = l1_ratio =
1 − ρ`` (``2αr = λ(1 − ρ)``, ``α(1 − r) = ½λρ``). Hence ``Lasso(alpha=λ/2)`` is ``ρ = 0``, and,
since ``Ridge`` minimises ``||y − b0 − Xw||² + α_R ||w||²`` without the ``1/n``,
``Ridge(alpha=n·λ/2)`` is ``ρ = 1`` (``n`` = number of training rows). The tests check all three.

**Solver.** FISTA with restart (:mod:`~fapm_jax.baselines.prox`), a fixed ``n_iter``, every
``λ`` of the grid at once (``vmap``). Columns are centred on the training rows (which
eliminates ``b0`` for the squared loss) and the problem is solved in the scaled coordinates
``z_j = s_j θ_j`` (``s_j`` the training standard deviation): this diagonal preconditioning is an
exact change of variables — the penalty becomes ``Σ λ(1−ρ)|z_j|/s_j + ½λρ z_j²/s_j²``, still
separable with a closed-form prox — so the minimiser is that of GKX's objective on the raw
columns, but the step ``1/L`` is set by the correlation matrix instead of the largest column
scale. Squared loss: each iteration costs ``O(P²)`` with the ``[P, P]`` Gram matrix; Huber loss:
``O(N·P)`` (two matrix–vector products with ``X``; nothing ``[N, P]`` is built per iteration),
started from the squared-loss solution at the same ``λ`` (which costs only ``O(P²)`` per
iteration), so that few of the expensive iterations are spent far from the optimum.
Memory per window: one centred copy of ``X`` to form the Gram matrix (as in
:func:`~fapm_jax.core.linear.fit_ols`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .base import (
    HUBER_QUANTILE,
    AbstractJaxModel,
    Fit,
    LinearParams,
    choose,
    linear_predict,
    masked_sse,
    model_huber_xi,
    solver_tol,
)
from .prox import fista, lipschitz_mse, prox_elastic_net

#: GKX's penalty range λ ∈ (1e-4, 1e-1) (Table A.5), 10 log-spaced points.
GKX_LAMBDAS: tuple[float, ...] = tuple(float(v) for v in np.logspace(-4, -1, 10))


class _Centred:
    """Training-row moments of ``X`` and ``y`` and the scaled centred Gram matrix."""

    def __init__(self, X, y, train):
        dtype = X.dtype
        m = train.astype(dtype)
        n = jnp.sum(m)
        mu = (m @ X) / n
        Xc = X - mu
        var = (m @ (Xc * Xc)) / n
        s = jnp.where(var > 0, jnp.sqrt(var), 1.0)
        ybar = jnp.sum(m * y) / n
        self.m, self.n, self.mu, self.s, self.ybar = m, n, mu, s, ybar
        # Gram matrix and cross moments of the scaled centred columns (Xc / s), divided by n.
        self.G = ((Xc * m[:, None]).T @ Xc) / n / (s[:, None] * s[None, :])
        self.c = (Xc.T @ (m * (y - ybar))) / n / s


def huber_psi(e: Float[Array, ...], xi: Float[Array, ""]) -> Float[Array, ...]:
    """``½ dH/de`` for GKX's Huber function: ``clip(e, −ξ, ξ)``."""
    return jnp.clip(e, -xi, xi)


def solve_enet(
    X: Float[Array, "N P"],
    y: Float[Array, " N"],
    train: Float[Array, " N"],
    lam: Float[Array, ""],
    rho: float,
    n_iter: int,
    xi: Float[Array, ""] | None = None,
    restart: bool = True,
) -> LinearParams:
    """GKX's elastic net for one ``λ`` on the training rows: squared loss (``xi=None``) or mean
    Huber loss with threshold ``xi``. See the module docstring for the objective."""
    path = _solve_path(X, y, train, jnp.reshape(lam, (1,)), rho, n_iter, xi, restart)
    return jax.tree_util.tree_map(lambda a: a[0], path)


def _solve_path(X, y, train, lams, rho, n_iter, xi, restart, huber_tol=None, huber_iter=None) -> LinearParams:
    """:func:`solve_enet` for every ``λ`` in ``lams`` ``[G]`` (vmapped); params ``[G, ...]``."""
    dtype = X.dtype
    cm = _Centred(X, y, train)
    lams = jnp.asarray(lams, dtype)
    P = X.shape[-1]

    L_mse = lipschitz_mse(cm.G)

    def squared(lam):
        """Scaled coefficients ``z`` of the squared-loss fit (intercept eliminated)."""
        l1 = lam * (1.0 - rho) / cm.s
        l2 = lam * rho / (cm.s * cm.s)
        return fista(
            lambda z: 2.0 * (cm.G @ z - cm.c),
            lambda v, t: prox_elastic_net(v, t, l1, l2),
            jnp.zeros(P, dtype),
            L_mse,
            n_iter,
            restart=restart,
        )

    if xi is None:

        def one(lam):
            b = squared(lam) / cm.s
            return LinearParams(cm.ybar - cm.mu @ b, b)

    else:
        L = lipschitz_mse(cm.G, with_intercept=True)
        m, n, mu, s = cm.m, cm.n, cm.mu, cm.s

        def grad(theta):
            a, z = theta  # intercept of the centred model, scaled coefficients
            b = z / s
            e = y - (a - mu @ b) - X @ b
            w = m * huber_psi(e, xi)
            sw = jnp.sum(w)
            return (-2.0 * sw / n, -2.0 * (X.T @ w - mu * sw) / n / s)

        def one(lam):
            l1 = lam * (1.0 - rho) / s
            l2 = lam * rho / (s * s)
            a, z = fista(
                grad,
                lambda v, t: (v[0], prox_elastic_net(v[1], t, l1, l2)),
                (cm.ybar, squared(lam)),  # warm start: the squared-loss fit
                L,
                n_iter if huber_iter is None else huber_iter,
                restart=restart,
                tol=huber_tol,
            )
            b = z / s
            return LinearParams(a - mu @ b, b)

    return jax.vmap(one)(lams)


class ENet(AbstractJaxModel):
    """GKX's elastic net (``rho=0.5``), lasso (``rho=0``) or ridge (``rho=1``), tuned over
    ``lambdas`` on the validation SSE; ``huber=True`` is the "+H" version.

    ``huber_xi``: a fixed Huber threshold, or ``None`` for the ``huber_quantile`` of the
    absolute OLS residuals on the training rows (as for ``OLS+H``). ``n_iter``: FISTA
    iterations of the squared-loss fit (static). The Huber refinement starts from that fit
    and takes at most ``huber_iter`` steps (``None``: ``n_iter``) — each one is a pass over the
    rows, and with GKX's threshold only ~0.1% of them are clipped, so the squared-loss fit is
    already close — stopping once no coefficient moves by more than ``huber_tol`` relative;
    ``restart``: adaptive momentum restart. ``name`` is the table label
    (:func:`lasso`/:func:`ridge`/:func:`enet` set GKX's labels, with ``+H``).
    """

    name: str = "ENet"
    rho: float = 0.5
    lambdas: tuple[float, ...] = GKX_LAMBDAS
    huber: bool = False
    huber_xi: float | None = None
    huber_quantile: float = HUBER_QUANTILE
    n_iter: int = 1000
    restart: bool = True
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
        tol = solver_tol(self.huber_tol, X.dtype)
        grid = _solve_path(
            X, y, train, self.lambdas, self.rho, self.n_iter, xi, self.restart, tol, self.huber_iter
        )
        sse = jax.vmap(lambda p: masked_sse(y, linear_predict(p, X), valid))(grid)
        return choose(grid, sse)

    def predict(self, params: LinearParams, X: Float[Array, "N P"]) -> Float[Array, " N"]:
        return linear_predict(params, X)


def _label(base: str, huber: bool) -> str:
    return base + ("+H" if huber else "")


def enet(huber: bool = False, **kwargs) -> ENet:
    """GKX's ENet (``ρ = 0.5``), labelled ``ENet`` or ``ENet+H``."""
    return ENet(name=kwargs.pop("name", _label("ENet", huber)), rho=0.5, huber=huber, **kwargs)


def lasso(huber: bool = False, **kwargs) -> ENet:
    """The lasso: :class:`ENet` with ``ρ = 0``, labelled ``Lasso`` or ``Lasso+H``."""
    return ENet(name=kwargs.pop("name", _label("Lasso", huber)), rho=0.0, huber=huber, **kwargs)


def ridge(huber: bool = False, **kwargs) -> ENet:
    """Ridge: :class:`ENet` with ``ρ = 1``, labelled ``Ridge`` or ``Ridge+H``."""
    return ENet(name=kwargs.pop("name", _label("Ridge", huber)), rho=1.0, huber=huber, **kwargs)
