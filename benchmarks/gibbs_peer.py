"""The Bayesian FAPM's Gibbs sampler (:mod:`fapm_jax.core.gibbs`, 30 windows × chains in one
vmapped program) on the simulated panel, against myFM's MCMC FM (``MyFMGibbsRegressor``, C++)
run the way a researcher would: a loop over windows, each on its own rows.

Both sample the same model (rank, priors up to myFM's λ hyperprior) for the same sweeps; the
agreement of the posterior-mean forecasts of each window's validation rows is reported
(correlation, RMS difference over the mean posterior sd). On the low-signal return panel FM
chains mix slowly: at 200 sweeps two myFM seeds disagree as much as myFM and JAX do; use
``--sweeps 1000`` or more to compare. Times are steady-state
(second calls). myFM is optional (``pip install myfm``); without it only the JAX side runs.

``python -m benchmarks.gibbs_peer [--stocks 100 --chars 30 --windows 30 --rank 4 --sweeps 200]``
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from fapm_jax import SimConfig, WindowSpec, simulate_panel
from fapm_jax.core.gibbs import GibbsConfig, sample_windows
from fapm_jax.core.gibbs_summaries import posterior_predict
from fapm_jax.data.windows import rolling_windows, window_masks


def run(stocks=100, chars=30, windows=30, rank=4, sweeps=200, burn_in=100, chains=1, myfm_windows=3) -> dict:
    """Both samplers on the same windows; ``myfm_windows=None``: myFM on every window too, so
    that both R²_oos (pooled test rows of all windows, zero benchmark) are measured."""
    panel, _ = simulate_panel(SimConfig(n_stocks=stocks, n_chars=chars))
    tm, vm, te = window_masks(panel.year, rolling_windows(WindowSpec(n_windows=windows)))
    X, r = np.asarray(panel.X, np.float64), np.asarray(panel.r, np.float64)
    cfg = GibbsConfig(rank=rank, n_sweeps=sweeps, burn_in=burn_in, n_chains=chains)
    with jax.enable_x64(True):
        t0 = time.perf_counter()
        jax.block_until_ready(sample_windows(X, r, tm, cfg))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        draws = jax.block_until_ready(sample_windows(X, r, tm, cfg))
        steady = time.perf_counter() - t0
        mean, sd = (np.asarray(a) for a in posterior_predict(draws, X))
    out = dict(
        rows=panel.n_rows,
        factors=panel.n_features,
        windows=tm.shape[0],
        rank=rank,
        sweeps=sweeps,
        chains=chains,
        jax_first_s=round(first, 2),
        jax_steady_s=round(steady, 2),
    )
    rows = te.any(axis=0)
    win = te.argmax(axis=0)[rows]
    y_test = r[rows]
    ours_test = mean[win, np.flatnonzero(rows)]
    out["jax_r2_oos"] = round(float(1 - np.sum((y_test - ours_test) ** 2) / np.sum(y_test**2)), 5)
    try:
        import myfm
    except ImportError:
        return out
    corr, ratio, t_myfm = [], [], 0.0
    n = tm.shape[0] if myfm_windows is None else min(myfm_windows, tm.shape[0])
    theirs_test = np.zeros(rows.sum())
    for k in range(n):
        t0 = time.perf_counter()
        fm = myfm.MyFMGibbsRegressor(rank=rank, random_seed=k)
        fm.fit(
            X[tm[k]],
            r[tm[k]],
            n_iter=sweeps,
            n_kept_samples=sweeps - burn_in,
            callback=lambda *a: (False, None),
        )
        theirs = fm.predict(X[vm[k]])
        theirs_test[win == k] = fm.predict(X[te[k]])
        t_myfm += time.perf_counter() - t0
        ours = mean[k][vm[k]]
        corr.append(float(np.corrcoef(ours, theirs)[0, 1]))
        ratio.append(float(np.sqrt(np.mean((ours - theirs) ** 2)) / sd[k][vm[k]].mean()))
    if n == tm.shape[0]:
        out["myfm_r2_oos"] = round(float(1 - np.sum((y_test - theirs_test) ** 2) / np.sum(y_test**2)), 5)
    out.update(
        myfm_s_per_window=round(t_myfm / n, 2),
        myfm_30_windows_s=round(t_myfm / n * tm.shape[0], 2),
        agreement_corr_min=round(min(corr), 4),
        agreement_rms_over_sd_max=round(max(ratio), 3),
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gibbs_peer", description=__doc__)
    p.add_argument("--stocks", type=int, default=100)
    p.add_argument("--chars", type=int, default=30)
    p.add_argument("--windows", type=int, default=30)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--sweeps", type=int, default=200)
    p.add_argument("--burn-in", type=int, default=100)
    p.add_argument("--chains", type=int, default=1)
    p.add_argument("--myfm-windows", type=int, default=3, help="windows myFM runs (its time is scaled up)")
    a = p.parse_args()
    print(run(a.stocks, a.chars, a.windows, a.rank, a.sweeps, a.burn_in, a.chains, a.myfm_windows))


def describe(rows: list[dict]) -> str:
    """The peer comparison as markdown: time and R²_oos of both samplers on the same windows."""
    r = rows[0]
    lines = [
        f"Gibbs-sampled FAPM against myFM's MCMC FM: {r['rows']:,} stock-months x {r['factors']} factors, "
        f"{r['windows']} windows, rank {r['rank']}, {r['sweeps']} sweeps, {r['chains']} chain(s).",
        "",
        "| sampler | wall time (s) | R²_oos (%) |",
        "|---|---|---|",
        f"| fapm_jax.core.gibbs (steady state: a second call) | {r['jax_steady_s']} "
        f"| {100 * r['jax_r2_oos']:.3f} |",
    ]
    if "myfm_30_windows_s" in r:
        r2 = f"{100 * r['myfm_r2_oos']:.3f}" if "myfm_r2_oos" in r else "–"
        lines.append(f"| myFM, a loop over the windows | {r['myfm_30_windows_s']} | {r2} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
