"""FAPM-m's sections (paper section 3.2): Table 2 / Figure 5 (m strong + m weak factors),
Table 3 / Figure 6 (with the SIC2 dummies) and Figures 7–9 (in-sample R² by window), each
beside the paper's numbers, from a :class:`~fapm_jax.studies.fapm_m.FAPMmSweep`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from ..studies.fapm_m import FAPMmSweep
from . import figures, paper
from .markdown import Section, md_table, paper_value, pct


def default_ms(n_ranked: int, max_m: int = 20) -> tuple[int | None, ...]:
    """``1 … min(max_m, (n_ranked − 1) // 2)`` and ``None`` (all factors): every ``m`` whose
    subset is a proper subset of the ranked factors."""
    top = min(max_m, (n_ranked - 1) // 2)
    return (*range(1, top + 1), None)


def _m(m) -> str:
    return "all" if m is None else str(m)


def _by_window_frame(s: FAPMmSweep, years: Sequence[int], sic2: bool) -> list[dict]:
    return [
        {"m": _m(m), "test_year": y, "r2_is": float(v), "sic2": sic2}
        for m, row in zip(s.ms, s.r2_is_window)
        for y, v in zip(years, row)
    ]


def _listing(s: FAPMmSweep, years: Sequence[int]) -> str:
    """The factors of FAPM-m (largest m ≤ 7) in the first and the last window, and the paper's."""
    m_show = max((m for m in s.ms if m is not None and m <= 7), default=None)
    if m_show is None:
        return ""
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
    return (
        f"\n\nThe factors of FAPM-{m_show} (importance in %, OLS |w| normalised to sum to 100) in the "
        f"first and the last window:\n\n"
        + md_table(["window (test year)", f"top {m_show}", f"bottom {m_show}"], lines)
    )


def table2_section(s: FAPMmSweep, years: Sequence[int], sic2: FAPMmSweep | None = None) -> Section:
    """Table 2 and Figure 5: R²_oos and in-sample R² of every m, and each window's factors."""
    names = [_m(m) for m in s.ms]
    fapm_m = pl.DataFrame(
        {"m": names, "r2_oos": s.r2_oos, "r2_is": s.r2_is, "ranking": [s.ranking] * len(names)}
    )
    by_window = pl.DataFrame(
        _by_window_frame(s, years, False) + (_by_window_frame(sic2, years, True) if sic2 is not None else [])
    )
    sel = [
        {"m": _m(m), "test_year": years[w], "factor": f, "importance": imp}
        for m in s.ms
        if m is not None
        for w in range(len(years))
        for f, imp in s.selected(m, w)
    ]
    ranking = (
        "chosen inside each window from its own training rows (no look-ahead)"
        if s.ranking == "window"
        else "ranked once on the full sample (the paper's choice, which looks ahead)"
    )
    label = "per-window ranking" if s.ranking == "window" else "full-sample ranking (look-ahead)"
    fig5 = figures.fapm_m_figure(s.ms, s.r2_oos, s.r2_is, f"FAPM-m, {label}")
    rows = [
        [_m(m), pct(o, 3), pct(i, 3), paper_value(paper.TABLE2_R2.get(m))]
        for m, o, i in zip(s.ms, s.r2_oos, s.r2_is)
    ]
    t2 = md_table(["m", "R²_oos (%)", "in-sample R² (%)", "paper R²_oos (%)"], rows)
    best = int(np.argmax(s.r2_oos))
    return Section(
        "Table 2 and Figure 5: FAPM-m, m strong + m weak factors",
        f"FAPM on the m most and the m least important factors (importance = |w_i| of OLS on all factors, "
        f"normalised), {ranking}; all m and all {len(years)} windows in one vmapped program "
        f"({s.seconds:.0f} s). Best: m = {_m(s.ms[best])}, R²_oos {pct(s.r2_oos[best], 3)}%.\n\n"
        + t2
        + _listing(s, years)
        + "\n\n![Figure 5](figure5_fapm_m.png)\n\nFiles: fapm_m.csv, table2.csv (every window's factors), "
        "fapm_m_by_window.csv.",
        tables={"fapm_m.csv": fapm_m, "fapm_m_by_window.csv": by_window, "table2.csv": pl.DataFrame(sel)},
        figures={"figure5_fapm_m.png": fig5},
    )


def table3_section(s: FAPMmSweep, sic2: FAPMmSweep | None, note: str = "") -> Section:
    """Table 3 and Figure 6: FAPM-m without and with the SIC2 dummies in every subset."""
    title = "Table 3 and Figure 6: with and without SIC2"
    if sic2 is None:
        return Section(title, note or "Not run: the panel has no SIC2 codes.")
    fig6 = figures.sic2_figure(s.ms, s.r2_oos, sic2.ms, sic2.r2_oos, "FAPM-m with and without SIC2")
    with_ = dict(zip(sic2.ms, sic2.r2_oos))
    both = [(m, o) for m, o in zip(s.ms, s.r2_oos) if m in with_]
    rows3 = [
        [
            _m(m),
            pct(o, 3),
            pct(with_.get(m), 3),
            paper_value(paper.TABLE3["without"].get(m)),
            paper_value(paper.TABLE3["with"].get(m)),
        ]
        for m, o in both
    ]
    table3 = pl.DataFrame(
        {
            "m": [r[0] for r in rows3],
            "r2_oos": [float(o) for _, o in both],
            "r2_oos_sic2": [float(with_[m]) for m, _ in both],
        }
    )
    return Section(
        title,
        f"The same subsets with the {len(sic2.always)} SIC2 dummies added to every one (kept out of the "
        f"ranking) ({sic2.seconds:.0f} s). {note}\n\n"
        + md_table(["m", "without SIC2 (%)", "with SIC2 (%)", "paper without", "paper with"], rows3)
        + "\n\n![Figure 6](figure6_sic2.png)\n\nFile: table3.csv.",
        tables={"table3.csv": table3},
        figures={"figure6_sic2.png": fig6},
    )


def by_window_section(
    s: FAPMmSweep, years: Sequence[int], *, sic2: FAPMmSweep | None = None, max_m: int = 7
) -> Section:
    """Figures 7–9: each window's in-sample R² of the m-pair models, without and with SIC2, and
    minus the all-factor model's."""
    keep = [i for i, m in enumerate(s.ms) if m is None or m <= max_m]
    ms = [s.ms[i] for i in keep]
    figs = {
        "figure7_r2_is_by_window.png": figures.by_window_figure(
            ms, s.r2_is_window[keep], years, "In-sample R² per window, FAPM-m without SIC2"
        )
    }
    parts = ["![Figure 7](figure7_r2_is_by_window.png)"]
    if sic2 is not None:
        k2 = [i for i, m in enumerate(sic2.ms) if m is None or m <= max_m]
        figs["figure8_r2_is_by_window_sic2.png"] = figures.by_window_figure(
            [sic2.ms[i] for i in k2],
            sic2.r2_is_window[k2],
            years,
            "In-sample R² per window, FAPM-m with SIC2",
        )
        parts.append("![Figure 8](figure8_r2_is_by_window_sic2.png)")
    if None in s.ms:
        base = s.r2_is_window[list(s.ms).index(None)]
        figs["figure9_r2_is_minus_all.png"] = figures.by_window_figure(
            ms,
            s.r2_is_window[keep],
            years,
            "In-sample R² per window minus the all-factor model's",
            minus=base,
            ylabel="Δ in-sample R² (pp)",
        )
        parts.append("![Figure 9](figure9_r2_is_minus_all.png)")
        gaps = {m: float(np.mean(s.r2_is_window[i] - base)) for i, m in zip(keep, ms) if m is not None}
        parts.insert(
            0,
            "Mean over windows of each m-pair model's in-sample R² minus the all-factor model's (pp): "
            + ", ".join(f"m={m}: {100 * g:+.3f}" for m, g in gaps.items())
            + ". Fewer factors fit the training years less well by construction; what the subsets can "
            "win is out of sample (Table 2).",
        )
    return Section(
        "Figures 7–9: in-sample R² by window",
        "\n\n".join(parts) + "\n\nFile: fapm_m_by_window.csv.",
        figures=figs,
    )


def fapm_m_sections(
    s: FAPMmSweep, years: Sequence[int], *, sic2: FAPMmSweep | None = None, sic2_note: str = ""
) -> list[Section]:
    """Table 2 / Figure 5, Table 3 / Figure 6 (with ``sic2``), Figures 7–9."""
    return [
        table2_section(s, years, sic2),
        table3_section(s, sic2, sic2_note),
        by_window_section(s, years, sic2=sic2),
    ]
