"""FAPM itself behind the comparison-model protocol, so that the GKX simulation study
(:mod:`~fapm_jax.studies.simulation_study`) can vmap it over Monte Carlo repetitions like every other model.

The rolling empirical study trains FAPM with :func:`~fapm_jax.studies.rolling.run_rolling` (all
windows and sweep settings in one program); this wrapper runs the same per-window trainer
(:func:`~fapm_jax.core.rows.init_state` + :func:`~fapm_jax.core.rows.train_epochs`: OLS start, best
epoch on validation R², divergence guard) on one data set, so it vmaps over ``(X, y, masks)``.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..core.config import TrainConfig, hyper_from_config
from ..core.model import FAPMParams, predict
from ..core.rows import init_state, train_epochs
from .base import Fit, masked_sse


@dataclasses.dataclass(frozen=True)
class FAPM:
    """FAPM trained as in Algorithm 2 on one window; ``config.self_interactions`` gives the
    variant with ``x_i²`` terms. The key replaces ``config.seed``."""

    name: str = "FAPM"
    config: TrainConfig = TrainConfig()
    is_jax: bool = True

    def fit(self, X, y, train, valid, key: PRNGKeyArray) -> Fit:
        cfg = self.config
        n_batches = 1 if cfg.batch_size is None else math.ceil(X.shape[0] / cfg.batch_size)
        hyper = hyper_from_config(cfg)
        state = init_state(X, y, train, valid, hyper, key, config=cfg)
        state = train_epochs(
            state, X, y, train, valid, hyper, config=cfg, n_epochs=cfg.epochs, n_batches=n_batches
        )
        params = state.best_params
        return Fit(params, masked_sse(y, predict(params, X), valid)[None], jnp.asarray(0, jnp.int32))

    def predict(self, params: FAPMParams, X: Float[Array, "N n"]) -> Float[Array, " N"]:
        return predict(params, X)
