"""The moment trainer against the row trainer on an FAPM-m sweep (issue: exact moment-based
training for small factor sets).

Both train the same settings (FAPM-m masks for the given ``ms``) on the same windows with the
same configuration, measured side by side in one run: the one-pass moment computation, the
first call (compilation included) and the steady-state time of ``epochs`` epochs. Per epoch the
row trainer passes over every window's rows; the moment trainer costs ``O(p²)`` per window and
setting, whatever the number of stocks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fapm_jax import SimConfig, TrainConfig, WindowSpec, simulate_panel
from fapm_jax.core import moments as mom
from fapm_jax.core.rows import finish_windows, init_windows, train_windows
from fapm_jax.data.windows import rolling_windows, window_masks
from fapm_jax.studies.fapm_m import fapm_m_hyper, subset_masks

from .timing import timed as _timed


def run(
    stocks: int = 200, chars: int = 30, rank: int = 4, epochs: int = 10, windows: int = 30, ms=(1, 7, None)
) -> list[dict]:
    panel, _ = simulate_panel(SimConfig(n_stocks=stocks, n_chars=chars))
    tm, vm, _ = window_masks(panel.year, rolling_windows(WindowSpec(n_windows=windows)))
    cfg = TrainConfig(rank=rank, epochs=epochs)
    _, features = subset_masks(panel, tm, ms)
    hyper = fapm_m_hyper(cfg, features)
    X, r = jax.device_put(panel.X), jax.device_put(panel.r)
    tmj, vmj = jnp.asarray(tm, X.dtype), jnp.asarray(vm, X.dtype)
    S, W = len(ms), windows
    e0, e1 = jnp.asarray(0, jnp.int32), jnp.asarray(epochs, jnp.int32)

    t_mom, (mtr, mva) = _timed(lambda: mom.window_moments(panel.X, panel.r, tm, vm))
    out = {}
    for name, init, step in (
        (
            "rows",
            lambda: init_windows(
                X, r, tmj, vmj, hyper, mom.window_correlations(panel.X, panel.r, tm), config=cfg
            ),
            lambda st: finish_windows(
                train_windows(st, X, r, tmj, vmj, hyper, e0, e1, config=cfg, n_epochs=epochs)[0],
                X,
                r,
                tmj,
                vmj,
                hyper,
                config=cfg,
            )[0],
        ),
        (
            "moments",
            lambda: mom.init_all(mtr, mva, hyper, config=cfg, n=panel.n_features),
            lambda st: mom.epochs_all(st, mtr, mva, hyper, e0, e1, config=cfg, n_epochs=epochs)[0],
        ),
    ):
        first_init, st = _timed(init)
        first, st1 = _timed(lambda: step(st))
        steady, st2 = _timed(lambda: step(st))
        out[name] = dict(first=first_init + first, steady=steady, state=st1)
    same = float(
        np.max(
            np.abs(
                np.asarray(out["rows"]["state"].best_valid_r2)
                - np.asarray(out["moments"]["state"].best_valid_r2)
            )
        )
    )
    rows = []
    for name in ("rows", "moments"):
        o = out[name]
        rows.append(
            dict(
                method=name,
                rows=panel.n_rows,
                factors=panel.n_features,
                p=mom.n_moment_features(panel.n_features),
                settings=S,
                windows=W,
                epochs=epochs,
                setup_s=t_mom if name == "moments" else 0.0,
                first_call_s=o["first"],
                steady_s=o["steady"],
                ms_per_epoch_per_model=1e3 * o["steady"] / (epochs * S * W),
            )
        )
    ratio = rows[0]["steady_s"] / rows[1]["steady_s"]
    for row in rows:
        row["rows_over_moments_per_epoch"] = ratio
        row["max_valid_r2_diff"] = same
    return rows


def describe(rows: list[dict]) -> str:
    from fapm_jax.reporting.markdown import md_table

    table = md_table(
        [
            "method",
            "rows",
            "factors",
            "p",
            "settings × windows",
            "epochs",
            "moments pass (s)",
            "first call (s)",
            "steady (s)",
            "ms per epoch per model",
        ],
        [
            [
                r["method"],
                f"{r['rows']:,}",
                r["factors"],
                r["p"],
                f"{r['settings']} × {r['windows']}",
                r["epochs"],
                f"{r['setup_s']:.2f}",
                f"{r['first_call_s']:.2f}",
                f"{r['steady_s']:.2f}",
                f"{r['ms_per_epoch_per_model']:.3f}",
            ]
            for r in rows
        ],
    )
    return (
        f"{table}\n\nrows / moments per epoch (steady state): "
        f"**{rows[0]['rows_over_moments_per_epoch']:.0f}x**; "
        "largest difference in best validation R² after the timed epochs: "
        f"{rows[0]['max_valid_r2_diff']:.1e}\n"
    )


if __name__ == "__main__":  # pragma: no cover
    print(describe(run()))
