"""The paper's analyses of sections 3.2–3.3 as ``REPORT.md`` sections: FAPM-m (Table 2,
Figure 5), SIC2 (Table 3, Figure 6), in-sample R² by window (Figures 7–9), factor importance
(Table 4, Figures 10–11) and interactions (Tables 5–6, Figures 12–14, heat map, stability).

Each function composes the library (:mod:`~fapm_jax.studies.fapm_m`, :mod:`~fapm_jax.evaluation.importance`,
:mod:`~fapm_jax.evaluation.interactions`, :mod:`~fapm_jax.reporting.figures`), writes its CSV and PNG files into
``out`` and returns ``(heading, markdown)`` sections with the paper's numbers beside ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import polars as pl

from ..core.io import write_arrays, write_frame
from ..core.model import predict
from ..data.embedded import SimTruth
from ..data.panel import Panel
from ..evaluation.importance import first_order_importance, r2_drops, top_factors, window_average
from ..evaluation.interactions import (
    average_interaction,
    interaction_stats,
    interaction_table,
    recovery,
    top_interactions,
    window_interactions,
)
from ..studies.fapm_m import FAPMmSweep
from ..studies.rolling import RollingRun
from . import figures, paper
from .report import md_table, pct

Sections = list[tuple[str, str]]


def default_ms(n_ranked: int, max_m: int = 20) -> tuple[int | None, ...]:
    """``1 … min(max_m, (n_ranked − 1) // 2)`` and ``None`` (all factors): every ``m`` whose
    subset is a proper subset of the ranked factors."""
    top = min(max_m, (n_ranked - 1) // 2)
    return (*range(1, top + 1), None)


def _m(m) -> str:
    return "all" if m is None else str(m)


def _paper(v, digits=2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


# ----------------------------------------------------------------------------- FAPM-m, SIC2, by year


def fapm_m_sections(
    s: FAPMmSweep, out: Path, years: Sequence[int], *, sic2: FAPMmSweep | None = None, sic2_note: str = ""
) -> Sections:
    """Table 2 / Figure 5, Table 3 / Figure 6 (with ``sic2``), Figures 7–9."""
    out = Path(out)
    names = [_m(m) for m in s.ms]
    write_frame(
        out / "fapm_m.csv",
        pl.DataFrame({"m": names, "r2_oos": s.r2_oos, "r2_is": s.r2_is, "ranking": [s.ranking] * len(names)}),
    )
    write_frame(
        out / "fapm_m_by_window.csv",
        pl.DataFrame(
            [
                {"m": n, "test_year": y, "r2_is": float(v), "sic2": False}
                for n, row in zip(names, s.r2_is_window)
                for y, v in zip(years, row)
            ]
            + (
                [
                    {"m": _m(m), "test_year": y, "r2_is": float(v), "sic2": True}
                    for m, row in zip(sic2.ms, sic2.r2_is_window)
                    for y, v in zip(years, row)
                ]
                if sic2 is not None
                else []
            )
        ),
    )
    sel = [
        {"m": _m(m), "test_year": years[w], "factor": f, "importance": imp}
        for m in s.ms
        if m is not None
        for w in range(len(years))
        for f, imp in s.selected(m, w)
    ]
    write_frame(out / "table2.csv", pl.DataFrame(sel))
    ranking = (
        "chosen inside each window from its own training rows (no look-ahead)"
        if s.ranking == "window"
        else "ranked once on the full sample (the paper's choice, which looks ahead)"
    )
    fig5 = figures_fapm_m(s, out)
    rows = [
        [_m(m), pct(o, 3), pct(i, 3), _paper(paper.TABLE2_R2.get(m))]
        for m, o, i in zip(s.ms, s.r2_oos, s.r2_is)
    ]
    t2 = md_table(["m", "R²_oos (%)", "in-sample R² (%)", "paper R²_oos (%)"], rows)
    m_show = max((m for m in s.ms if m is not None and m <= 7), default=None)
    listing = ""
    if m_show is not None:
        lines = []
        for w in (0, len(years) - 1):
            chosen = s.selected(m_show, w)
            lines.append(
                [
                    f"{years[w]}",
                    ", ".join(f"{f} ({100 * v:.2f})" for f, v in chosen[:m_show]),
                    ", ".join(f"{f} ({100 * v:.2g})" for f, v in chosen[m_show:]),
                ]
            )
        lines.append(
            [
                "paper (full sample)",
                ", ".join(f"{f} ({v:.2f})" for f, v in paper.TABLE2_TOP[:m_show]),
                ", ".join(f"{f} ({v:.2g})" for f, v in paper.TABLE2_BOTTOM[:m_show]),
            ]
        )
        listing = (
            f"\n\nThe factors of FAPM-{m_show} (importance in %, OLS |w| normalised to sum to 100) in the first "
            f"and the last window:\n\n"
            + md_table(["window (test year)", f"top {m_show}", f"bottom {m_show}"], lines)
        )
    best = int(np.argmax(s.r2_oos))
    sections = [
        (
            "Table 2 and Figure 5: FAPM-m, m strong + m weak factors",
            f"FAPM on the m most and the m least important factors (importance = |w_i| of OLS on all factors, "
            f"normalised), {ranking}; all m and all {len(years)} windows in one vmapped program "
            f"({s.seconds:.0f} s). Best: m = {_m(s.ms[best])}, R²_oos {pct(s.r2_oos[best], 3)}%.\n\n"
            + t2
            + listing
            + f"\n\n![Figure 5]({fig5.name})\n\nFiles: fapm_m.csv, table2.csv (every window's factors), "
            "fapm_m_by_window.csv.",
        )
    ]
    if sic2 is not None:
        fig6 = figures.sic2_figure(
            s.ms, s.r2_oos, sic2.ms, sic2.r2_oos, out / "figure6_sic2.png", "FAPM-m with and without SIC2"
        )
        with_ = dict(zip(sic2.ms, sic2.r2_oos))
        rows3 = [
            [
                _m(m),
                pct(o, 3),
                pct(with_.get(m), 3),
                _paper(paper.TABLE3["without"].get(m)),
                _paper(paper.TABLE3["with"].get(m)),
            ]
            for m, o in zip(s.ms, s.r2_oos)
            if m in with_
        ]
        write_frame(
            out / "table3.csv",
            pl.DataFrame(
                {
                    "m": [r[0] for r in rows3],
                    "r2_oos": [float(s.r2_oos[list(s.ms).index(m)]) for m in s.ms if m in with_],
                    "r2_oos_sic2": [float(with_[m]) for m in s.ms if m in with_],
                }
            ),
        )
        sections.append(
            (
                "Table 3 and Figure 6: with and without SIC2",
                f"The same subsets with the {len(sic2.always)} SIC2 dummies added to every one (kept out of the "
                f"ranking) ({sic2.seconds:.0f} s). {sic2_note}\n\n"
                + md_table(["m", "without SIC2 (%)", "with SIC2 (%)", "paper without", "paper with"], rows3)
                + f"\n\n![Figure 6]({fig6.name})\n\nFile: table3.csv.",
            )
        )
    else:
        sections.append(
            (
                "Table 3 and Figure 6: with and without SIC2",
                sic2_note or "Not run: the panel has no SIC2 codes.",
            )
        )
    sections.append(by_window_section(s, out, years, sic2=sic2))
    return sections


def figures_fapm_m(s: FAPMmSweep, out: Path) -> Path:
    from .report import fapm_m_figure

    label = "per-window ranking" if s.ranking == "window" else "full-sample ranking (look-ahead)"
    return fapm_m_figure(s.ms, s.r2_oos, s.r2_is, Path(out) / "figure5_fapm_m.png", f"FAPM-m, {label}")


def by_window_section(
    s: FAPMmSweep, out: Path, years: Sequence[int], *, sic2: FAPMmSweep | None = None, max_m: int = 7
) -> tuple[str, str]:
    """Figures 7–9: each window's in-sample R² of the m-pair models, without and with SIC2, and
    minus the all-factor model's."""
    keep = [i for i, m in enumerate(s.ms) if m is None or m <= max_m]
    ms = [s.ms[i] for i in keep]
    f7 = figures.by_window_figure(
        ms,
        s.r2_is_window[keep],
        years,
        out / "figure7_r2_is_by_window.png",
        "In-sample R² per window, FAPM-m without SIC2",
    )
    parts = [f"![Figure 7]({f7.name})"]
    if sic2 is not None:
        k2 = [i for i, m in enumerate(sic2.ms) if m is None or m <= max_m]
        f8 = figures.by_window_figure(
            [sic2.ms[i] for i in k2],
            sic2.r2_is_window[k2],
            years,
            out / "figure8_r2_is_by_window_sic2.png",
            "In-sample R² per window, FAPM-m with SIC2",
        )
        parts.append(f"![Figure 8]({f8.name})")
    if None in s.ms:
        base = s.r2_is_window[list(s.ms).index(None)]
        f9 = figures.by_window_figure(
            ms,
            s.r2_is_window[keep],
            years,
            out / "figure9_r2_is_minus_all.png",
            "In-sample R² per window minus the all-factor model's",
            minus=base,
            ylabel="Δ in-sample R² (pp)",
        )
        parts.append(f"![Figure 9]({f9.name})")
        gaps = {m: float(np.mean(s.r2_is_window[i] - base)) for i, m in zip(keep, ms) if m is not None}
        parts.insert(
            0,
            "Mean over windows of each m-pair model's in-sample R² minus the all-factor model's (pp): "
            + ", ".join(f"m={m}: {100 * g:+.3f}" for m, g in gaps.items())
            + ". Fewer factors fit the "
            "training years less well by construction; what the subsets can win is out of sample (Table 2).",
        )
    return ("Figures 7–9: in-sample R² by window", "\n\n".join(parts) + "\n\nFile: fapm_m_by_window.csv.")


# ----------------------------------------------------------------------------- importance


def importance_sections(
    run: RollingRun,
    panel: Panel,
    train_masks: np.ndarray,
    out: Path,
    suite: dict[str, np.ndarray] | None = None,
    truth: SimTruth | None = None,
) -> Sections:
    """Table 4 and Figures 10–11: FAPM's first-order importance and every model's R²-based
    importance (``suite``: model → ``[W, n]`` R² drops from the comparison run)."""
    out = Path(out)
    names = list(panel.feature_names)
    macro = [m for m in panel.macro_names if m in names]
    fo = first_order_importance(np.asarray(run.params.w)).mean(axis=0)
    drops = dict(suite or {})
    drops["FAPM"] = r2_drops(predict, run.params, jnp.asarray(panel.X), panel.r, train_masks)
    allf = {m: window_average(d, names) for m, d in drops.items()}
    frame = pl.DataFrame(
        {
            "factor": names,
            "macro": [f in macro for f in names],
            "FAPM_first_order": fo,
            **{f"{m}_r2": v for m, v in allf.items()},
        }
    )
    write_frame(out / "importance.csv", frame)
    chars = [i for i, f in enumerate(names) if f not in macro]
    char_names = [names[i] for i in chars]
    panels = {"FAPM first-order |w|": top_factors(fo[chars], char_names)}
    panels.update({f"{m} (R²-based)": top_factors(v[chars], char_names) for m, v in allf.items()})
    f10 = figures.bar_figure(panels, out / "figure10_importance.png", "Top-12 characteristics by importance")
    sections = []
    true_w = truth.linear_weights(names) if truth is not None else None
    top = top_factors(fo[chars], char_names)
    rows = [
        [
            i + 1,
            f,
            f"{100 * v:.2f}",
            f"{100 * allf['FAPM'][names.index(f)]:.2f}",
            (
                ("yes" if true_w[names.index(f)] != 0 else "no")
                if true_w is not None
                else (paper.FIGURE10[i] if i < len(paper.FIGURE10) else "–")
            ),
        ]
        for i, (f, v) in enumerate(top)
    ]
    last = "in the true g" if true_w is not None else "paper's Figure 10"
    text = md_table(["rank", "characteristic", "FAPM first-order (%)", "FAPM R²-based (%)", last], rows)
    note = (
        "First-order importance: |w_i| of each window's fitted FAPM normalised to sum to one, averaged over the "
        "windows (all factors; the bars show characteristics, as the paper's Figure 10). R²-based importance "
        "(GKX): the drop in training R² when the factor is set to zero, the model fixed, negative drops as 0, "
        "normalised and averaged the same way."
    )
    null = [i for i, f in enumerate(names) if f not in macro and true_w is not None and true_w[i] == 0]
    real = [i for i in range(len(names)) if true_w is not None and true_w[i] != 0]
    if null and real:
        note += (
            f" On this simulated panel the characteristics outside the true g get at most "
            f"{100 * fo[null].max():.2f}% first-order and {100 * allf['FAPM'][null].max():.2f}% R²-based importance "
            f"(the smallest true factor: {100 * fo[real].min():.2f}% and {100 * allf['FAPM'][real].min():.2f}%)."
        )
    sections.append(
        (
            "Figure 10: factor importance",
            note + "\n\n" + text + f"\n\n![Figure 10]({f10.name})\n\nFile: importance.csv.",
        )
    )
    if macro:
        mac = {m: window_average(d, names, macro) for m, d in drops.items()}
        t4 = pl.DataFrame(
            {"factor": macro, **{m: v[[names.index(f) for f in macro]] for m, v in mac.items()}}
        )
        write_frame(out / "table4_macro_importance.csv", t4)
        models = list(mac)
        rows = [
            [
                f,
                *(
                    f"{100 * t4[m][i]:.1f} / {_paper(paper.TABLE4.get(f.removesuffix('_macro'), {}).get(m), 1)}"
                    for m in models
                ),
            ]
            for i, f in enumerate(macro)
        ]
        f11 = figures.grouped_bar_figure(
            t4, out / "figure11_macro_importance.png", "R²-based importance of the macro predictors"
        )
        sections.append(
            (
                "Table 4 and Figure 11: importance of the macro predictors",
                "R²-based importance of each macro predictor, normalised to sum to 100 within each model, averaged over "
                "windows; ours / the paper's (CRSP data: compare the pattern, not the level).\n\n"
                + md_table(["macro", *models], rows)
                + f"\n\n![Figure 11]({f11.name})\n\nFile: table4_macro_importance.csv.",
            )
        )
    return sections


# ----------------------------------------------------------------------------- interactions


def interaction_sections(
    run: RollingRun, panel: Panel, out: Path, truth: SimTruth | None = None, n_boot: int = 1000
) -> Sections:
    """Tables 5–6, Figures 12–14, the heat map and the stability of the top interactions."""
    out = Path(out)
    names = list(panel.feature_names)
    B = np.asarray(window_interactions(run.params))
    st = interaction_stats(B, names, panel.macro_names, n_boot=n_boot)
    table = interaction_table(st)
    write_frame(out / "interactions.csv", table)
    write_arrays(
        out / "interactions_by_window.npz",
        {"B": B, "feature_names": np.asarray(names), "test_year": np.array([w.test for w in run.windows])},
    )
    macro_pairs = top_interactions(table, ["macro×macro"], top=9)
    char_pairs = top_interactions(table, ["macro×char", "char×char"], top=9)

    def rows(t):
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
            for a, b, v, m, sd, g, lo, hi, sig in zip(
                t["a"],
                t["b"],
                t["normalised"],
                t["mean"],
                t["sd"],
                t["sign_agreement"],
                t["ci_low"],
                t["ci_high"],
                t["signal"],
            )
        ]

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
    f12 = figures.interaction_bars_figure(
        top_interactions(table, ["macro×macro", "macro×char"], top=12),
        out / "figure12_macro_interactions.png",
        "Top-12 macro × macro and macro × characteristic",
    )
    f13 = figures.interaction_bars_figure(
        top_interactions(table, ["char×char"], top=6),
        out / "figure13_char_interactions.png",
        "Top-6 characteristic × characteristic",
    )
    heat = figures.heatmap_figure(
        st.mean, names, out / "interaction_heatmap.png", "Mean interaction matrix over windows"
    )
    top20 = table.head(20)
    stab = figures.stability_figure(
        top20, out / "interaction_stability.png", "Top-20 interactions across windows"
    )
    paper5 = (
        "Paper's Table 5 (CRSP): "
        + ", ".join(f"{a}-{b} {v:.2f}" for a, b, v in paper.TABLE5_MACRO)
        + "; with a characteristic: "
        + ", ".join(f"{a}-{b} {v:.3f}" for a, b, v in paper.TABLE5_CHAR)
        + "."
    )
    text5 = (
        f"B_ij = <v_i, v_j> of each window's fitted FAPM; statistics over the {st.n_windows} windows: the mean, its "
        f"standard deviation, the share of windows with the mean's sign, and a {int(100 * st.level)}% moving-block "
        f"bootstrap band of the mean (blocks of {st.block} consecutive windows — the windows share most of their "
        'training years, so they are not independent). "Normalised": |mean| over the sum of the shown pairs\' '
        f"(the paper's normalisation to 1). \\*Same sign: share of the {n_act} windows whose chosen model has "
        f"interactions at all; in the other {st.n_windows - n_act} the validation years preferred the OLS start "
        "(V = 0, B = 0), which enters the mean as zeros.\n\n**Macro × macro**\n\n"
        + md_table(head, rows(macro_pairs))
        + "\n\n**With a characteristic** (macro × characteristic and characteristic × characteristic)\n\n"
        + md_table(head, rows(char_pairs))
        + f"\n\n{paper5}\n\n![Figure 12]({f12.name})\n\n![Figure 13]({f13.name})"
    )
    n_sig = int(top20["signal"].sum())
    text5 += (
        f"\n\nStability: {n_sig} of the 20 largest interactions have a bootstrap band that excludes zero; "
        f"their sign agreement across the {n_act} windows with interactions ranges from {100 * top20['sign_agreement'].min():.0f}% to "
        f"{100 * top20['sign_agreement'].max():.0f}%.\n\n![stability]({stab.name})\n\n![heat map]({heat.name})"
        "\n\nFiles: interactions.csv (every pair with its statistics), interactions_by_window.npz (each "
        "window's B)."
    )
    sections = [("Table 5, Figures 12–13: interactions", text5)]
    if truth is not None:
        rec = recovery(st.mean, truth.interaction_matrix(names), names)
        rows_t = []
        for p in rec["pairs"]:
            r_ = table.filter(
                ((pl.col("a") == p["a"]) & (pl.col("b") == p["b"]))
                | ((pl.col("a") == p["b"]) & (pl.col("b") == p["a"]))
            )
            rows_t.append(
                [
                    f"{p['a']} × {p['b']}",
                    f"{p['true']:+.4f}",
                    f"{p['estimate']:+.2e}",
                    p["rank"],
                    "yes" if bool(r_["signal"][0]) else "no",
                ]
            )
        sections.append(
            (
                "Recovered versus true interactions (simulated data)",
                f"The embedded panel's true g has {len(rec['pairs'])} interactions among {rec['n_pairs']} pairs. "
                f"Correlation of the mean estimated and the true B (upper triangle): {rec['correlation']:.3f}.\n\n"
                + md_table(
                    [
                        "true pair",
                        "true B_ij",
                        "estimated mean B_ij",
                        "rank of |estimate| (1 = largest)",
                        "band excludes 0",
                    ],
                    rows_t,
                )
                + "\n\nThe ranking is recovered; the magnitudes are shrunk (early stopping from a small initial V), as "
                "with any regularised estimate.",
            )
        )
    avg = average_interaction(st.mean, names)
    write_frame(out / "table6_average_interaction.csv", avg)
    f14 = figures.average_interaction_figure(
        avg, out / "figure14_average_interaction.png", "Average interaction per factor"
    )
    top_avg = avg.head(20)
    rows6 = [
        [
            i + 1,
            f,
            f"{v:.2e}",
            f"{s_:.3f}",
            (f"{paper.TABLE6[i][0]} ({paper.TABLE6[i][1]:.3f})" if i < len(paper.TABLE6) else "–"),
        ]
        for i, (f, v, s_) in enumerate(zip(top_avg["factor"], top_avg["average"], top_avg["share"]))
    ]
    rows6.append(["", "others", "", f"{max(0.0, 1 - float(top_avg['share'].sum())):.3f}", "others (0.053)"])
    sections.append(
        (
            "Table 6 and Figure 14: average interaction of each factor",
            "Each factor's mean |B_ij| over its partners, and its share of the sum over factors; paper's ranking beside.\n\n"
            + md_table(["rank", "factor", "mean |B_ij|", "share", "paper (share)"], rows6)
            + f"\n\n![Figure 14]({f14.name})\n\nFile: table6_average_interaction.csv.",
        )
    )
    return sections
