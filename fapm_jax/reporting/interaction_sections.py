"""Interactions (paper section 3.3): Table 5 / Figures 12–13 (the largest B_ij = <v_i, v_j> with
their stability over the windows, the heat map), the recovery of the true interactions on
simulated data, and Table 6 / Figure 14 (each factor's average interaction).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ..core.gibbs_summaries import Interactions
from ..data.embedded import SimTruth
from ..data.panel import Panel
from ..evaluation.interactions import (
    InteractionStats,
    average_interaction,
    interaction_stats,
    interaction_table,
    recovery,
    top_interactions,
    window_interactions,
)
from ..evaluation.posterior import posterior_factor_table, posterior_pair_table
from ..studies.estimators import GibbsRun
from ..studies.rolling import RollingRun
from . import figures, paper
from .markdown import Section, md_table


def _pair_rows(t: pl.DataFrame) -> list[list[str]]:
    cols = ("a", "b", "normalised", "mean", "sd", "sign_agreement", "ci_low", "ci_high", "signal")
    return [
        [
            f"{a} × {b}",
            f"{v:.3f}",
            f"{m:+.2e}",
            f"{sd:.1e}",
            f"{100 * g:.0f}%",
            f"[{lo:+.1e}, {hi:+.1e}]",
            "yes" if sig else "no",
        ]
        for a, b, v, m, sd, g, lo, hi, sig in zip(*(t[c] for c in cols))
    ]


def table5_section(
    st: InteractionStats, table: pl.DataFrame, B: np.ndarray, names: list[str], years: np.ndarray
) -> Section:
    """Table 5 and Figures 12–13, the stability of the top 20 and the heat map."""
    head = [
        "pair",
        "normalised",
        "mean B_ij",
        "sd over windows",
        "same sign*",
        f"{int(100 * st.level)}% band",
        "band excludes 0",
    ]
    n_act = int(st.active.sum())
    top20 = table.head(20)
    figs = {
        "figure12_macro_interactions.png": figures.interaction_bars_figure(
            top_interactions(table, ["macro×macro", "macro×char"], top=12),
            "Top-12 macro × macro and macro × characteristic",
        ),
        "figure13_char_interactions.png": figures.interaction_bars_figure(
            top_interactions(table, ["char×char"], top=6), "Top-6 characteristic × characteristic"
        ),
        "interaction_stability.png": figures.stability_figure(top20, "Top-20 interactions across windows"),
        "interaction_heatmap.png": figures.heatmap_figure(
            st.mean, names, "Mean interaction matrix over windows"
        ),
    }
    paper5 = (
        "Paper's Table 5 (CRSP): "
        + ", ".join(f"{a}-{b} {v:.2f}" for a, b, v in paper.TABLE5_MACRO)
        + "; with a characteristic: "
        + ", ".join(f"{a}-{b} {v:.3f}" for a, b, v in paper.TABLE5_CHAR)
        + "."
    )
    text = (
        f"B_ij = <v_i, v_j> of each window's fitted FAPM; statistics over the {st.n_windows} windows: the "
        "mean, its standard deviation, the share of windows with the mean's sign, and a "
        f"{int(100 * st.level)}% moving-block bootstrap band of the mean (blocks of {st.block} consecutive "
        "windows — the windows share most of their training years, so they are not independent). "
        "\"Normalised\": |mean| over the sum of the shown pairs' (the paper's normalisation to 1). "
        f"\\*Same sign: share of the {n_act} windows whose chosen model has interactions at all; in the "
        f"other {st.n_windows - n_act} the validation years preferred the OLS start (V = 0, B = 0), which "
        "enters the mean as zeros.\n\n**Macro × macro**\n\n"
        + md_table(head, _pair_rows(top_interactions(table, ["macro×macro"], top=9)))
        + "\n\n**With a characteristic** (macro × characteristic and characteristic × characteristic)\n\n"
        + md_table(head, _pair_rows(top_interactions(table, ["macro×char", "char×char"], top=9)))
        + f"\n\n{paper5}\n\n![Figure 12](figure12_macro_interactions.png)\n\n"
        "![Figure 13](figure13_char_interactions.png)"
    )
    agree = top20["sign_agreement"]
    text += (
        f"\n\nStability: {int(top20['signal'].sum())} of the 20 largest interactions have a bootstrap "
        f"band that excludes zero; their sign agreement across the {n_act} windows with interactions "
        f"ranges from {100 * agree.min():.0f}% to {100 * agree.max():.0f}%.\n\n"
        "![stability](interaction_stability.png)\n\n![heat map](interaction_heatmap.png)"
        "\n\nFiles: interactions.csv (every pair with its statistics), interactions_by_window.npz (each "
        "window's B)."
    )
    arrays = {"B": B, "feature_names": np.asarray(names), "test_year": years}
    return Section(
        "Table 5, Figures 12–13: interactions",
        text,
        tables={"interactions.csv": table},
        figures=figs,
        arrays={"interactions_by_window.npz": arrays},
    )


def recovery_section(st: InteractionStats, table: pl.DataFrame, names: list[str], truth: SimTruth) -> Section:
    """The true interactions of the simulated panel beside their estimates and ranks."""
    rec = recovery(st.mean, truth.interaction_matrix(names), names)
    rows = []
    for p in rec["pairs"]:
        r_ = table.filter(
            ((pl.col("a") == p["a"]) & (pl.col("b") == p["b"]))
            | ((pl.col("a") == p["b"]) & (pl.col("b") == p["a"]))
        )
        rows.append(
            [
                f"{p['a']} × {p['b']}",
                f"{p['true']:+.4f}",
                f"{p['estimate']:+.2e}",
                p["rank"],
                "yes" if bool(r_["signal"][0]) else "no",
            ]
        )
    header = [
        "true pair",
        "true B_ij",
        "estimated mean B_ij",
        "rank of |estimate| (1 = largest)",
        "band excludes 0",
    ]
    return Section(
        "Recovered versus true interactions (simulated data)",
        f"The embedded panel's true g has {len(rec['pairs'])} interactions among {rec['n_pairs']} pairs. "
        f"Correlation of the mean estimated and the true B (upper triangle): {rec['correlation']:.3f}.\n\n"
        + md_table(header, rows)
        + "\n\nThe ranking is recovered; the magnitudes are shrunk (early stopping from a small initial V), "
        "as with any regularised estimate.",
    )


def table6_section(st: InteractionStats, names: list[str]) -> Section:
    """Table 6 and Figure 14: each factor's mean |B_ij| and its share, the paper's ranking beside."""
    avg = average_interaction(st.mean, names)
    top_avg = avg.head(20)
    rows = [
        [
            i + 1,
            f,
            f"{v:.2e}",
            f"{s_:.3f}",
            (f"{paper.TABLE6[i][0]} ({paper.TABLE6[i][1]:.3f})" if i < len(paper.TABLE6) else "–"),
        ]
        for i, (f, v, s_) in enumerate(zip(top_avg["factor"], top_avg["average"], top_avg["share"]))
    ]
    rows.append(["", "others", "", f"{max(0.0, 1 - float(top_avg['share'].sum())):.3f}", "others (0.053)"])
    f14 = figures.average_interaction_figure(avg, "Average interaction per factor")
    return Section(
        "Table 6 and Figure 14: average interaction of each factor",
        "Each factor's mean |B_ij| over its partners, and its share of the sum over factors; paper's "
        "ranking beside.\n\n"
        + md_table(["rank", "factor", "mean |B_ij|", "share", "paper (share)"], rows)
        + "\n\n![Figure 14](figure14_average_interaction.png)\n\nFile: table6_average_interaction.csv.",
        tables={"table6_average_interaction.csv": avg},
        figures={"figure14_average_interaction.png": f14},
    )


def posterior_recovery(inter: Interactions, names: list[str], truth: SimTruth) -> pl.DataFrame:
    """Per true pair of the simulated panel: the true ``B_ij``, the mean over windows of its
    posterior mean and of its 95% credible bounds, the ratio estimate / truth, and the share of
    windows whose credible interval covers the truth (Bayesian FAPM, :mod:`~fapm_jax.core.gibbs`)."""
    idx = {f: i for i, f in enumerate(names)}
    rows = []
    for (a, b), c in truth.interactions.items():
        if a not in idx or b not in idx:
            continue
        i, j = idx[a], idx[b]
        m, lo, hi = (
            np.asarray(x)[:, i, j].astype(np.float64) for x in (inter.B_mean, inter.B_lo, inter.B_hi)
        )
        rows.append(
            {
                "a": a,
                "b": b,
                "true": float(c),
                "posterior_mean": float(m.mean()),
                "ci_low": float(lo.mean()),
                "ci_high": float(hi.mean()),
                "ratio": float(m.mean() / c),
                "coverage": float(np.mean((lo <= c) & (c <= hi))),
            }
        )
    return pl.DataFrame(rows)


def posterior_section(inter: Interactions, names: list[str], truth: SimTruth) -> Section:
    """The planted interactions beside Bayesian FAPM's posterior means and credible intervals."""
    t = posterior_recovery(inter, names, truth)
    rows = [
        [
            f"{a} × {b}",
            f"{tr:+.4f}",
            f"{m:+.4f}",
            f"[{lo:+.4f}, {hi:+.4f}]",
            f"{ra:.2f}",
            f"{100 * cv:.0f}%",
        ]
        for a, b, tr, m, lo, hi, ra, cv in t.select(
            "a", "b", "true", "posterior_mean", "ci_low", "ci_high", "ratio", "coverage"
        ).iter_rows()
    ]
    within = int(((t["ratio"] >= 0.5) & (t["ratio"] <= 2.0)).sum())
    covered = int((t["coverage"] >= 0.5).sum())
    in_band = int(((t["ci_low"] <= t["true"]) & (t["true"] <= t["ci_high"])).sum())
    return Section(
        "True interactions and Bayesian FAPM's posterior (simulated data)",
        "Gibbs-sampled FAPM (FAPM-Bayes): the posterior mean of each planted `B_ij` and its 95% "
        "credible interval, averaged over the windows, and the share of windows whose interval "
        f"covers the truth. Within a factor of 2 of the truth: {within} of {t.height}; covered in at "
        f"least half of the windows: {covered} of {t.height}; by the mean interval (the band of the "
        f"window mean under the comonotone coupling of Tables 5–6 with bands): {in_band} of "
        f"{t.height}.\n\n"
        + md_table(
            ["true pair", "true B_ij", "posterior mean", "mean 95% interval", "estimate / truth", "covered"],
            rows,
        )
        + "\n\nFile: posterior_interactions.csv.",
        tables={"posterior_interactions.csv": t},
    )


