"""A hyperparameter sweep in one compiled program: any of rank, learning rate, init scale,
epochs, seed and the FAPM-m subset size m, on every window at once (fapm_jax.studies.sweep).

Each window keeps the setting with the best validation R², as a researcher tunes on the
validation years. Prints and writes (``--out``) every setting's R²_oos, the per-window choice
and its R²_oos.

    python experiments/sweep.py --stocks 100 --epochs 30,60 --ranks 2,4,8 --lrs 3e-4,1e-3 --ms 3,7,all
"""

import argparse
import time
from pathlib import Path

import polars as pl

import fapm_jax as fj
from fapm_jax.core.io import write_frame


def _list(cast):
    return lambda text: [None if x.strip() == "all" else cast(x) for x in text.split(",") if x.strip()]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stocks", type=int, default=200, help="stocks of the simulated panel (default 200)")
    p.add_argument("--ranks", type=_list(int), default=None, help="e.g. 2,4,8")
    p.add_argument("--lrs", type=_list(float), default=None, help="learning rates, e.g. 3e-4,1e-3")
    p.add_argument("--init-scales", type=_list(float), default=None)
    p.add_argument("--epochs", type=_list(int), default=None, help="epoch budgets, e.g. 50,100")
    p.add_argument("--seeds", type=_list(int), default=None)
    p.add_argument("--ms", type=_list(int), default=None, help="FAPM-m sizes; 'all' = every factor")
    p.add_argument("--ranking", choices=("window", "full"), default="window")
    p.add_argument("--out", default="runs/sweep")
    a = p.parse_args()

    panel, truth = fj.simulate_panel(fj.SimConfig(n_stocks=a.stocks))
    t0 = time.perf_counter()
    s = fj.sweep(
        panel,
        fj.TrainConfig(),
        fj.WindowSpec(),
        ranks=a.ranks,
        learning_rates=a.lrs,
        init_scales=a.init_scales,
        epochs=a.epochs,
        seeds=a.seeds,
        ms=a.ms,
        ranking=a.ranking,
    )
    print(f"{len(s.points)} settings x {len(s.run.windows)} windows in {time.perf_counter() - t0:.1f} s")
    with pl.Config(tbl_rows=-1, tbl_cols=-1):
        print(s.table())
        print(s.choices())
    print(
        f"chosen per window on validation: R²_oos {100 * s.run.r2_value():.3f}% "
        f"(best single setting {100 * s.r2_oos.max():.3f}%)"
    )
    out = Path(a.out)
    write_frame(out / "sweep.csv", s.table())
    write_frame(out / "choices.csv", s.choices())
    print(f"wrote {out}/sweep.csv, {out}/choices.csv")


if __name__ == "__main__":
    main()
