"""Table A.1 on the same repetitions: every saved simulation cell whose fingerprint matches
today's model (``study_cell``'s: model, design, seeds), cut to the repetitions all of a
design's compared rows share, mean R²_oos and its standard error, beside the published values.

    python experiments/sim_same_reps.py --cells experiments/results/simstudy_cells \\
        experiments/results/simstudy_cells_trees experiments/results/simstudy_cells_fapm_map

A row computed on fewer repetitions than ``--reps`` is shown on its own repetitions and
flagged (``reps`` column); no value is made up for a missing cell.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

from fapm_jax.core.checkpoint import fingerprint
from fapm_jax.core.config import TrainConfig
from fapm_jax.core.io import safe_name
from fapm_jax.studies.simulation_study import DESIGNS, SIM_MODELS, published_table_a1, sim_models


def load_cells(folders: list[str], reps: int, members: int = 1) -> pl.DataFrame:
    models = sim_models(SIM_MODELS, fapm_config=TrainConfig(), map_members=members)
    rows = []
    for dm, pc in DESIGNS:
        for m in models:
            for folder in folders:
                path = Path(folder) / f"{dm}_pc{pc}__{safe_name(m.name)}.npz"
                if not path.exists():
                    continue
                z = np.load(path)
                n = z["r2_oos"].shape[0]
                if str(z["fingerprint"]) != fingerprint(repr(m), dm, pc, list(range(n))):
                    continue  # computed by other code or options: not today's model
                r = 100 * np.asarray(z["r2_oos"], np.float64)[: min(n, reps)]
                rows.append(
                    {
                        "design": f"{dm}{pc}",
                        "method": m.name,
                        "reps": r.size,
                        "r2_oos": r.mean(),
                        "se": r.std(ddof=1) / np.sqrt(r.size) if r.size > 1 else np.nan,
                        "per_rep": r.tolist(),
                    }
                )
                break
    return pl.DataFrame(rows)


def _paired(sub: pl.DataFrame, name: str) -> None:
    """``name`` against the best other row on their common repetitions: the mean paired
    difference and its standard error (the repetitions are the same draws)."""
    if name not in sub["method"].to_list():
        return
    mine = np.asarray(sub.filter(pl.col("method") == name)["per_rep"][0].to_list())
    others = sub.filter(~pl.col("method").str.starts_with("FAPM"))
    if others.height == 0:
        return
    best = others.sort("r2_oos", descending=True).row(0, named=True)
    theirs = np.asarray(best["per_rep"])
    n = min(mine.size, theirs.size)
    d = mine[:n] - theirs[:n]
    se = d.std(ddof=1) / np.sqrt(n)
    print(
        f"{sub['design'][0]}: {name} − {best['method']} = {d.mean():+.2f} pp (paired se {se:.2f}, "
        f"t {d.mean() / se:+.2f}, {n} repetitions)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", nargs="+", required=True)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--members", type=int, default=1, help="> 1: also the FAPM-MAP-ens cells of that size")
    a = p.parse_args()
    tab = load_cells(a.cells, a.reps, a.members)
    pub = published_table_a1()
    with pl.Config(tbl_rows=200, float_precision=2, tbl_width_chars=200):
        for d in tab["design"].unique(maintain_order=True):
            col = f"{d[0]}_pc{d[1:]}_oos"
            sub = tab.filter(pl.col("design") == d).join(
                pub.select("method", pl.col(col).alias("published")), on="method", how="left"
            )
            print(sub.drop("per_rep").sort("r2_oos", descending=True))
            for name in ("FAPM-MAP", "FAPM-MAP-ens"):
                _paired(sub, name)
            if "FAPM-MAP-ens" in sub["method"].to_list():  # the ensemble against its member 0
                one, ens = (
                    np.asarray(sub.filter(pl.col("method") == m)["per_rep"][0].to_list())
                    for m in ("FAPM-MAP", "FAPM-MAP-ens")
                )
                n = min(one.size, ens.size)
                dd = ens[:n] - one[:n]
                se = dd.std(ddof=1) / np.sqrt(n)
                print(f"{d}: FAPM-MAP-ens − FAPM-MAP = {dd.mean():+.2f} pp (paired se {se:.2f}, {n} reps)")


if __name__ == "__main__":
    main()
