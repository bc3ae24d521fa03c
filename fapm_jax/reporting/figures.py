"""Every figure of the reports: R²_oos by year, Figure 4 (Table 1's bars), Figures 5–14
(FAPM-m, SIC2, by window, importance, interactions), the interaction heat map and stability
plot the paper lacks, Figures 16–17 (portfolio matrices) and the H−L cumulative returns.

Each function draws one :class:`~matplotlib.figure.Figure` from plain arrays and frames and
returns it, unsaved; the caller writes it (:func:`fapm_jax.core.io.save_figure`). No pyplot
state is touched, so nothing needs closing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import polars as pl
from matplotlib.figure import Figure


def _m_label(m) -> str:
    return "all" if m is None else str(m)


def yearly_figure(yearly: pl.DataFrame, title: str) -> Figure:
    """Bar chart of R²_oos per test year (``year``, ``r2_oos`` rows of a run's R² table)."""
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots()
    vals = 100 * yearly["r2_oos"].to_numpy()
    ax.bar(yearly["year"].to_numpy(), vals, color=np.where(vals >= 0, "tab:blue", "tab:red"))
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("R²_oos (%)")
    ax.set_title(title)
    return fig


def table1_figure(values: Mapping[str, Mapping[str, float]], title: str) -> Figure:
    """Figure 4: grouped bars of R²_oos (all / top / bottom) for each model, in percent."""
    models = list(values)
    fig = Figure(figsize=(max(5, 1.1 * len(models) + 2), 3.4))
    ax = fig.subplots()
    x = np.arange(len(models))
    for j, (key, color) in enumerate((("all", "tab:gray"), ("top", "k"), ("bottom", "tab:blue"))):
        vals = [values[m].get(key, np.nan) for m in models]
        ax.bar(x + (j - 1) * 0.27, vals, 0.27, label=key, color=color)
    ax.set_xticks(x, models, rotation=30, ha="right")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("R²_oos (%)")
    ax.set_title(title)
    ax.legend(frameon=False, ncols=3)
    return fig


def fapm_m_figure(ms, r2_oos, r2_is, title: str) -> Figure:
    """Figure 5: R² out of sample and in sample of FAPM-m against m (``None`` = all factors,
    drawn as a dashed line)."""
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots(1, 2)
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
    return fig


def sic2_figure(ms, r2_without, ms_with, r2_with, title: str) -> Figure:
    """Figure 6: FAPM-m's R²_oos (%) against m without and with the SIC2 dummies."""
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    for mm, vals, label, style in (
        (ms, r2_without, "without SIC2", "o-"),
        (ms_with, r2_with, "with SIC2", "s--"),
    ):
        pts = [(m, 100 * v) for m, v in zip(mm, vals) if m is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("m (m strong + m weak factors)")
    ax.set_ylabel("R²_oos (%)")
    ax.legend(frameon=False)
    ax.set_title(title)
    return fig


def by_window_figure(
    ms,
    r2_by_window: np.ndarray,
    years: Sequence[int],
    title: str,
    *,
    minus: np.ndarray | None = None,
    ylabel: str = "in-sample R² (%)",
) -> Figure:
    """Figures 7–9: one line per m of each window's in-sample R² (%) against the window's test
    year; with ``minus`` ``[W]`` (the all-factor model), each line minus it (Figure 9)."""
    fig = Figure(figsize=(8, 3.4))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["viridis"]
    shown = [i for i, m in enumerate(ms) if m is not None]
    for j, i in enumerate(shown):
        v = 100 * (r2_by_window[i] - (0.0 if minus is None else minus))
        ax.plot(years, v, lw=1.2, color=cmap(j / max(len(shown) - 1, 1)), label=f"m={_m_label(ms[i])}")
    if minus is None and None in ms:
        ax.plot(years, 100 * r2_by_window[list(ms).index(None)], "k--", lw=1, label="all factors")
    if minus is not None:
        ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("test year of the window (training years end 13 years before)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False, ncols=4, fontsize=7)
    return fig


def bar_figure(
    panels: Mapping[str, Sequence[tuple[str, float]]], title: str, xlabel: str = "importance"
) -> Figure:
    """Horizontal bar charts, one panel per entry of ``panels`` (label → ``[(name, value)]``,
    largest first): Figure 10's top-12 factors."""
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.4 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    for ax, (label, items) in zip(axes.ravel(), panels.items()):
        names = [n for n, _ in items][::-1]
        ax.barh(names, [v for _, v in items][::-1], color="tab:blue")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.tick_params(labelsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def grouped_bar_figure(table: pl.DataFrame, title: str, ylabel: str = "importance (%)") -> Figure:
    """Figure 11: grouped bars, one group per row of ``table`` (first column: the label), one
    bar per remaining column (model), values in percent."""
    labels = table[table.columns[0]].to_list()
    models = table.columns[1:]
    fig = Figure(figsize=(max(6, 0.9 * len(labels) * max(1, len(models)) / 4 + 3), 3.6))
    ax = fig.subplots()
    x = np.arange(len(labels))
    width = 0.85 / max(len(models), 1)
    cmap = matplotlib.colormaps["tab20"]
    for j, m in enumerate(models):
        offset = (j - (len(models) - 1) / 2) * width
        ax.bar(x + offset, 100 * table[m].to_numpy(), width, label=m, color=cmap(j % 20))
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False, ncols=min(len(models), 7), fontsize=7)
    return fig


def interaction_bars_figure(top: pl.DataFrame, title: str) -> Figure:
    """Figures 12–13: the normalised top interactions, with the bootstrap band of each mean
    drawn on the same scale (a band crossing zero: not distinguishable from noise)."""
    scale = top["mean"].abs().sum() or 1.0
    names = [f"{a} × {b}" for a, b in zip(top["a"], top["b"])][::-1]
    mean = (top["mean"].to_numpy() / scale)[::-1]
    lo = (top["ci_low"].to_numpy() / scale)[::-1]
    hi = (top["ci_high"].to_numpy() / scale)[::-1]
    fig = Figure(figsize=(6, 0.32 * len(names) + 1.2))
    ax = fig.subplots()
    ax.barh(names, mean, color=np.where(mean >= 0, "tab:blue", "tab:red"))
    xerr = [mean - lo, hi - mean]
    ax.errorbar(mean, np.arange(len(names)), xerr=xerr, fmt="none", ecolor="k", lw=0.8, capsize=2)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("interaction / Σ|shown| (signed), with bootstrap band")
    ax.set_title(title, fontsize=10)
    return fig


def average_interaction_figure(table: pl.DataFrame, title: str, top: int = 20) -> Figure:
    """Figure 14: each factor's share of the average interaction, top ``top`` and "others"."""
    head = table.head(top)
    shares = head["share"].to_list() + [max(0.0, 1.0 - float(head["share"].sum()))]
    labels = head["factor"].to_list() + ["others"]
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    colors = list(matplotlib.colormaps["tab20"].colors[: len(labels) - 1]) + ["lightgray"]
    ax.pie(shares, labels=labels, colors=colors, textprops={"fontsize": 7}, startangle=90, counterclock=False)
    ax.set_title(title)
    return fig


def heatmap_figure(
    B: np.ndarray, names: Sequence[str], title: str, shown: np.ndarray | None = None
) -> Figure:
    """The window-averaged interaction matrix as a heat map (symmetric colour scale); with a
    boolean ``shown`` [n, n] the other cells are left blank (e.g. those whose credible band
    covers 0)."""
    n = len(names)
    v = float(np.max(np.abs(B))) or 1.0
    if shown is not None:
        B = np.where(shown, B, np.nan)
    fig = Figure(figsize=(0.2 * n + 3, 0.2 * n + 2.5))
    ax = fig.subplots()
    im = ax.imshow(B, cmap="RdBu_r", vmin=-v, vmax=v)
    ax.set_xticks(range(n), names, rotation=90, fontsize=6)
    ax.set_yticks(range(n), names, fontsize=6)
    fig.colorbar(im, ax=ax, shrink=0.7, label="mean <v_i, v_j>")
    ax.set_title(title)
    return fig


def stability_figure(table: pl.DataFrame, title: str) -> Figure:
    """The top interactions' window mean with its bootstrap band (thick) and the 2.5–97.5%
    range of the window values (thin): how stable each one is through the 30 windows."""
    names = [f"{a} × {b}" for a, b in zip(table["a"], table["b"])][::-1]
    y = np.arange(len(names))
    mean, lo, hi = (table[c].to_numpy()[::-1] for c in ("mean", "ci_low", "ci_high"))
    low, high = table["low"].to_numpy()[::-1], table["high"].to_numpy()[::-1]
    fig = Figure(figsize=(6.5, 0.3 * len(names) + 1.2))
    ax = fig.subplots()
    ax.hlines(y, low, high, color="tab:gray", lw=1, label="2.5–97.5% of windows")
    ax.hlines(y, lo, hi, color="tab:blue", lw=4, label="bootstrap band of the mean")
    ax.plot(mean, y, "k|", ms=10, label="mean")
    ax.axvline(0, color="k", lw=0.6)
    ax.set_yticks(y, names, fontsize=7)
    ax.set_xlabel("<v_i, v_j>")
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=10)
    return fig


def matrix_figure(t: pl.DataFrame, models: Sequence[str], title: str, scale: float = 100.0) -> Figure:
    """Figures 16–17: a portfolio × model heat map of ``t`` (``portfolio`` and one column per
    model), each cell annotated, values times ``scale``."""
    vals = np.array([[np.nan if v is None else scale * v for v in t[m].to_list()] for m in models]).T
    fig = Figure(figsize=(0.7 * len(models) + 3, 0.3 * t.height + 1.5))
    ax = fig.subplots()
    v = np.nanmax(np.abs(vals)) if np.isfinite(vals).any() else 1.0
    im = ax.imshow(vals, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto")
    ax.set_xticks(range(len(models)), models, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(t.height), t["portfolio"].to_list(), fontsize=7)
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            if np.isfinite(vals[i, j]):
                ax.text(j, i, f"{vals[i, j]:.2f}", ha="center", va="center", fontsize=5)
    fig.colorbar(im, ax=ax, shrink=0.6)
    ax.set_title(title)
    return fig


def cumulative_figure(cumulative: Mapping[str, np.ndarray], title: str) -> Figure:
    """Table 9's investor view: each model's cumulative log return of H−L by test month."""
    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    for m, c in cumulative.items():
        ax.plot(np.arange(len(c)), c, lw=1.1, label=m)
    ax.set_xlabel("test month")
    ax.set_ylabel("cumulative log return of H−L")
    ax.legend(frameon=False, ncols=4, fontsize=7)
    ax.set_title(title)
    return fig


def stocks_per_month_figure(months: np.ndarray, stocks: np.ndarray, title: str) -> Figure:
    """Stocks in the panel each month (``months`` ``[T]`` ``YYYYMM``, ``stocks`` ``[T]``): the
    cross-section every rank and every window's rows come from."""
    months = np.asarray(months)
    x = months // 100 + (months % 100 - 1) / 12
    fig = Figure(figsize=(8, 3.2))
    ax = fig.subplots()
    ax.plot(x, np.asarray(stocks), lw=1.0, color="tab:blue", drawstyle="steps-post")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("month t")
    ax.set_ylabel("stocks")
    ax.set_title(title)
    return fig
