"""FAPM-MAP's choice among its settings on GKX simulation repetitions: every setting of
``TunedFAPM``'s grid trained (one vmapped program per repetition, the same trainer and keys as
``fapm simulate``), its validation and test R², and how each rule of choosing or combining the
settings scores out of sample — the validation choice over the grid without the settings that
price out the self-interactions (``tuned_grid(no_self=False)``) and over the whole grid (the
package's FAPM-MAP), the mean forecast of the ``K`` best settings by validation R², the
non-negative least-squares stack of the settings' validation forecasts (Breiman 1996), and
weights ``∝ exp(−ΔSSE / 2σ²)``. Run it on repetitions held out from the table's (docs/simulation.md:
20–29) before changing the grid or the rule.

    python experiments/sim_map_settings.py --design a100 --first-seed 20 --reps 10
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import nnls

from fapm_jax.baselines.base import window_keys
from fapm_jax.baselines.fapm import TunedFAPM, tuned_grid
from fapm_jax.core.model import predict
from fapm_jax.studies.simulation_study import design_data


def settings_forecasts(data, fit_settings, r: int, key) -> np.ndarray:
    """``[G, T·N]`` forecasts of every setting on repetition ``r`` (``fit_settings``: the jitted
    :meth:`TunedFAPM.fit_settings`, compiled once for all repetitions; fitted on the training
    and validation rows, each setting at its best validation epoch)."""
    rows = np.flatnonzero((data.train > 0) | (data.valid > 0))
    X, y = jnp.asarray(data.f[r]), jnp.asarray(data.y[r])
    tr, va = jnp.asarray(data.train[rows]), jnp.asarray(data.valid[rows])
    params = fit_settings(X[rows], y[rows], tr, va, key)
    return np.asarray(_predict_all(params, X), np.float64)


@jax.jit
def _predict_all(params, X):
    return jax.vmap(lambda p: predict(p, X))(params)


def r2(y: np.ndarray, p: np.ndarray) -> float:
    """R² against the training mean (the returns are demeaned by it), in percent."""
    return 100 * (1 - ((y - p) ** 2).sum(-1) / (y**2).sum(-1))


def rules(pv: np.ndarray, pt: np.ndarray, yv: np.ndarray, old: np.ndarray) -> dict[str, np.ndarray]:
    """Each rule's test forecast from the settings' validation (``pv``) and test (``pt``)
    forecasts; ``old``: the settings of the grid without the priced-out self-interactions."""
    sse = ((pv - yv) ** 2).sum(1)
    sse = np.where(np.isfinite(sse), sse, np.inf)
    order = np.argsort(sse)
    out = {
        "choice, grid without no-self settings": pt[old[np.argmin(sse[old])]],
        "choice, whole grid (FAPM-MAP)": pt[order[0]],
    }
    for K in (3, 5, 10):
        out[f"mean of the {K} best"] = pt[order[:K]].mean(0)
    ok = np.isfinite(sse)
    w, _ = nnls(pv[ok].T, yv)
    out["NNLS stack"] = w @ pt[ok]
    b = np.exp(-(sse - sse.min()) / (2 * sse.min() / pv.shape[1]))
    out["exp(-dSSE/2s2) weights"] = (b / b.sum())[ok] @ pt[ok]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--design", default="a100")
    p.add_argument("--first-seed", type=int, default=20)
    p.add_argument("--reps", type=int, default=10)
    a = p.parse_args()
    t0 = time.perf_counter()
    data = design_data(a.design[0], int(a.design[1:]), list(range(a.first_seed, a.first_seed + a.reps)))
    tuned = TunedFAPM()
    grid = list(tuned.penalties)
    old = np.array([grid.index(s) for s in tuned_grid(no_self=False)])
    keys = window_keys(jax.random.key(0), a.reps)
    vrows, trows = np.flatnonzero(data.valid > 0), np.flatnonzero(data.test > 0)
    scores: dict[str, list[float]] = {}
    valid, test = [], []
    fit_settings = eqx.filter_jit(tuned.fit_settings)  # one wrapper: one compilation
    for r in range(a.reps):
        P = settings_forecasts(data, fit_settings, r, keys[r])
        yv, yt = data.y[r, vrows].astype(np.float64), data.y[r, trows].astype(np.float64)
        valid.append(r2(yv, P[:, vrows]))
        test.append(r2(yt, P[:, trows]))
        for k, f in rules(P[:, vrows], P[:, trows], yv, old).items():
            scores.setdefault(k, []).append(float(r2(yt, f)))
        print(f"repetition {a.first_seed + r}: {time.perf_counter() - t0:.0f} s", flush=True)
    base = np.array(scores["choice, whole grid (FAPM-MAP)"])
    last = a.first_seed + a.reps - 1
    print(f"\n{a.design}, repetitions {a.first_seed}-{last}: test R² % (se), paired with FAPM-MAP")
    for k, v in scores.items():
        v, d = np.array(v), np.array(v) - base
        se = lambda x: x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")  # noqa: E731
        print(f"  {k:40s} {v.mean():6.2f} ({se(v):.2f})  {d.mean():+.3f} ({se(d):.3f})")
    valid, test = np.array(valid), np.array(test)
    chosen = valid.argmax(1)
    print("\nsetting: mean validation R², mean test R², times chosen")
    for g, s in enumerate(grid):
        n = (chosen == g).sum()
        print(f"  {g:2d} {valid[:, g].mean():6.2f} {test[:, g].mean():6.2f} {n:3d}  {dict(s)}")


if __name__ == "__main__":
    main()
