"""Does FAPM-MAP gain from a refit on the training + validation years once each window's
setting is chosen? On the embedded default: the ``--estimator map`` run (per-window choice on
the validation years), then each window's chosen setting trained again on the moments of its
training and validation rows — its OLS start, its Adam path stopped at the chosen epoch (the
converged optimum where that was chosen), and its converged optimum — each scored on the test
year (docs/training.md, "Penalised FAPM"). About 6 minutes on a 2-core CPU.

    python experiments/embedded_map_refit.py
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import fapm_jax as fj
from fapm_jax.core import moments
from fapm_jax.core.fit import static_config
from fapm_jax.data.windows import rolling_windows, window_masks
from fapm_jax.studies.estimators import make_estimator, run_estimator
from fapm_jax.studies.rolling import predict_test_rows


def main() -> None:
    panel, _ = fj.simulate_panel()
    spec = fj.WindowSpec()
    train, valid, test = (np.asarray(m, bool) for m in window_masks(panel.year, rolling_windows(spec)))
    est = make_estimator(dataclasses.replace(fj.TrainConfig(), estimator="map"), panel, spec)
    run = run_estimator(panel, est, spec)
    r = np.asarray(panel.r, np.float64)[run.test_rows]

    def r2(f):
        return 100 * (1 - np.sum((r - f) ** 2) / np.sum(r**2))

    print(f"FAPM-MAP, fit on the training years: R²_oos {r2(run.predictions['r_hat'].to_numpy()):.2f}%")
    W, E = len(run.windows), est.config.epochs
    sel = (run.setting, np.arange(W))
    epoch = np.asarray(run.result.best_epoch)[sel]  # 0: OLS start, E + 1: converged optimum

    def pick(p):
        return jax.tree_util.tree_map(lambda a: a[sel], p)

    def put(into, new, where):
        m = jnp.asarray(where)
        return jax.tree_util.tree_map(
            lambda a, b: jnp.where(m.reshape((-1,) + (1,) * (a.ndim - 1)), b, a), into, new
        )

    X = jnp.asarray(panel.X)
    mtr, mva = moments.window_moments(
        X, jnp.asarray(panel.r), train | valid, valid, self_interactions=est.config.self_interactions
    )
    cfg, hyper = static_config(est.config), est.hyper
    state = moments.init_all(mtr, mva, hyper, config=cfg, n=X.shape[1])
    ols = matched = pick(state.best_params)
    for e in range(1, E + 1):  # one epoch per call, to keep each window's chosen epoch
        state, _ = moments.epochs_all(
            state, mtr, mva, hyper, jnp.asarray(e - 1), jnp.asarray(E), config=cfg, n_epochs=1
        )
        if (epoch == e).any():
            matched = put(matched, pick(state.params), epoch == e)
    state, _, _ = moments.converge_all(state, mtr, mva, hyper, jnp.asarray(E + 1))
    converged = pick(state.params)
    matched = put(matched, converged, epoch == E + 1)
    rows, tm = test.any(axis=0), jnp.asarray(test)
    for name, p in (
        ("OLS start", ols),
        ("chosen epoch (or optimum)", matched),
        ("converged optimum", converged),
    ):
        f = np.asarray(predict_test_rows(p, X, tm), np.float64)[rows]
        print(f"refit on training + validation years, {name}: R²_oos {r2(f):.2f}%")


if __name__ == "__main__":
    main()
