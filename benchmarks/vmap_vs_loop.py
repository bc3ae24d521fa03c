"""Training all rolling windows in one vmapped program versus a Python loop over windows.

Both sides train the same windows on the same panel with the same configuration (the loop calls
:func:`fapm_jax.fit_window`, the reference the vmapped trainer is tested against). Each side is
timed twice: the first call includes compilation, the second is the steady state. Measured side
by side in one run, as a ratio, because this machine is shared and noisy.
"""

from __future__ import annotations

import jax

from fapm_jax import SimConfig, TrainConfig, WindowSpec, fit_window, fit_windows, simulate_panel
from fapm_jax.core.config import n_batches_for
from fapm_jax.data.windows import rolling_windows, window_masks

from .timing import timed as _timed


def run(
    stocks: int = 100,
    chars: int = 30,
    rank: int = 4,
    epochs: int = 50,
    windows: int = 30,
    batch_size: int | None = None,
    repeats: int = 2,
) -> list[dict]:
    panel, _ = simulate_panel(SimConfig(n_stocks=stocks, n_chars=chars))
    spec = WindowSpec(n_windows=windows)
    ws = rolling_windows(spec)
    tm, vm, _ = window_masks(panel.year, ws)
    cfg = TrainConfig(rank=rank, epochs=epochs, batch_size=batch_size)
    X = jax.device_put(panel.X)
    r = jax.device_put(panel.r)
    nb = n_batches_for(cfg, tm)

    def vmapped():
        return fit_windows(X, r, tm, vm, cfg).params

    def looped():
        return [
            fit_window(X, r, tm[w], vm[w], cfg, window=w, n_windows=len(ws), n_batches=nb).best_params
            for w in range(len(ws))
        ]

    rows_trained = int(tm.sum()) * epochs  # training stock-months visited
    times = {"vmap": [], "loop": []}
    for _ in range(repeats):  # interleaved, so drift on a shared machine hits both sides
        for name, fn in (("vmap", vmapped), ("loop", looped)):
            times[name].append(_timed(fn)[0])
    out = []
    for name in ("vmap", "loop"):
        first, steady = times[name][0], min(times[name][1:] or times[name])
        out.append(
            {
                "method": name,
                "rows": panel.n_rows,
                "factors": panel.n_features,
                "rank": rank,
                "windows": len(ws),
                "epochs": epochs,
                "first_call_s": first,
                "steady_s": steady,
                "train_rows_per_s": rows_trained / steady,
            }
        )
    ratio = out[1]["steady_s"] / out[0]["steady_s"]
    for row in out:
        row["loop_over_vmap"] = ratio
    return out


def describe(rows: list[dict]) -> str:
    from fapm_jax.reporting.markdown import md_table

    table = md_table(
        [
            "method",
            "rows",
            "factors",
            "rank",
            "windows",
            "epochs",
            "first call (s)",
            "steady (s)",
            "train rows/s",
        ],
        [
            [
                r["method"],
                f"{r['rows']:,}",
                r["factors"],
                r["rank"],
                r["windows"],
                r["epochs"],
                f"{r['first_call_s']:.2f}",
                f"{r['steady_s']:.2f}",
                f"{r['train_rows_per_s']:,.0f}",
            ]
            for r in rows
        ],
    )
    return f"{table}\n\nloop / vmap time (steady state): **{rows[0]['loop_over_vmap']:.2f}x**\n"
