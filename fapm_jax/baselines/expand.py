"""Run any comparison model on GKX's covariates, built inside the model's compiled fit.

GKX (2020, section 2.1) feed their models ``z = (1, x_t) ⊗ c_{i,t}`` plus SIC2 dummies (920
columns on the full data). :class:`OnGKXCovariates` wraps a model so that its ``fit`` and
``predict`` receive the panel's factor matrix and expand it with
:func:`~fapm_jax.data.covariates.gkx_covariates` inside the jitted program: no host copy of the
expanded panel is made (XLA still holds it on the device while a window is fitted, ``N × Q``
floats). Host models (trees) get the expansion in numpy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..data.covariates import gkx_covariates
from .base import Fit


@dataclasses.dataclass(frozen=True)
class OnGKXCovariates:
    """``inner`` fitted on ``chars ⊗ (1, macro)`` (+ SIC2 dummies) of the factor matrix.

    ``chars``, ``macro``, ``sic``: column indices into the factor matrix (see
    :func:`~fapm_jax.data.covariates.covariate_blocks`).
    """

    inner: Any
    chars: tuple[int, ...]
    macro: tuple[int, ...]
    sic: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def is_jax(self) -> bool:
        return self.inner.is_jax

    def expand(self, X: Float[Array, "N n"]) -> Float[Array, "N Q"]:
        xp = jnp if self.is_jax else np
        X = xp.asarray(X)
        c, m = X[:, list(self.chars)], X[:, list(self.macro)]
        if self.is_jax:
            s = X[:, list(self.sic)] if self.sic else None
            return gkx_covariates(c, m, s)
        z = np.concatenate([np.ones((X.shape[0], 1), X.dtype), m], axis=1)
        out = (c[:, :, None] * z[:, None, :]).reshape(X.shape[0], -1)
        return np.concatenate([out, X[:, list(self.sic)]], axis=1) if self.sic else out

    def window_bytes(self, n_rows: int, n_cols: int, itemsize: int = 4) -> int:
        """The inner model's per-window working memory on the expanded columns (0 if it does
        not say)."""
        f = getattr(self.inner, "window_bytes", None)
        q = len(self.chars) * (1 + len(self.macro)) + len(self.sic)
        return 0 if f is None else f(n_rows, q, itemsize)

    def fit(self, X, y, train, valid, key: PRNGKeyArray) -> Fit:
        return self.inner.fit(self.expand(X), y, train, valid, key)

    def predict(self, params, X):
        return self.inner.predict(params, self.expand(X))
