"""Human-readable outputs: ``summary.md`` of a run and ``REPORT.md`` of the paper reproduction.

Tables are markdown beside the paper's published numbers; figures are PNG files written next
to the report. Later analyses add their sections through :func:`write_report`'s ``sections``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from ..core.io import save_figure, write_text  # noqa: E402
from ..core.model import interaction_matrix  # noqa: E402
from ..data.embedded import SimTruth  # noqa: E402
from ..studies.rolling import RollingRun, training_table  # noqa: E402

#: Table 1 of the paper: monthly stock-level R²_oos in percent (FAPM columns and GKX's).
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "OLS+H": {"all": -3.46, "top": -11.28, "bottom": -1.30},
    "OLS-3+H": {"all": 0.16, "top": 0.31, "bottom": 0.17},
    "PLS": {"all": 0.27, "top": -0.14, "bottom": 0.42},
    "PCR": {"all": 0.26, "top": 0.06, "bottom": 0.34},
    "ENet+H": {"all": 0.11, "top": 0.25, "bottom": 0.20},
    "GLM+H": {"all": 0.19, "top": 0.14, "bottom": 0.30},
    "RF": {"all": 0.33, "top": 0.63, "bottom": 0.35},
    "GBRT+H": {"all": 0.34, "top": 0.52, "bottom": 0.32},
    "NN1": {"all": 0.33, "top": 0.49, "bottom": 0.38},
    "NN2": {"all": 0.39, "top": 0.62, "bottom": 0.46},
    "NN3": {"all": 0.40, "top": 0.70, "bottom": 0.45},
    "NN4": {"all": 0.39, "top": 0.67, "bottom": 0.47},
    "NN5": {"all": 0.36, "top": 0.64, "bottom": 0.42},
    "FAPM": {"all": 0.47, "top": 0.73, "bottom": 0.42},
    "FAPM-7": {"all": 1.01, "top": 1.28, "bottom": 0.81},
}


def pct(x: float, digits: int = 2) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def _samples(run: RollingRun) -> list[tuple[str, str]]:
    n = run.size_group
    return [("all", "All"), (f"top-{n}", f"Top {n}"), (f"bottom-{n}", f"Bottom {n}")]


def oracle_r2(run: RollingRun, truth: SimTruth) -> dict[str, float]:
    """The oracle's R²_oos (the true ``g`` as the forecast) on the run's test rows and groups."""
    from ..evaluation.metrics import r2_table

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
    paper = PAPER_TABLE1["FAPM"]
    rows = []
    for (key, name), paper_key in zip(_samples(run), ("all", "top", "bottom")):
        rows.append([name, *(pct(c.get(key)) for c in cols.values()), f"{paper[paper_key]:.2f}"])
    rows.append(["Mean of yearly R²", *(pct(c.get("mean-of-years")) for c in cols.values()), "–"])
    return md_table(["R²_oos (%)", *cols, "FAPM (paper)"], rows)


def yearly_figure(run: RollingRun, path: Path, title: str) -> Path:
    """Bar chart of R²_oos per test year."""
    yearly = run.r2.filter(pl.col("sample") == "year")
    fig, ax = plt.subplots(figsize=(9, 3.2))
    vals = 100 * yearly["r2_oos"].to_numpy()
    ax.bar(yearly["year"].to_numpy(), vals, color=np.where(vals >= 0, "tab:blue", "tab:red"))
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("R²_oos (%)")
    ax.set_title(title)
    return save_figure(path, fig)


def table1_figure(values: dict[str, dict[str, float]], path: Path, title: str) -> Path:
    """Figure 4: grouped bars of R²_oos (all / top / bottom) for each model, in percent."""
    models = list(values)
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(models) + 2), 3.4))
    x = np.arange(len(models))
    for j, (key, color) in enumerate((("all", "tab:gray"), ("top", "k"), ("bottom", "tab:blue"))):
        ax.bar(x + (j - 1) * 0.27, [values[m].get(key, np.nan) for m in models], 0.27, label=key, color=color)
    ax.set_xticks(x, models, rotation=30, ha="right")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("R²_oos (%)")
    ax.set_title(title)
    ax.legend(frameon=False, ncols=3)
    return save_figure(path, fig)


def fapm_m_figure(ms, r2_oos, r2_is, path: Path, title: str) -> Path:
    """Figure 5: R² out of sample and in sample of FAPM-m against m (``None`` = all factors,
    drawn as a dashed line)."""
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    x = [m for m in ms if m is not None]
    for a, vals, label in ((ax[0], r2_oos, "R²_oos (%)"), (ax[1], r2_is, "in-sample R² (%)")):
        v = {m: 100 * float(r) for m, r in zip(ms, vals)}
        a.plot(x, [v[m] for m in x], "o-", color="tab:blue", label="FAPM-m")
        if None in v:
            a.axhline(v[None], color="k", ls="--", lw=0.8, label="all factors")
        a.xaxis.get_major_locator().set_params(integer=True)
        a.set_xlabel("m (m strong + m weak factors)")
        a.set_ylabel(label)
        a.legend(frameon=False)
    fig.suptitle(title)
    return save_figure(path, fig)


def interaction_section(
    run: RollingRun, feature_names: Sequence[str], truth: SimTruth | None, top: int = 10
) -> str:
    """The largest interactions of the window-averaged ``B``, with the truth when known."""
    B = np.asarray(jax_mean_interactions(run))
    n = len(feature_names)
    iu = np.triu_indices(n, 1)
    order = np.argsort(-np.abs(B[iu]))[:top]
    true_B = truth.interaction_matrix(feature_names) if truth is not None else None
    rows = []
    for o in order:
        i, j = iu[0][o], iu[1][o]
        row = [f"{feature_names[i]} × {feature_names[j]}", f"{B[i, j]:+.5f}"]
        if true_B is not None:
            row.append(f"{true_B[i, j]:+.5f}")
        rows.append(row)
    header = ["pair", "mean <v_i, v_j> over windows"] + (["true B_ij"] if true_B is not None else [])
    text = md_table(header, rows)
    if true_B is not None:
        corr = np.corrcoef(B[iu], true_B[iu])[0, 1]
        found = sum(
            1
            for (a, b) in truth.interactions
            if a in feature_names
            and b in feature_names
            and _rank_of(B, feature_names.index(a), feature_names.index(b), iu) < top
        )
        text += (
            f"\n\nCorrelation of the estimated and the true interaction matrix (upper triangle): "
            f"{corr:.3f}. True interactions among the top {top} estimated: {found} of "
            f"{len(truth.interactions)}."
        )
    return text


def jax_mean_interactions(run: RollingRun) -> np.ndarray:
    import jax

    return np.asarray(jax.vmap(interaction_matrix)(run.params)).mean(axis=0)


def _rank_of(B, i, j, iu) -> int:
    vals = np.abs(B[iu])
    return int(np.sum(vals > abs(B[i, j])))


def training_section(run: RollingRun) -> str:
    t = training_table(run)
    rows = [
        [
            r["test_year"],
            r["train"],
            r["valid"],
            r["best_epoch"],
            pct(r["linear_valid_r2"], 3),
            pct(r["best_valid_r2"], 3),
            "yes" if r["diverged"] else "",
        ]
        for r in t.iter_rows(named=True)
    ]
    return md_table(
        [
            "test",
            "train",
            "valid",
            "best epoch",
            "valid R² linear start (%)",
            "valid R² chosen (%)",
            "diverged",
        ],
        rows,
    )


def write_report(path: str | Path, title: str, sections: Sequence[tuple[str, str]]) -> Path:
    """Write a markdown document of ``(heading, body)`` sections atomically."""
    parts = [f"# {title}\n"]
    for heading, body in sections:
        parts.append(f"## {heading}\n\n{body.strip()}\n")
    return write_text(path, "\n".join(parts))
