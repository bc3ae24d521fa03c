"""Run any comparison model on GKX's covariates, built inside the model's compiled fit.

GKX (2020, section 2.1) feed their models ``z = (1, x_t) ⊗ c_{i,t}`` plus SIC2 dummies (920
columns on the full data). :func:`OnGKXCovariates` wraps a model so that its ``fit`` and
``predict`` receive the panel's factor matrix and expand it with
:func:`~fapm_jax.data.covariates.gkx_covariates` inside the jitted program: no host copy of the
expanded panel is made (XLA still holds it on the device while a window is fitted, ``N × Q``
floats). The wrapper joins its inner model's family: a JAX model stays vmapped over windows, a
host model (trees) stays a loop and gets the expansion in numpy.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..core.errors import ConfigError
from ..data.covariates import gkx_covariates
from .base import AbstractHostModel, AbstractJaxModel, AbstractModel, Fit, fields_repr


class AbstractOnGKXCovariates(AbstractModel):
    """``inner`` fitted on ``chars ⊗ (1, macro)`` (+ SIC2 dummies) of the factor matrix.

    ``chars``, ``macro``, ``sic``: column indices into the factor matrix (see
    :func:`~fapm_jax.data.covariates.covariate_blocks`).
    """

    inner: AbstractModel
    chars: tuple[int, ...]
    macro: tuple[int, ...]
    sic: tuple[int, ...] = ()

    _repr_is_jax_after: ClassVar[str | None] = None

    @property
    def name(self) -> str:
        return self.inner.name

    @abc.abstractmethod
    def expand(self, X: Float[Array, "N n"]) -> Float[Array, "N Q"]:
        """The GKX covariates of the factor matrix ``X``."""

    def window_bytes(self, n_rows: int, n_cols: int, itemsize: int = 4) -> int:
        """The inner model's per-window working memory on the expanded columns."""
        q = len(self.chars) * (1 + len(self.macro)) + len(self.sic)
        return self.inner.window_bytes(n_rows, q, itemsize)

    def fit(self, X, y, train, valid, key: PRNGKeyArray) -> Fit:
        return self.inner.fit(self.expand(X), y, train, valid, key)

    def predict(self, params, X):
        return self.inner.predict(params, self.expand(X))

    def __repr__(self) -> str:
        return fields_repr(self, "OnGKXCovariates", None)


class JaxOnGKXCovariates(AbstractOnGKXCovariates, AbstractJaxModel):
    """A JAX model on GKX's covariates: expanded inside its vmapped, compiled fit."""

    def expand(self, X: Float[Array, "N n"]) -> Float[Array, "N Q"]:
        X = jnp.asarray(X)
        s = X[:, list(self.sic)] if self.sic else None
        return gkx_covariates(X[:, list(self.chars)], X[:, list(self.macro)], s)


class HostOnGKXCovariates(AbstractOnGKXCovariates, AbstractHostModel):
    """A host model (trees) on GKX's covariates: expanded in numpy (the same columns as
    :func:`~fapm_jax.data.covariates.gkx_covariates`), windows in a loop."""

    def expand(self, X: Float[np.ndarray, "N n"]) -> Float[np.ndarray, "N Q"]:
        X = np.asarray(X)
        c, m = X[:, list(self.chars)], X[:, list(self.macro)]
        z = np.concatenate([np.ones((X.shape[0], 1), X.dtype), m], axis=1)
        out = (c[:, :, None] * z[:, None, :]).reshape(X.shape[0], -1)
        return np.concatenate([out, X[:, list(self.sic)]], axis=1) if self.sic else out


def OnGKXCovariates(
    inner: AbstractModel, chars: tuple[int, ...], macro: tuple[int, ...], sic: tuple[int, ...] = ()
) -> AbstractOnGKXCovariates:
    """``inner`` on GKX's covariates, in ``inner``'s family (see :class:`AbstractOnGKXCovariates`)."""
    if isinstance(inner, AbstractJaxModel):
        return JaxOnGKXCovariates(inner, chars, macro, sic)
    if isinstance(inner, AbstractHostModel):
        return HostOnGKXCovariates(inner, chars, macro, sic)
    raise ConfigError(f"OnGKXCovariates: inner must be a comparison model, got {type(inner).__name__}")
