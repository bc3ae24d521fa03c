"""FAPM itself behind the comparison-model contract, so that the GKX simulation study
(:mod:`~fapm_jax.studies.simulation_study`) can vmap it over Monte Carlo repetitions like every other model.

The rolling empirical study trains FAPM with :func:`~fapm_jax.studies.rolling.run_rolling` (all
windows and sweep settings in one program); this wrapper runs the same per-window trainer
(:func:`~fapm_jax.core.rows.init_state` + :func:`~fapm_jax.core.rows.train_epochs`: OLS start, best
epoch on validation R², divergence guard) on one data set, so it vmaps over ``(X, y, masks)``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..core.config import TrainConfig, hyper_from_config, n_batches_for
from ..core.model import FAPMParams, predict
from ..core.rows import init_state, train_epochs
from .base import AbstractJaxModel, Fit, masked_sse


class FAPM(AbstractJaxModel):
    """FAPM trained as in Algorithm 2 on one window; ``config.self_interactions`` gives the
    variant with ``x_i²`` terms. The key replaces ``config.seed``."""

    name: str = "FAPM"
    config: TrainConfig = TrainConfig()

    def fit(self, X, y, train, valid, key: PRNGKeyArray) -> Fit:
        cfg = self.config
        # ``train`` is traced (vmapped windows or repetitions): size the batches for all N rows,
        # which hold any window's training rows.
        n_batches = n_batches_for(cfg, np.ones((1, X.shape[0]), bool))
        hyper = hyper_from_config(cfg)
        state = init_state(X, y, train, valid, hyper, key, config=cfg)
        state, _ = train_epochs(
            state, X, y, train, valid, hyper, config=cfg, n_epochs=cfg.epochs, n_batches=n_batches
        )
        params = state.best_params
        return Fit(params, masked_sse(y, predict(params, X), valid)[None], jnp.asarray(0, jnp.int32))

    def predict(self, params: FAPMParams, X: Float[Array, "N n"]) -> Float[Array, " N"]:
        return predict(params, X)
