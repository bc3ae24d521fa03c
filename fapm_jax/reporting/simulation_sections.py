"""GKX's Monte Carlo study (Internet Appendix Table A.1) with FAPM rows: our mean R² in sample
and out of sample beside GKX's, per design."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from .markdown import Section, md_table


def table_a1_section(
    ours: pl.DataFrame,
    compared: pl.DataFrame,
    seconds: Mapping[str, float],
    *,
    reps: int,
    first_seed: int,
    profile: str,
    total: float,
    missing: Sequence[str] = (),
) -> Section:
    """Table A.1: ``ours`` (``table_a1``) and ``compared`` (``compare_table``: ours with GKX's
    ``*_paper`` columns) as "ours / paper" cells, with the study's setup."""
    cols = [c for c in ours.columns if c not in ("method", "reps")]
    header = ["method"] + [f"{c} ours / paper" for c in cols] + ["seconds"]
    rows = []
    for r in compared.iter_rows(named=True):
        cells = []
        for c in cols:
            paper = r.get(f"{c}_paper")
            cells.append(f"{r[c]:.2f} / {paper:.2f}" if paper is not None else f"{r[c]:.2f} / –")
        rows.append([r["method"], *cells, f"{seconds.get(r['method'], 0.0):.0f}"])
    note = (
        f"{reps} repetitions (seeds {first_seed}–{first_seed + reps - 1}) per design; "
        f"mean R² in percent against the training mean, in-sample (`_is`) and out-of-sample (`_oos`), "
        "ours / GKX (2020) Internet Appendix Table A.1. GKX models see the covariates [c, c·x]; FAPM sees "
        "the characteristics and x and learns c·x as an interaction; FAPM+SI adds x_i² terms; FAPM-MAP "
        "is penalised FAPM+SI tuned on validation; rows ending in -gkx are FAPM on the GKX covariates "
        "[c, c·x] (`--covariates gkx`). "
        f"Grids: {profile} profile. Huber threshold 0.2 (the authors'). "
        f"Total time {total:.0f} s."
        + (f" Not run (library not installed): {', '.join(missing)}." if missing else "")
    )
    return Section(
        "Table A.1",
        md_table(header, rows) + "\n\n" + note + "\n\nFiles: table_a1.csv, results.csv.",
        tables={"table_a1.csv": compared},
    )
