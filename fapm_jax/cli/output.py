"""Writing what the reporting functions return: every table, figure and array of a list of
:class:`~fapm_jax.reporting.markdown.Section`, then the markdown document, each file atomically
(:mod:`fapm_jax.core.io`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..core.io import save_figure, write_arrays, write_frame, write_text
from ..reporting.markdown import Section, document


def write_files(out: Path, sections: Sequence[Section]) -> None:
    """Write the tables (CSV / parquet by suffix), arrays (``.npz``) and figures (PNG, then
    closed) of ``sections`` into ``out``."""
    for s in sections:
        for name, frame in s.tables.items():
            write_frame(out / name, frame)
        for name, arrays in s.arrays.items():
            write_arrays(out / name, arrays)
        for name, fig in s.figures.items():
            save_figure(out / name, fig)


def write_report(path: Path, title: str, sections: Sequence[Section]) -> Path:
    """Write the files of ``sections`` beside ``path``, then the markdown document ``path``."""
    write_files(path.parent, sections)
    return write_text(path, document(title, sections))
