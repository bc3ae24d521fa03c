"""Figures 6–14 of the paper (FAPM-m with SIC2, by year, importance, interactions) and the
interaction heat map and stability plot it lacks. Each function draws one PNG (atomically) and
returns its path; inputs are plain arrays and frames, so any run's numbers can be drawn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from ..core.io import save_figure  # noqa: E402


def _m_label(m) -> str:
    return "all" if m is None else str(m)


def sic2_figure(ms, r2_without, ms_with, r2_with, path: Path, title: str) -> Path:
    """Figure 6: FAPM-m's R²_oos (%) against m without and with the SIC2 dummies."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
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
    return save_figure(path, fig)


def by_window_figure(
    ms,
    r2_by_window: np.ndarray,
    years: Sequence[int],
    path: Path,
    title: str,
    *,
    minus: np.ndarray | None = None,
    ylabel: str = "in-sample R² (%)",
) -> Path:
    """Figures 7–9: one line per m of each window's in-sample R² (%) against the window's test
    year; with ``minus`` ``[W]`` (the all-factor model), each line minus it (Figure 9)."""
    fig, ax = plt.subplots(figsize=(8, 3.4))
    cmap = plt.get_cmap("viridis")
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
    return save_figure(path, fig)


def bar_figure(
    panels: dict[str, Sequence[tuple[str, float]]], path: Path, title: str, xlabel: str = "importance"
) -> Path:
    """Horizontal bar charts, one panel per entry of ``panels`` (label → ``[(name, value)]``,
    largest first): Figure 10's top-12 factors."""
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
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
    return save_figure(path, fig)


def grouped_bar_figure(table: pl.DataFrame, path: Path, title: str, ylabel: str = "importance (%)") -> Path:
    """Figure 11: grouped bars, one group per row of ``table`` (first column: the label), one
    bar per remaining column (model), values in percent."""
    labels = table[table.columns[0]].to_list()
    models = table.columns[1:]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) * max(1, len(models)) / 4 + 3), 3.6))
    x = np.arange(len(labels))
    width = 0.85 / max(len(models), 1)
    cmap = plt.get_cmap("tab20")
    for j, m in enumerate(models):
        ax.bar(
            x + (j - (len(models) - 1) / 2) * width,
            100 * table[m].to_numpy(),
            width,
            label=m,
            color=cmap(j % 20),
        )
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False, ncols=min(len(models), 7), fontsize=7)
    return save_figure(path, fig)


def interaction_bars_figure(top: pl.DataFrame, path: Path, title: str) -> Path:
    """Figures 12–13: the normalised top interactions, with the bootstrap band of each mean
    drawn on the same scale (a band crossing zero: not distinguishable from noise)."""
    scale = top["mean"].abs().sum() or 1.0
    names = [f"{a} × {b}" for a, b in zip(top["a"], top["b"])][::-1]
    mean = (top["mean"].to_numpy() / scale)[::-1]
    lo = (top["ci_low"].to_numpy() / scale)[::-1]
    hi = (top["ci_high"].to_numpy() / scale)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.32 * len(names) + 1.2))
    ax.barh(names, mean, color=np.where(mean >= 0, "tab:blue", "tab:red"))
    ax.errorbar(
        mean, np.arange(len(names)), xerr=[mean - lo, hi - mean], fmt="none", ecolor="k", lw=0.8, capsize=2
    )
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("interaction / Σ|shown| (signed), with bootstrap band")
    ax.set_title(title, fontsize=10)
    return save_figure(path, fig)


def average_interaction_figure(table: pl.DataFrame, path: Path, title: str, top: int = 20) -> Path:
    """Figure 14: each factor's share of the average interaction, top ``top`` and "others"."""
    head = table.head(top)
    shares = head["share"].to_list() + [max(0.0, 1.0 - float(head["share"].sum()))]
    labels = head["factor"].to_list() + ["others"]
    fig, ax = plt.subplots(figsize=(6, 5))
    colors = list(plt.get_cmap("tab20").colors[: len(labels) - 1]) + ["lightgray"]
    ax.pie(shares, labels=labels, colors=colors, textprops={"fontsize": 7}, startangle=90, counterclock=False)
    ax.set_title(title)
    return save_figure(path, fig)


def heatmap_figure(B: np.ndarray, names: Sequence[str], path: Path, title: str) -> Path:
    """The window-averaged interaction matrix as a heat map (symmetric colour scale)."""
    n = len(names)
    v = float(np.max(np.abs(B))) or 1.0
    fig, ax = plt.subplots(figsize=(0.2 * n + 3, 0.2 * n + 2.5))
    im = ax.imshow(B, cmap="RdBu_r", vmin=-v, vmax=v)
    ax.set_xticks(range(n), names, rotation=90, fontsize=6)
    ax.set_yticks(range(n), names, fontsize=6)
    fig.colorbar(im, ax=ax, shrink=0.7, label="mean <v_i, v_j>")
    ax.set_title(title)
    return save_figure(path, fig)


def stability_figure(table: pl.DataFrame, path: Path, title: str) -> Path:
    """The top interactions' window mean with its bootstrap band (thick) and the 2.5–97.5%
    range of the window values (thin): how stable each one is through the 30 windows."""
    names = [f"{a} × {b}" for a, b in zip(table["a"], table["b"])][::-1]
    y = np.arange(len(names))
    mean, lo, hi = (table[c].to_numpy()[::-1] for c in ("mean", "ci_low", "ci_high"))
    low, high = table["low"].to_numpy()[::-1], table["high"].to_numpy()[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(names) + 1.2))
    ax.hlines(y, low, high, color="tab:gray", lw=1, label="2.5–97.5% of windows")
    ax.hlines(y, lo, hi, color="tab:blue", lw=4, label="bootstrap band of the mean")
    ax.plot(mean, y, "k|", ms=10, label="mean")
    ax.axvline(0, color="k", lw=0.6)
    ax.set_yticks(y, names, fontsize=7)
    ax.set_xlabel("<v_i, v_j>")
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=10)
    return save_figure(path, fig)
