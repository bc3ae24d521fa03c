"""The text of ``fapm data check``: a :class:`~fapm_jax.data.check.DataReport` as one report
section (stock-months, characteristics and their missing values, rows dropped, macro coverage,
windows) with its figure ``stocks_per_month.png`` and table ``missing_by_characteristic.csv``.
"""

from __future__ import annotations

import numpy as np

from ..data.check import DROP_REASONS, DataReport, month_label
from ..data.macro import MACRO_HISTORY
from .figures import stocks_per_month_figure
from .markdown import Section, md_table, pct

FIGURE = "stocks_per_month.png"
MISSING_TABLE = "missing_by_characteristic.csv"


def _names(names, empty: str = "none") -> str:
    return ", ".join(names) if names else empty


def _month(m) -> str:
    return "–" if m is None else month_label(int(m))


def panel_text(report: DataReport) -> str:
    """Stock-months, stocks, months and stocks per month, overall and by decade."""
    spm = report.stocks_per_month
    decades = report.months // 1000 * 10
    rows = []
    for d in np.unique(decades):
        sel = decades == d
        rows.append([f"{d}s", int(sel.sum()), f"{int(spm[sel].sum()):,}", f"{spm[sel].mean():,.1f}"])
    lines = [
        f"- Stock-months: {report.n_stock_months:,} (the rows `fapm run` trains and tests on).",
        f"- Stocks: {report.n_stocks:,}.",
        f"- Months: {report.n_months}, first {month_label(report.first_month)}, "
        f"last {month_label(report.last_month)}.",
        f"- Stocks per month: min {int(spm.min()):,}, median {int(np.median(spm)):,}, "
        f"max {int(spm.max()):,}.",
        "",
        md_table(["decade", "months", "stock-months", "stocks per month (mean)"], rows),
        "",
        f"![stocks per month]({FIGURE})",
    ]
    return "\n".join(lines)


def characteristics_text(report: DataReport) -> str:
    """Characteristics used, absent, unused and constant; missing shares of those used."""
    sic = (
        "no `sic2` column"
        if report.sic2_codes is None
        else f"{report.sic2_codes} distinct codes, missing in {report.sic2_missing:,} stock-months"
    )
    lines = [
        f"- Used: {len(report.used_chars)} of the 94 GKX characteristics ({_names(report.used_chars)}); "
        f"{report.n_factors} factors in all with the 8 macro predictors"
        + (f" and {report.n_sic2_dummies} SIC2 dummies." if report.n_sic2_dummies else "."),
        f"- Absent from the file: {len(report.absent_chars)} ({_names(report.absent_chars)}).",
        f"- In the file but not used (`--use-chars` / `--drop-chars`): {_names(report.unused_chars)}.",
        f"- Constant over the panel after ranking (the factor is 0 everywhere): "
        f"{_names(report.constant_chars)}.",
        f"- SIC2: {sic}.",
        "",
        "Missing: the share of the stock-months whose raw value is missing in the file (empty, "
        "`NA`, `NaN`, ...), set to the cross-sectional median (0 after ranking); overall and by "
        f"decade of `t`. Every characteristic of the file is in `{MISSING_TABLE}`.",
        "",
    ]
    miss = report.missing.filter("used")
    decades = [c for c in miss.columns if c.endswith("s") and c[:-1].isdigit()]
    rows = [
        [r["characteristic"], f"{r['missing_rows']:,}", pct(r["all"], 1), *(pct(r[d], 1) for d in decades)]
        for r in miss.iter_rows(named=True)
    ]
    lines.append(
        md_table(["characteristic", "missing rows", "all (%)", *(f"{d} (%)" for d in decades)], rows)
    )
    return "\n".join(lines)


def dropped_text(report: DataReport) -> str:
    """Rows of the characteristics file without a next-month return, by reason; market equity."""
    rows = [[label, f"{report.dropped.get(key, 0):,}"] for key, label in DROP_REASONS.items()]
    rows.append(["**dropped in all**", f"**{report.n_dropped:,}**"])
    me = report.me_source
    return "\n".join(
        [
            f"The characteristics file has {report.file_rows:,} rows; a row dated `t` stays when the "
            f"returns have the stock's return of `t + 1`: {report.n_stock_months:,} stay.",
            "",
            md_table(["reason a row is dropped", "rows"], rows),
            "",
            f"Market equity at `t` (value weights, size groups): `|PRC|·SHROUT` of CRSP for "
            f"{me.get('crsp', 0):,} stock-months, the raw `mvel1` for {me.get('mvel1', 0):,} (no CRSP "
            "price or shares at `t`); a row with neither stops `fapm run`.",
        ]
    )


def macro_text(report: DataReport) -> str:
    """First and last month of each Welch–Goyal predictor, months the panel lacks, history."""
    raw = report.macro_transform == "raw"
    rows = []
    for r in report.macro.iter_rows(named=True):
        if r["history"] is None:
            hist = "–"
        else:
            hist = f"{r['history']} ({'yes' if r['history_ok'] else 'no'})"
        rows.append([r["predictor"], _month(r["first"]), _month(r["last"]), r["months"], r["missing"], hist])
    note = (
        "which `rank` and `zscore` need; this check's `raw` transform needs none"
        if raw
        else f"which the `{report.macro_transform}` transform needs; `--macro-transform raw` needs none"
    )
    return "\n".join(
        [
            f'Source: {report.sources.get("macro", "–")}. "Missing" counts the months the panel needs '
            'without a value (`t` for a predictor, `t + 1` for the risk-free rate `rf`); "history" '
            f"the predictor's months up to the panel's first month, {month_label(report.first_month)} "
            f"(yes: at least {MACRO_HISTORY}, {note}).",
            "",
            md_table(["predictor", "first", "last", "months", "missing", "history"], rows),
        ]
    )


def windows_text(report: DataReport) -> str:
    """One line per rolling window: its years, row counts and whether the data fill it."""
    s = report.spec
    rows = []
    for i, w in enumerate(report.windows):
        win = w.window
        rows.append(
            [
                i,
                f"{win.train[0]}–{win.train[1]}",
                f"{win.valid[0]}–{win.valid[1]}",
                win.test,
                f"{w.train_rows:,}",
                f"{w.valid_rows:,}",
                f"{w.test_rows:,}",
                "yes" if w.fillable else "no: no rows in " + ", ".join(map(str, w.missing_years)),
            ]
        )
    return "\n".join(
        [
            f"{report.n_fillable} of {len(report.windows)} windows fillable (first year {s.first_year}, "
            f"{s.valid_years} validation years, first test year {s.first_test_year}).",
            "",
            md_table(
                ["window", "train", "valid", "test", "train rows", "valid rows", "test rows", "fillable"],
                rows,
            ),
        ]
    )


def data_check_section(report: DataReport) -> Section:
    """The whole data report as one section, with its figure and missing-value table."""
    text = "\n\n".join(
        [
            f"Characteristics: `{report.sources.get('characteristics', '–')}`; returns: "
            f"`{report.sources.get('returns', '–')}`.",
            report.summary_paragraph(),
            "### Stock-months\n\n" + panel_text(report),
            "### Characteristics\n\n" + characteristics_text(report),
            "### Rows dropped\n\n" + dropped_text(report),
            "### Macro predictors\n\n" + macro_text(report),
            "### Windows\n\n" + windows_text(report),
        ]
    )
    fig = stocks_per_month_figure(report.months, report.stocks_per_month, "Stocks per month")
    return Section(
        title="Data check",
        text=text,
        tables={MISSING_TABLE: report.missing},
        figures={FIGURE: fig},
    )
