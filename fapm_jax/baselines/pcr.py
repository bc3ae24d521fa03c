"""Principal components regression (GKX 2020, section 1.3; Table A.5 tunes the number of
components).

PCR reduces the predictors to their first ``K`` principal components and regresses the return
on them by least squares. On the training rows (mask-weighted) ``X`` and ``y`` are centred by
their masked means and the covariance ``C = Xc'Xc/n`` is eigen-decomposed; the components are
uncorrelated, so the fit with ``K`` components is the sum of ``K`` one-component regressions,
``b_K = Σ_{j≤K} v_j (v_j's)/λ_j`` with ``s = Xc'yc/n`` — every ``K`` at once is a cumulative
sum. Nothing is standardized (PCA acts on the predictors as given: GKX's rank-normalized
characteristics). Eigenvalues below ``rcond·λ_max`` are treated as zero (their component adds
nothing), so ``K`` past the numerical rank repeats the minimum-norm fit.

PCR and PLS (:mod:`~fapm_jax.baselines.pls`) differ only in their path of fits:
:class:`AbstractComponentRegression` holds their grid, validation choice and forecast.
"""

import abc
from typing import ClassVar

import jax.numpy as jnp
from equinox import AbstractClassVar
from jaxtyping import Array, Float, PRNGKeyArray

from .base import AbstractJaxModel, Fit, LinearParams, choose, linear_predict

#: Default largest number of components tried (GKX Table A.5 tune ``K``; capped at ``P``).
PCR_MAX_COMPONENTS = 50

_HI = "highest"  # full float32 matmuls (no TF32 passes on GPU) for the moment matrices


def default_rcond(dtype, P: int) -> float:
    """Relative eigenvalue cut-off: ``10 · eps(dtype) · P`` (the rounding floor of an eigenvalue
    of a ``P × P`` moment matrix)."""
    return 10.0 * float(jnp.finfo(dtype).eps) * P


def centred_moments(
    X: Float[Array, "N P"], y: Float[Array, " N"], mask: Float[Array, " N"]
) -> tuple[Float[Array, " P"], Float[Array, ""], Float[Array, "P P"], Float[Array, " P"]]:
    """Masked means ``x̄, ȳ``, covariance ``C = Xc'diag(m)Xc/n`` and cross-moment
    ``s = Xc'diag(m)(y−ȳ)/n`` over the rows where ``mask`` is non-zero (weighted by it)."""
    m = mask.astype(X.dtype)
    n = jnp.maximum(jnp.sum(m), jnp.finfo(X.dtype).tiny)
    mu = jnp.matmul(m, X, precision=_HI) / n
    y_mu = jnp.sum(m * y) / n
    Xc = X - mu
    C = jnp.matmul((Xc * m[:, None]).T, Xc, precision=_HI) / n
    C = 0.5 * (C + C.T)
    s = jnp.matmul(Xc.T, m * (y - y_mu), precision=_HI) / n
    return mu, y_mu, C, s


def _to_linear(mu: Float[Array, " P"], y_mu: Float[Array, ""], B: Float[Array, "K P"]) -> LinearParams:
    """Coefficients on centred ``X`` → ``LinearParams`` in the original ``X`` space."""
    return LinearParams(y_mu - jnp.matmul(B, mu, precision=_HI), B)


def pcr_path(
    X: Float[Array, "N P"],
    y: Float[Array, " N"],
    mask: Float[Array, " N"],
    kmax: int,
    *,
    rcond: float | None = None,
) -> LinearParams:
    """PCR fits with ``K = 1..kmax`` components on the rows of ``mask``: ``LinearParams`` with a
    leading ``[kmax]`` axis (row ``k`` uses ``k+1`` components). ``kmax ≤ P`` (static)."""
    P = X.shape[-1]
    if not 1 <= kmax <= P:
        raise ValueError(f"kmax must be in 1..{P}, got {kmax}")
    mu, y_mu, C, s = centred_moments(X, y, mask)
    lam, V = jnp.linalg.eigh(C)  # ascending
    lam, V = lam[::-1][:kmax], V[:, ::-1][:, :kmax]  # the kmax largest, descending
    if rcond is None:
        rcond = default_rcond(X.dtype, P)
    keep = lam > rcond * jnp.maximum(lam[0], 0.0)
    gamma = jnp.where(keep, jnp.matmul(V.T, s, precision=_HI) / jnp.where(keep, lam, 1.0), 0.0)
    B = jnp.cumsum(V * gamma, axis=1).T  # [kmax, P]: Σ_{j≤k} v_j γ_j
    return _to_linear(mu, y_mu, B)


def path_valid_sse(
    params: LinearParams, X: Float[Array, "N P"], y: Float[Array, " N"], valid: Float[Array, " N"]
) -> Float[Array, " K"]:
    """Validation SSE ``Σ valid·(y − ŷ_k)²`` of every fit on a path (leading ``[K]`` axis)."""
    resid = y[:, None] - params.b0 - jnp.matmul(X, params.b.T, precision=_HI)  # [N, K]
    return jnp.matmul(valid, resid * resid, precision=_HI)


class AbstractComponentRegression(AbstractJaxModel):
    """A linear fit on ``K`` components, ``K`` chosen on validation SSE (GKX section 1.3).

    Grid: ``K = 1..Kmax`` with ``Kmax = min(P, max_components)``; ``max_components=None`` means
    the family's :attr:`default_components`. ``Fit.choice`` is ``K − 1``. ``rcond``: the relative
    eigenvalue cut-off (``None``: :func:`default_rcond`). Subclasses give the path of fits.
    """

    name: str
    max_components: int | None = None
    rcond: float | None = None

    default_components: AbstractClassVar[int]
    _repr_is_jax_after: ClassVar[str | None] = "max_components"  # the former dataclasses' order

    @abc.abstractmethod
    def path(self, X: Float[Array, "N P"], y: Float[Array, " N"], mask: Float[Array, " N"], kmax: int):
        """The fits with ``K = 1..kmax`` components on the rows of ``mask`` (leading ``[kmax]``)."""

    def kmax(self, P: int) -> int:
        k = self.default_components if self.max_components is None else self.max_components
        return max(1, min(P, k))

    def fit(self, X, y, train, valid, key: PRNGKeyArray | None = None) -> Fit:
        path = self.path(X, y, train, self.kmax(X.shape[-1]))
        return choose(path, path_valid_sse(path, X, y, valid))

    def predict(self, params: LinearParams, X: Float[Array, "N P"]) -> Float[Array, " N"]:
        return linear_predict(params, X)


class PCR(AbstractComponentRegression):
    """Principal components regression: the ``K`` leading principal components of the
    training rows (:func:`pcr_path`); ``Kmax`` defaults to :data:`PCR_MAX_COMPONENTS` (50)."""

    name: str = "PCR"
    default_components: ClassVar[int] = PCR_MAX_COMPONENTS

    def path(self, X, y, mask, kmax):
        return pcr_path(X, y, mask, kmax, rcond=self.rcond)
