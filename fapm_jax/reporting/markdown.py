"""The report document: :class:`Section` (a heading, its markdown and the files it refers to),
markdown tables and percentages, and the ``summary.md`` / ``REPORT.md`` text.

Reporting functions build sections and return them; the command line writes their files
(:func:`fapm_jax.cli.output.write_files`) and then the document (:func:`document`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from matplotlib.figure import Figure


@dataclasses.dataclass(frozen=True, eq=False)
class Section:
    """One ``## title`` of a report and the files its text names, keyed by file name:
    ``tables`` (CSV or parquet by suffix), ``figures`` (PNG), ``arrays`` (``.npz``)."""

    title: str
    text: str
    tables: Mapping[str, pl.DataFrame] = dataclasses.field(default_factory=dict)
    figures: Mapping[str, Figure] = dataclasses.field(default_factory=dict)
    arrays: Mapping[str, Mapping[str, np.ndarray]] = dataclasses.field(default_factory=dict)


def pct(x: float | None, digits: int = 2) -> str:
    """``x`` in percent with ``digits`` decimals; "–" for a missing or non-finite value."""
    return "–" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f}"


def paper_value(v: float | None, digits: int = 2) -> str:
    """A published value as printed (already in percent); "–" where the paper has none."""
    return "–" if v is None else f"{v:.{digits}f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def document(title: str, sections: Sequence[Section]) -> str:
    """The markdown document: ``# title`` and one ``## heading`` per section."""
    parts = [f"# {title}\n"]
    for s in sections:
        parts.append(f"## {s.title}\n\n{s.text.strip()}\n")
    return "\n".join(parts)
