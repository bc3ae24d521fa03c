"""FAPM-m for m = 1 … 20 and all factors, across the 30 windows, in one vmapped program
(paper section 3.2, Table 2, Figure 5; with ``--sic2`` Table 3, Figure 6; Figures 7–9).

    python experiments/fapm_m_sweep.py --out runs/fapm_m            # embedded default
    python experiments/fapm_m_sweep.py --data french --out runs/fapm_m_french
    python experiments/fapm_m_sweep.py --ranking full ...           # the paper's look-ahead ranking
    python experiments/fapm_m_sweep.py --sic2 ...                   # also with SIC2 (Table 3)
    python experiments/fapm_m_sweep.py --method rows ...            # the row trainer (slow; same models)

Writes ``fapm_m.csv``, ``fapm_m_by_window.csv``, ``table2.csv``, ``figure5_fapm_m.png``,
Figures 7 and 9 (and with ``--sic2`` ``table3.csv``, Figures 6 and 8) and ``FAPM_M.md``;
prints the runtimes. The sweep without SIC2 uses the moment trainer (seconds); with 74 SIC2
dummies the factor set is too large for it and trains on the rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import fapm_jax as fj
from fapm_jax.cli import build_parser, load_data
from fapm_jax.cli.output import write_report
from fapm_jax.reporting.fapm_m_sections import default_ms, fapm_m_sections


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="sim", choices=("sim", "french"))
    p.add_argument("--max-m", type=int, default=20)
    p.add_argument("--ranking", default="window", choices=("window", "full"))
    p.add_argument("--epochs", type=int, default=fj.TrainConfig().epochs)
    p.add_argument("--method", default="auto", choices=("auto", "rows", "moments"))
    p.add_argument(
        "--sic2", action="store_true", help="also the sweep with SIC2 dummies in every subset (m <= 7)"
    )
    p.add_argument("--out", default="runs/fapm_m")
    a = p.parse_args()
    panel, _ = load_data(build_parser().parse_args(["reproduce", "--data", a.data]))
    config, spec = fj.TrainConfig(epochs=a.epochs), fj.WindowSpec()
    ms = default_ms(panel.n_features, a.max_m)
    s = fj.fapm_m_sweep(panel, config, spec, ms, ranking=a.ranking, method=a.method)
    print(
        f"FAPM-m, m = 1..{ms[-2]} and all factors, {len(s.importance)} windows, ranking {a.ranking}, "
        f"method {a.method}: {s.seconds:.1f} s"
    )
    for m, o, i in zip(ms, s.r2_oos, s.r2_is):
        print(f"  m={'all' if m is None else m:>3}  R²_oos {100 * o:6.3f}%  in-sample {100 * i:6.3f}%")
    s2 = None
    if a.sic2:
        p2 = panel.with_sic2_dummies()
        dummies = [f for f in p2.feature_names if f.startswith("sic2_")]
        s2 = fj.fapm_m_sweep(
            p2,
            config,
            spec,
            [m for m in ms if m is not None and m <= 7],
            ranking=a.ranking,
            always=dummies,
            method=a.method,
        )
        print(f"with {len(dummies)} SIC2 dummies in every subset: {s2.seconds:.1f} s")
        for m, o in zip(s2.ms, s2.r2_oos):
            print(f"  m={m:>3}  R²_oos with SIC2 {100 * o:6.3f}%")
    out = Path(a.out)
    years = [w.test for w in fj.rolling_windows(spec)]
    sections = fapm_m_sections(s, years, sic2=s2, sic2_note="" if a.sic2 else "Not run (no --sic2).")
    write_report(out / "FAPM_M.md", f"FAPM-m — {panel.name} data", sections)
    print(f"wrote {out}/FAPM_M.md and its tables and figures")


if __name__ == "__main__":
    main()
