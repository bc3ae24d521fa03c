"""The sections of one rolling FAPM run (Algorithm 2): its setup, R²_oos beside the paper's
Table 1 (and, on simulated data, the oracle's), R²_oos by test year and training per window;
``summary.md`` of ``fapm run`` is these in one section.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl

from ..core.config import TrainConfig
from ..data.embedded import SimTruth
from ..data.gkx_files import GKX_CHARS
from ..data.panel import Panel
from ..evaluation.metrics import r2_table
from ..studies.rolling import RollingRun, training_table
from . import paper
from .figures import yearly_figure
from .markdown import Section, md_table, pct


def _samples(run: RollingRun) -> list[tuple[str, str]]:
    n = run.size_group
    return [("all", "All"), (f"top-{n}", f"Top {n}"), (f"bottom-{n}", f"Bottom {n}")]


def oracle_r2(run: RollingRun, truth: SimTruth) -> dict[str, float]:
    """The oracle's R²_oos (the true ``g`` as the forecast) on the run's test rows and groups."""
    pred = run.predictions.with_columns(pl.Series("r_hat", truth.g[run.test_rows]))
    table = r2_table(pred, run.size_group)
    return dict(zip(table["sample"].to_list(), table["r2_oos"].to_list()))


def r2_section(run: RollingRun, *, label: str = "FAPM", oracle: dict | None = None) -> str:
    """Table 1 for the models run so far, beside the paper's published numbers: FAPM, its own
    linear start (OLS per window) and, on simulated data, the oracle."""
    cols = {
        f"{label} (this run)": dict(zip(run.r2["sample"].to_list(), run.r2["r2_oos"].to_list())),
        "OLS, FAPM's linear start": dict(
            zip(run.linear_r2["sample"].to_list(), run.linear_r2["r2_oos"].to_list())
        ),
    }
    if oracle is not None:
        cols["Oracle (true g)"] = oracle
    ref = paper.TABLE1["FAPM"]
    rows = []
    for (key, name), paper_key in zip(_samples(run), ("all", "top", "bottom")):
        rows.append([name, *(pct(c.get(key)) for c in cols.values()), f"{ref[paper_key]:.2f}"])
    rows.append(["Mean of yearly R²", *(pct(c.get("mean-of-years")) for c in cols.values()), "–"])
    return md_table(["R²_oos (%)", *cols, "FAPM (paper)"], rows)


def training_section(run: RollingRun) -> str:
    """Each window's sizes, chosen epoch and validation R² of the OLS start and the chosen model
    (with ``level="train-mean"``: of the deviations, and of ``r`` with the level added)."""
    t = training_table(run)
    levelled = bool(np.any(run.level))
    rows = [
        [
            r["test_year"],
            r["train"],
            r["valid"],
            r["best_epoch"],
            pct(r["linear_valid_r2"], 3),
            pct(r["best_valid_r2"], 3),
            *([pct(r["valid_r2"], 3)] if levelled else []),
            "yes" if r["diverged"] else "",
        ]
        for r in t.iter_rows(named=True)
    ]
    header = [
        "test",
        "train",
        "valid",
        "best epoch",
        "valid R² linear start (%)",
        "valid R² chosen (%)",
        *(["valid R² of r, level added (%)"] if levelled else []),
        "diverged",
    ]
    return md_table(header, rows)


def characteristics_line(panel: Panel) -> str:
    """Which GKX characteristics the panel's factors hold (never a surprise: issue 18)."""
    chars = [f for f in panel.feature_names if f in set(GKX_CHARS)]
    if len(chars) == len(GKX_CHARS):
        return "GKX characteristics: all 94."
    return f"GKX characteristics: {len(chars)} of the 94 ({', '.join(chars)})."


def setup_text(run: RollingRun, panel: Panel, train: TrainConfig) -> str:
    """The run's data, windows, configuration, time and divergences, as a bullet list."""
    cfg = dataclasses.asdict(train)
    div = run.diverged_windows()
    lines = [
        f"Data: {panel.name}, {panel.n_rows:,} stock-months, {panel.n_features} factors "
        f"({len(panel.macro_names)} macro), months {panel.month.min()}–{panel.month.max()}.",
        f"Windows: {len(run.windows)} ({run.windows[0].label()} … {run.windows[-1].label()}).",
        characteristics_line(panel),
        "Training: " + ", ".join(f"{k}={v}" for k, v in cfg.items()) + ".",
        f"Time: {run.seconds['train']:.1f} s training (compile included), "
        f"{run.seconds['total']:.1f} s in all.",
        f"Diverged windows: {', '.join(map(str, div)) if div else 'none'}.",
    ]
    return "\n".join(f"- {x}" for x in lines)


def summary_section(run: RollingRun, panel: Panel, truth: SimTruth | None, train: TrainConfig) -> Section:
    """``summary.md`` of ``fapm run``: setup, R²_oos, R²_oos by test year and the windows."""
    oracle = oracle_r2(run, truth) if truth is not None else None
    yearly = run.r2.filter(run.r2["sample"] == "year")
    body = setup_text(run, panel, train)
    body += "\n\n### R²_oos\n\n" + r2_section(run, oracle=oracle)
    body += "\n\n### R²_oos by test year\n\n" + md_table(
        ["year", "R²_oos (%)", "stock-months"],
        [[y, pct(v), n] for y, v, n in zip(yearly["year"], yearly["r2_oos"], yearly["n_obs"])],
    )
    body += "\n\n### Windows\n\n" + training_section(run)
    return Section("Summary", body)


def setup_section(run: RollingRun, panel: Panel, train: TrainConfig) -> Section:
    return Section("Setup", setup_text(run, panel, train))


def fapm_table1_section(run: RollingRun, oracle: dict | None, size_note: str) -> Section:
    """Table 1 without the comparison suite: FAPM, its OLS start and the oracle."""
    return Section(
        "Table 1: monthly out-of-sample R² (%)", r2_section(run, oracle=oracle) + f"\n\n{size_note}"
    )


def yearly_section(run: RollingRun, panel_name: str) -> Section:
    """R²_oos of each test year (Algorithm 2's windows), as a bar chart."""
    fig = yearly_figure(
        run.r2.filter(pl.col("sample") == "year"), f"FAPM R²_oos by test year, {panel_name} data"
    )
    name = "r2_oos_by_year.png"
    return Section("R²_oos by test year (Algorithm 2)", f"![by year]({name})", figures={name: fig})


def training_per_window_section(run: RollingRun) -> Section:
    return Section("Training per window", training_section(run))
