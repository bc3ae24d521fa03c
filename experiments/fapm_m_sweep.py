"""FAPM-m for m = 1 … 20 and all factors, across the 30 windows, in one vmapped program
(paper section 3.2, Table 2, Figure 5).

    python experiments/fapm_m_sweep.py --out runs/fapm_m            # embedded default
    python experiments/fapm_m_sweep.py --data french --out runs/fapm_m_french
    python experiments/fapm_m_sweep.py --ranking full ...           # the paper's look-ahead ranking
    python experiments/fapm_m_sweep.py --sic2 ...                   # also with SIC2 (Table 3)

Writes ``fapm_m.csv`` (m, R²_oos, in-sample R²), ``fapm_m_by_window.csv`` (each window's
in-sample R², labelled by its test year), ``table2.csv`` (each m's factors and
importances in the first window) and ``figure5_fapm_m.png``; with ``--sic2`` also the sweep
with the SIC2 dummies added to every subset, ``table3.csv`` (R²_oos without / with); prints
the runtimes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

import fapm_jax as fj
from fapm_jax.cli import build_parser, load_data
from fapm_jax.io import write_frame
from fapm_jax.report import fapm_m_figure


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="sim", choices=("sim", "french"))
    p.add_argument("--max-m", type=int, default=20)
    p.add_argument("--ranking", default="window", choices=("window", "full"))
    p.add_argument("--epochs", type=int, default=fj.TrainConfig().epochs)
    p.add_argument("--sic2", action="store_true", help="also the sweep with SIC2 dummies in every subset")
    p.add_argument("--out", default="runs/fapm_m")
    a = p.parse_args()
    panel, _ = load_data(build_parser().parse_args(["reproduce", "--data", a.data]))
    config = fj.TrainConfig(epochs=a.epochs)
    ms = (*range(1, a.max_m + 1), None)
    s = fj.fapm_m_sweep(panel, config, fj.WindowSpec(), ms, ranking=a.ranking)
    label = "per-window ranking (training rows only)" if a.ranking == "window" else "full-sample ranking (looks ahead)"
    print(f"FAPM-m, m = 1..{a.max_m} and all factors, {len(s.importance)} windows, {label}: {s.seconds:.1f} s")
    out = Path(a.out)
    names = ["all" if m is None else str(m) for m in ms]
    write_frame(out / "fapm_m.csv", pl.DataFrame({"m": names, "r2_oos": s.r2_oos, "r2_is": s.r2_is, "ranking": [a.ranking] * len(ms)}))
    years = [w.test for w in fj.rolling_windows(fj.WindowSpec())]
    write_frame(out / "fapm_m_by_window.csv", pl.DataFrame(
        [{"m": n, "test_year": y, "r2_is": float(v)} for n, row in zip(names, s.r2_is_window) for y, v in zip(years, row)]))
    rows = [{"m": n, "factor": f, "importance": imp} for n, m in zip(names, ms) if m is not None for f, imp in s.selected(m, 0)]
    write_frame(out / "table2.csv", pl.DataFrame(rows))
    fapm_m_figure(ms, s.r2_oos, s.r2_is, out / "figure5_fapm_m.png", f"FAPM-m, {label}")
    for n, o, i in zip(names, s.r2_oos, s.r2_is):
        print(f"  m={n:>3}  R²_oos {100 * o:6.3f}%  in-sample {100 * i:6.3f}%")
    print(f"wrote {out}/fapm_m.csv, table2.csv, figure5_fapm_m.png")
    if a.sic2:
        p2 = panel.with_sic2_dummies()
        dummies = [f for f in p2.feature_names if f.startswith("sic2_")]
        s2 = fj.fapm_m_sweep(p2, config, fj.WindowSpec(), ms, ranking=a.ranking, always=dummies)
        print(f"with {len(dummies)} SIC2 dummies in every subset: {s2.seconds:.1f} s")
        write_frame(out / "table3.csv", pl.DataFrame({"m": names, "r2_oos": s.r2_oos, "r2_oos_sic2": s2.r2_oos,
                                                      "r2_is": s.r2_is, "r2_is_sic2": s2.r2_is}))
        for n, o, o2 in zip(names, s.r2_oos, s2.r2_oos):
            print(f"  m={n:>3}  R²_oos {100 * o:6.3f}%  with SIC2 {100 * o2:6.3f}%")
        print(f"wrote {out}/table3.csv")


if __name__ == "__main__":
    main()