def _band_rows(t: pl.DataFrame) -> list[list[str]]:
    return [
        [f"{a} × {b}", f"{m:+.2e}", f"[{lo:+.1e}, {hi:+.1e}]", "yes" if c else "no"]
        for a, b, m, lo, hi, c in zip(*(t[k] for k in ("a", "b", "mean", "ci_low", "ci_high", "credible")))
    ]


def posterior_tables_section(gibbs: GibbsRun, panel: Panel) -> Section:
    """Tables 5–6 and the heat map of Bayesian FAPM (FAPM-Bayes), each window mean with its 95%
    credible band (:mod:`~fapm_jax.evaluation.posterior`), and every test forecast's posterior sd."""
    names, post = list(panel.feature_names), gibbs.averaged
    pairs = posterior_pair_table(post, names, panel.macro_names)
    factors = posterior_factor_table(post, names)
    n_cred = int(pairs["credible"].sum())
    head = ["pair", "posterior mean B_ij", "95% credible band", "band excludes 0"]
    top = factors.head(20)
    rows6 = [
        [i + 1, f, f"{v:.2e}", f"[{lo:.1e}, {hi:.1e}]", f"{sh:.3f}"]
        for i, (f, v, lo, hi, sh) in enumerate(
            zip(*(top[k] for k in ("factor", "average", "ci_low", "ci_high", "share")))
        )
    ]
    shown = (np.asarray(post.B_lo) > 0) | (np.asarray(post.B_hi) < 0)
    np.fill_diagonal(shown, True)
    fig = figures.heatmap_figure(
        np.asarray(post.B_mean), names, "FAPM-Bayes: posterior mean B (blank: band covers 0)", shown
    )
    sd = np.asarray(gibbs.sd, np.float64)
    rows = gibbs.test_rows
    arrays = {
        "permno": panel.permno[rows],
        "month": panel.month[rows],
        "r_hat": np.asarray(gibbs.r_hat),
        "sd": np.asarray(gibbs.sd),
    }
    text = (
        f"Gibbs-sampled FAPM over the {len(gibbs.windows)} windows: the posterior of each window mean "
        "that Tables 5–6 report (the windows' draws coupled comonotonically, as windows sharing all "
        "their training years but one nearly are: each pair's band is the mean of the windows' "
        "2.5–97.5% bands). "
        f"{n_cred} of the {pairs.height} pairs have a band that excludes 0.\n\n**Macro × macro**\n\n"
        + md_table(head, _band_rows(pairs.filter(pl.col("kind") == "macro×macro").head(9)))
        + "\n\n**With a characteristic**\n\n"
        + md_table(head, _band_rows(pairs.filter(pl.col("kind") != "macro×macro").head(9)))
        + "\n\n**Table 6 with bands**: each factor's average |B_ij| over its partners\n\n"
        + md_table(["rank", "factor", "mean |B_ij|", "95% credible band", "share"], rows6)
        + "\n\n![posterior heat map](posterior_heatmap.png)\n\n"
        f"Forecasts: the posterior sd of the mean forecast ŷ averages {sd.mean():.2e} over the "
        f"{len(sd)} test rows (median {np.median(sd):.2e}); the predictive sd of a return adds the "
        "noise.\n\nFiles: posterior_interactions_bands.csv (every pair), "
        "posterior_average_interaction.csv (Table 6), fapm_bayes_forecasts.npz (permno, month, "
        "posterior mean and sd of every test forecast)."
    )
    return Section(
        "Tables 5–6 with credible bands: Bayesian FAPM",
        text,
        tables={"posterior_interactions_bands.csv": pairs, "posterior_average_interaction.csv": factors},
        figures={"posterior_heatmap.png": fig},
        arrays={"fapm_bayes_forecasts.npz": arrays},
    )


def interaction_sections(
    run: RollingRun,
    panel: Panel,
    truth: SimTruth | None = None,
    n_boot: int = 1000,
    gibbs: GibbsRun | None = None,
) -> list[Section]:
    """Tables 5–6, Figures 12–14, the heat map and the stability of the top interactions; with
    ``gibbs`` (Bayesian FAPM) the same tables with credible bands, and on simulated data the
    planted interactions beside their posterior."""
    names = list(panel.feature_names)
    B = np.asarray(window_interactions(run.params))
    st = interaction_stats(B, names, panel.macro_names, n_boot=n_boot)
    table = interaction_table(st)
    years = np.array([w.test for w in run.windows])
    sections = [table5_section(st, table, B, names, years)]
    if truth is not None:
        sections.append(recovery_section(st, table, names, truth))
        if gibbs is not None:
            sections.append(posterior_section(gibbs.interactions, names, truth))
    sections.append(table6_section(st, names))
    if gibbs is not None:
        sections.append(posterior_tables_section(gibbs, panel))
    return sections
