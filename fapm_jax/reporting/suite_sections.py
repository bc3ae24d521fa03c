"""The comparison suite's sections (GKX 2020 beside FAPM): Table 1 with the paper's values,
Figure 4 and the Diebold–Mariano tests, with the notes on size groups, grids and FAPM-m.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from ..evaluation.diebold_mariano import dm_markdown
from ..evaluation.hac import default_lag
from ..studies.comparison import Comparison, quick_note
from ..studies.fapm_m import FAPMmSweep
from . import paper
from .figures import table1_figure
from .markdown import Section, md_table, pct


def size_note(data: str, n: int) -> str:
    """What Table 1's top-``n`` / bottom-``n`` rows are on the ``data`` source."""
    if data == "french":
        return (
            f"Top/bottom = the {n} S5 / S1 portfolios (the panel's size proxy). On these 30 "
            "portfolios the macro predictors are common to all assets each month, so their "
            "linear part is a time-series regression on a few hundred months and forecasts badly "
            "out of sample (Welch and Goyal's finding); FAPM starts from that OLS fit."
        )
    return f"Top/bottom = the {n} largest / smallest stocks by market value each month."


def fapm_m_note(sweep: FAPMmSweep, m: int) -> str:
    """Table 1's FAPM-``m`` row: where its factors come from, or why it is left out."""
    if m not in sweep.ms:
        return f"FAPM-{m} left out: the panel has only {len(sweep.feature_names)} factors without SIC2."
    first = ", ".join(f for f, _ in sweep.selected(m, 0))
    return (
        f"FAPM-{m}: FAPM on the {m} most and {m} least important factors by OLS weight, chosen in "
        f"each window from its own training rows (first window: {first}); from the FAPM-m sweep below."
    )


def members_note(members: int | None, estimator: str) -> str:
    """What ``--members`` made of Table 1's FAPM rows ('' without it)."""
    if not members or members == 1:
        return ""
    return (
        f"--members {members}: the FAPM row (--estimator {estimator}) and every estimator row but "
        f"FAPM-Bayes and FAPM-m are ensembles, the mean of {members} fits per window from independent "
        "draws of V, each choosing its own setting on validation; where FAPM-Bayes starts at the "
        f"FAPM-MAP fits, it runs {members} chains per window, chain m at member m's fit."
    )


def profile_note(profile: str, covariates: str) -> str:
    """The suite's grids (GKX's Table A.5, or the quick profile's trims) and inputs."""
    trims = f"; the quick profile trims the costly ones ({quick_note()})" if profile == "quick" else ""
    inputs = "FAPM’s factors" if covariates == "factors" else "GKX’s characteristics × (1, macro)"
    return (
        f"Grids: GKX Internet Appendix Table A.5{trims}. Inputs: {inputs}. "
        "Every model is trained on the same windows, tuned on the same validation years and scored on "
        "the same test rows as FAPM."
    )


def table1_markdown(
    comp: Comparison, t1: pl.DataFrame, *, size_group: int, oracle: dict[str, float] | None, fapm_m: int
) -> str:
    """Table 1: every model's R²_oos (%) beside the paper's (FAPM-7 as the paper's FAPM-m row)."""
    paper_key = {f"FAPM-{fapm_m}": "FAPM-7"} if fapm_m == 7 else {}
    rows = []
    for r in t1.iter_rows(named=True):
        ref = paper.TABLE1.get(paper_key.get(r["model"], r["model"]), {})
        rows.append(
            [
                r["model"],
                pct(r["all"]),
                pct(r["top"]),
                pct(r["bottom"]),
                *(f"{ref[k]:.2f}" if k in ref else "–" for k in ("all", "top", "bottom")),
                f"{comp.seconds.get(r['model'], float('nan')):.0f}",
            ]
        )
    n = size_group
    if oracle is not None:
        samples = ("all", f"top-{n}", f"bottom-{n}")
        rows.append(["Oracle (true g)", *(pct(oracle[s]) for s in samples), *["–"] * 4])
    header = ["model", "all", f"top-{n}", f"bottom-{n}", "paper all", "paper top-1000", "paper bottom-1000"]
    return md_table([*header, "seconds"], rows)


def dm_text(comp: Comparison, dm: pl.DataFrame) -> str:
    """The Diebold–Mariano table with its convention (GKX's: cross-sectional mean per month)."""
    n_months = comp.frame["month"].n_unique()
    lag = default_lag(n_months)
    return (
        "Diebold–Mariano statistics, GKX style: per month the cross-sectional mean of the difference in "
        "squared errors (row model minus column model), its time-series mean over its Newey–West "
        f"standard error with lag {lag} (Newey–West 1994 rule for {n_months} test months). **Positive: "
        "the column model is better.** Bold: |DM| > 1.96 (5%); bold with \\*: |DM| > 2.58 (1%).\n\n"
        + dm_markdown(dm)
    )


def suite_sections(
    comp: Comparison,
    *,
    panel_name: str,
    size_group: int,
    oracle: dict[str, float] | None,
    fapm_m: int,
    notes: Sequence[str],
    missing: Sequence[str] = (),
) -> list[Section]:
    """Table 1 (with ``notes`` after it), Figure 4 and the Diebold–Mariano tests of ``comp``;
    ``missing``: models not run (library not installed)."""
    t1 = comp.table1()
    dm = comp.dm()
    values = {r["model"]: {k: 100 * r[k] for k in ("all", "top", "bottom")} for r in t1.iter_rows(named=True)}
    table = table1_markdown(comp, t1, size_group=size_group, oracle=oracle, fapm_m=fapm_m)
    missing_note = f" Not run (library not installed): {', '.join(missing)}." if missing else ""
    fig4 = "figure4_r2_oos.png"
    return [
        Section(
            "Table 1: monthly out-of-sample R² (%)",
            table + "\n\n" + " ".join(notes) + missing_note + " Paper values: the FAPM paper's Table 1 "
            "(GKX's numbers for the baselines) on CRSP 1957–2016; "
            "ours are on the data named above, so compare the ranking, not the levels.\n\n"
            "Files: table1.csv, predictions_all.parquet (every model's test forecasts).",
            tables={"table1.csv": t1, "predictions_all.parquet": comp.frame},
        ),
        Section(
            "Figure 4",
            f"![Figure 4]({fig4})",
            figures={fig4: table1_figure(values, f"R²_oos (%), {panel_name} data")},
        ),
        Section(
            "Diebold–Mariano tests",
            dm_text(comp, dm) + "\n\nFile: diebold_mariano.csv.",
            tables={"diebold_mariano.csv": dm},
        ),
    ]
