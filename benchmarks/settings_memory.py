"""The memory budget of a sweep (``TrainConfig.settings_batch``, ``--settings-batch``): peak
resident memory and wall time of FAPM-MAP's per-window sweep on the embedded default panel
(30 windows, the rolling grid of ``fapm run --estimator map``), every setting side by side
against a few at a time, and how far their forecasts differ.

Each run is a fresh process (``spawn``), so that its ``ru_maxrss`` is its own peak; both are
measured side by side in one call. ``epochs`` shortens the MAP steps (the memory of a program
does not depend on its step count; the time does, about linearly). The models agree to float
rounding (float64: 1e-10, tests/test_fit.py); in the panel's float32 that rounding can flip the
validation choice between near-tied settings, so the table counts the windows that choose
another setting and the largest change of any setting's validation R².
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time


def _one(batch, epochs, members, queue) -> None:
    import numpy as np

    from fapm_jax import SimConfig, TrainConfig, WindowSpec, simulate_panel
    from fapm_jax.studies.estimators import make_estimator, run_estimator

    panel, _ = simulate_panel(SimConfig())
    spec = WindowSpec()
    cfg = TrainConfig(estimator="map", settings_batch=batch)
    est = make_estimator(cfg, panel, spec, epochs=epochs, members=members)
    t0 = time.perf_counter()
    run = run_estimator(panel, est, spec)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    r_hat = run.predictions["r_hat"].to_numpy().astype(np.float64)
    valid = np.asarray(run.result.best_valid_r2, np.float64)  # [S, W]: every setting's best
    queue.put((len(est.points), seconds, peak, 100 * run.r2_value(), r_hat, np.asarray(run.setting), valid))


def run(batches=(None, 8), epochs: int = 200, members: int = 1) -> list[dict]:
    ctx = mp.get_context("spawn")
    rows, ref = [], None
    for b in batches:
        q = ctx.Queue()
        p = ctx.Process(target=_one, args=(b, epochs, members, q))
        p.start()
        S, sec, peak, r2, r_hat, setting, valid = q.get()
        p.join()
        ref = (r_hat, setting, valid) if ref is None else ref
        rows.append(
            {
                "settings": S,
                "settings_batch": "all" if b is None else b,
                "map_steps": epochs,
                "seconds": round(sec, 1),
                "peak_rss_gib": round(peak, 2),
                "r2_oos_pct": round(r2, 4),
                "max_abs_forecast_diff": float(abs(r_hat - ref[0]).max()),
                "windows_choosing_otherwise": int((setting != ref[1]).sum()),
                "max_abs_valid_r2_diff_pct": float(100 * abs(valid - ref[2]).max()),
            }
        )
    return rows


def describe(rows: list[dict]) -> str:
    """The table as markdown: time, peak memory and the choice's changes per settings batch."""
    from fapm_jax.reporting.markdown import md_table

    base = rows[0]
    head = [
        "settings batch",
        "seconds",
        "peak RSS (GiB)",
        "R²_oos (%)",
        "largest forecast change",
        "windows choosing another setting",
        "largest change of a validation R² (points)",
    ]
    body = [
        [
            r["settings_batch"],
            r["seconds"],
            r["peak_rss_gib"],
            r["r2_oos_pct"],
            f"{r['max_abs_forecast_diff']:.1e}",
            r["windows_choosing_otherwise"],
            f"{r['max_abs_valid_r2_diff_pct']:.1e}",
        ]
        for r in rows
    ]
    title = (
        f"FAPM-MAP sweep on the embedded default ({base['settings']} settings x 30 windows, "
        f"{base['map_steps']} steps): peak memory by settings batch"
    )
    return title + "\n\n" + md_table(head, body)
