"""The reporting layer returns sections and writes nothing; the command line's writer puts
their tables, arrays and figures beside the markdown document, atomically."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from fapm_jax.cli.output import write_report
from fapm_jax.reporting import figures
from fapm_jax.reporting.markdown import Section, document, md_table, pct
from fapm_jax.reporting.suite_sections import members_note, size_note


def test_markdown_helpers():
    assert md_table(["a", "b"], [[1, "x"]]) == "| a | b |\n|---|---|\n| 1 | x |"
    assert pct(0.01234) == "1.23" and pct(None) == "–" and pct(float("nan")) == "–"
    text = document("T", [Section("One", "body\n"), Section("Two", "more")])
    assert text == "# T\n\n## One\n\nbody\n\n## Two\n\nmore\n"


def test_figures_are_returned_unsaved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = figures.fapm_m_figure((1, 2, None), [0.01, 0.02, 0.015], [0.03, 0.04, 0.05], "FAPM-m")
    assert isinstance(fig, Figure) and not list(tmp_path.iterdir())


def test_write_report_writes_every_file(tmp_path):
    frame = pl.DataFrame({"m": ["1", "all"], "r2_oos": [0.01, 0.02]})
    fig = figures.yearly_figure(pl.DataFrame({"year": [2010, 2011], "r2_oos": [0.01, -0.02]}), "by year")
    sections = [
        Section("Table", md_table(["m"], [["1"]]), tables={"t.csv": frame, "t.parquet": frame}),
        Section("Figure", "![f](f.png)", figures={"f.png": fig}, arrays={"b.npz": {"B": np.eye(2)}}),
        Section("Note", size_note("sim", 4)),
    ]
    path = write_report(tmp_path / "REPORT.md", "Report", sections)
    assert path.read_text() == document("Report", sections)
    assert "## Note\n\nTop/bottom = the 4 largest" in path.read_text()
    assert pl.read_csv(tmp_path / "t.csv").equals(frame) and pl.read_parquet(tmp_path / "t.parquet").equals(
        frame
    )
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    np.testing.assert_array_equal(np.load(tmp_path / "b.npz")["B"], np.eye(2))
    assert not list(tmp_path.glob(".*.tmp"))


def test_posterior_section_counts_by_hand():
    """The planted pairs' section: within a factor of 2, covered in at least half of the windows
    and covered by the mean interval, each counted by hand on a two-window example."""
    from fapm_jax.core.gibbs_summaries import Interactions
    from fapm_jax.data.embedded import SimTruth
    from fapm_jax.reporting.interaction_sections import posterior_section

    names = ["a", "b", "c"]
    truth = SimTruth(0.0, {}, {("a", "b"): 1.0, ("a", "c"): -1.0}, {}, np.zeros(1), 1.0)
    B = np.zeros((2, 3, 3))
    B[:, 0, 1] = [0.8, 3.0]  # mean 1.9: within 2; window 1's band [0.5, 1.1] covers, window 2's not
    B[:, 0, 2] = [-3.0, -0.5]  # mean -1.75: within 2; no window's band covers; the mean band does
    lo, hi = B.copy(), B.copy()
    lo[:, 0, 1], hi[:, 0, 1] = [0.5, 2.9], [1.1, 3.1]
    lo[:, 0, 2], hi[:, 0, 2] = [-3.5, -0.9], [-1.5, 0.5]
    w = np.zeros((2, 3))
    sec = posterior_section(Interactions(B, lo, hi, w, w, w), names, truth)
    assert "Within a factor of 2 of the truth: 2 of 2" in sec.text
    assert "covered in at least half of the windows: 1 of 2" in sec.text
    assert "by the mean interval" in sec.text and "): 1 of 2." in sec.text
    t = sec.tables["posterior_interactions.csv"]
    np.testing.assert_allclose(t["ci_low"].to_numpy(), [1.7, -2.2])
    assert t["coverage"].to_list() == [0.5, 0.0]


def test_members_note_says_which_rows_are_ensembles():
    assert members_note(None, "paper") == "" and members_note(1, "map") == ""
    note = members_note(4, "paper")
    assert "--members 4" in note and "--estimator paper" in note and "mean of 4 fits" in note
    assert "but FAPM-Bayes and FAPM-m" in note
