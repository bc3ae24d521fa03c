"""Progress of the long commands (fapm_jax.cli.progress): a bar on a terminal, plain lines in a
log, nothing under --quiet."""

from __future__ import annotations

import io
import types

from fapm_jax.cli.progress import Stages


def _run(quiet: bool, tty: bool) -> str:
    buf = io.StringIO()
    st = Stages(types.SimpleNamespace(quiet=quiet), 3, "reproduce", stream=buf, tty=tty)
    st.done("FAPM 1.0 s")
    st.note("a line between stages")
    st.done("suite", n=2)
    st.close()
    return buf.getvalue()


def test_plain_lines_when_not_a_terminal():
    lines = _run(quiet=False, tty=False).splitlines()
    assert lines[0].startswith("  [1/3] FAPM 1.0 s (") and lines[0].endswith("s elapsed)")
    assert lines[1] == "a line between stages"
    assert lines[2].startswith("  [3/3] suite (")
    assert "\r" not in "".join(lines) and "it/s" not in "".join(lines)


def test_a_bar_with_elapsed_and_estimate_on_a_terminal():
    out = _run(quiet=False, tty=True)
    assert "reproduce" in out and "3/3" in out and "a line between stages" in out
    assert "<" in out and "[" in out  # tqdm's "[elapsed<remaining" field


def test_quiet_writes_nothing():
    assert _run(quiet=True, tty=True) == "" and _run(quiet=True, tty=False) == ""
