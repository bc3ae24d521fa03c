"""What the training GEMM's precision (``TrainConfig.precision``) does to the fit and the time.

The same 30 windows of the same panel are trained at each precision of
:data:`fapm_jax.core.model.PRECISIONS` from the same start (seed): ``highest`` (float32 products),
``tf32`` (a GPU's tensor cores; on a CPU the same operand roundings emulated, so the effect on
the fit is measured but the time is not TF32's) and ``bfloat16`` (operands rounded to
bfloat16, float32 accumulation; XLA:CPU has no bfloat16 matrix unit). Reported: the mean best
validation R² of the windows, the pooled out-of-sample R² of the test years (forecasts at
float32 from each precision's fitted models), their largest differences from ``highest``, and
the steady time of the whole run (best of ``repeats`` calls after the first, interleaved
across the precisions), all in one run on this device.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from fapm_jax import SimConfig, TrainConfig, WindowSpec, fit_windows, simulate_panel
from fapm_jax.core.model import PRECISIONS
from fapm_jax.data.windows import rolling_windows, window_masks
from fapm_jax.evaluation.metrics import r2_oos
from fapm_jax.studies.rolling import predict_test_rows

from .timing import timed as _timed


def run(
    stocks: int = 100, chars: int = 30, rank: int = 4, epochs: int = 50, windows: int = 30, repeats: int = 2
) -> list[dict]:
    panel, _ = simulate_panel(SimConfig(n_stocks=stocks, n_chars=chars))
    tm, vm, test = window_masks(panel.year, rolling_windows(WindowSpec(n_windows=windows)))
    X, r = jax.device_put(panel.X), jax.device_put(panel.r)
    base = TrainConfig(rank=rank, epochs=epochs)
    cfgs = {p: dataclasses.replace(base, precision=p) for p in PRECISIONS}
    fit = {p: (lambda c=c: fit_windows(X, r, tm, vm, c, method="rows")) for p, c in cfgs.items()}
    first, res = {}, {}
    for p in PRECISIONS:
        first[p], res[p] = _timed(fit[p])
    steady = {p: [] for p in PRECISIONS}
    for _ in range(repeats):  # interleaved, so drift on a shared machine hits every precision
        for p in PRECISIONS:
            steady[p].append(_timed(fit[p])[0])
    rows = test.any(axis=0)  # the stock-months of some window's test year
    out = []
    for p in PRECISIONS:
        pred = np.asarray(predict_test_rows(jax.tree_util.tree_map(lambda a: a[0], res[p].params), X, test))
        out.append(
            {
                "precision": p,
                "platform": jax.default_backend(),
                "rows": panel.n_rows,
                "factors": panel.n_features,
                "rank": rank,
                "windows": windows,
                "epochs": epochs,
                "first_call_s": first[p],
                "steady_s": min(steady[p]),
                "valid_r2": np.asarray(res[p].best_valid_r2, np.float64).ravel(),
                "r2_oos": r2_oos(panel.r[rows], pred[rows]),
            }
        )
    ref, ref_valid = out[0], out[0]["valid_r2"]
    for row in out:
        row["max_abs_dvalid_r2"] = float(np.max(np.abs(row["valid_r2"] - ref_valid)))
        row["d_r2_oos"] = row["r2_oos"] - ref["r2_oos"]
        row["time_vs_highest"] = row["steady_s"] / ref["steady_s"]
        row["mean_valid_r2"] = float(np.mean(row.pop("valid_r2")))
    return out


def describe(rows: list[dict]) -> str:
    from fapm_jax.reporting.markdown import md_table

    r0 = rows[0]
    table = md_table(
        [
            "precision",
            "mean best valid R² (%)",
            "max abs Δ valid R² (pp)",
            "R²_oos (%)",
            "Δ R²_oos (pp)",
            "first call (s)",
            "steady (s)",
            "time / highest",
        ],
        [
            [
                r["precision"],
                f"{100 * r['mean_valid_r2']:.4f}",
                f"{100 * r['max_abs_dvalid_r2']:.2e}",
                f"{100 * r['r2_oos']:.4f}",
                f"{100 * r['d_r2_oos']:+.2e}",
                f"{r['first_call_s']:.2f}",
                f"{r['steady_s']:.2f}",
                f"{r['time_vs_highest']:.2f}",
            ]
            for r in rows
        ],
    )
    note = (
        ""
        if r0["platform"] == "gpu"
        else f"\nOn this {r0['platform']} TF32 is emulated (operands rounded, float32 products): "
        "its R² effect is "
        "TF32's, its time is not; bfloat16 products are converted to float32 by XLA:CPU.\n"
    )
    return (
        f"{r0['rows']:,} stock-months × {r0['factors']} factors, rank {r0['rank']}, {r0['windows']} windows, "
        f"{r0['epochs']} full-batch epochs, one seed.\n\n{table}\n{note}"
    )
