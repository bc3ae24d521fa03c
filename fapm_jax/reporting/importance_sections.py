"""Factor importance (paper section 3.3): Figure 10 (FAPM's first-order and every model's
R²-based importance of the characteristics) and Table 4 / Figure 11 (the macro predictors),
beside the paper's ranking and values.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
import polars as pl
from jaxtyping import Bool

from ..core.model import predict
from ..data.embedded import SimTruth
from ..data.panel import Panel
from ..evaluation.importance import first_order_importance, r2_drops, top_factors, window_average
from ..studies.rolling import RollingRun
from . import figures, paper
from .markdown import Section, md_table, paper_value

_FIRST_ORDER_NOTE = (
    "First-order importance: |w_i| of each window's fitted FAPM normalised to sum to one, averaged over "
    "the windows (all factors; the bars show characteristics, as the paper's Figure 10). R²-based "
    "importance (GKX): the drop in training R² when the factor is set to zero, the model fixed, negative "
    "drops as 0, normalised and averaged the same way."
)


def _figure10_section(
    names: list[str],
    macro: list[str],
    fo: np.ndarray,
    allf: Mapping[str, np.ndarray],
    frame: pl.DataFrame,
    truth: SimTruth | None,
) -> Section:
    chars = [i for i, f in enumerate(names) if f not in macro]
    char_names = [names[i] for i in chars]
    panels = {"FAPM first-order |w|": top_factors(fo[chars], char_names)}
    panels.update({f"{m} (R²-based)": top_factors(v[chars], char_names) for m, v in allf.items()})
    f10 = figures.bar_figure(panels, "Top-12 characteristics by importance")
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
    note = _FIRST_ORDER_NOTE
    null = [i for i, f in enumerate(names) if f not in macro and true_w is not None and true_w[i] == 0]
    real = [i for i in range(len(names)) if true_w is not None and true_w[i] != 0]
    if null and real:
        drop = allf["FAPM"]
        note += (
            f" On this simulated panel the characteristics outside the true g get at most "
            f"{100 * fo[null].max():.2f}% first-order and {100 * drop[null].max():.2f}% R²-based importance "
            f"(the smallest true factor: {100 * fo[real].min():.2f}% and {100 * drop[real].min():.2f}%)."
        )
    return Section(
        "Figure 10: factor importance",
        note + "\n\n" + text + "\n\n![Figure 10](figure10_importance.png)\n\nFile: importance.csv.",
        tables={"importance.csv": frame},
        figures={"figure10_importance.png": f10},
    )


def _table4_section(names: list[str], macro: list[str], drops: Mapping[str, np.ndarray]) -> Section:
    mac = {m: window_average(d, names, macro) for m, d in drops.items()}
    t4 = pl.DataFrame({"factor": macro, **{m: v[[names.index(f) for f in macro]] for m, v in mac.items()}})
    models = list(mac)

    def cell(f: str, m: str, v: float) -> str:
        return f"{100 * v:.1f} / {paper_value(paper.TABLE4.get(f.removesuffix('_macro'), {}).get(m), 1)}"

    rows = [[f, *(cell(f, m, t4[m][i]) for m in models)] for i, f in enumerate(macro)]
    f11 = figures.grouped_bar_figure(t4, "R²-based importance of the macro predictors")
    return Section(
        "Table 4 and Figure 11: importance of the macro predictors",
        "R²-based importance of each macro predictor, normalised to sum to 100 within each model, averaged "
        "over windows; ours / the paper's (CRSP data: compare the pattern, not the level).\n\n"
        + md_table(["macro", *models], rows)
        + "\n\n![Figure 11](figure11_macro_importance.png)\n\nFile: table4_macro_importance.csv.",
        tables={"table4_macro_importance.csv": t4},
        figures={"figure11_macro_importance.png": f11},
    )


def importance_sections(
    run: RollingRun,
    panel: Panel,
    train_masks: Bool[np.ndarray, "W N"],
    suite: Mapping[str, np.ndarray] | None = None,
    truth: SimTruth | None = None,
) -> list[Section]:
    """Table 4 and Figures 10–11: FAPM's first-order importance and every model's R²-based
    importance (``suite``: model → ``[W, n]`` R² drops from the comparison run)."""
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
    sections = [_figure10_section(names, macro, fo, allf, frame, truth)]
    if macro:
        sections.append(_table4_section(names, macro, drops))
    return sections
