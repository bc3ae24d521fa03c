"""Progress that a person reads: a bar over a command's stages with elapsed and estimated time
(tqdm) on a terminal, one plain line per stage in a log (stderr not a terminal), nothing under
``--quiet``."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm


class Stages:
    """``total`` stages of a long command (``fapm simulate``'s cells, ``fapm reproduce``'s
    steps). :meth:`done` marks one finished with its label; the bar shows how many, the elapsed
    time and tqdm's estimate of the rest. ``tty`` (``None``: whether ``stream`` is a terminal)
    picks the bar or plain lines."""

    def __init__(self, args, total: int, desc: str, stream: TextIO | None = None, tty: bool | None = None):
        self.quiet = bool(getattr(args, "quiet", False))
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total, self.count, self.t0 = total, 0, time.perf_counter()
        self.bar = None
        if not self.quiet and self.tty:
            self.bar = tqdm(total=total, desc=desc, file=self.stream, unit="stage", dynamic_ncols=True)

    def done(self, label: str, n: int = 1) -> None:
        """Stage(s) ``label`` finished."""
        self.count += n
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(label, refresh=False)
            self.bar.update(n)
        else:
            t = time.perf_counter() - self.t0
            print(f"  [{self.count}/{self.total}] {label} ({t:.0f} s elapsed)", file=self.stream, flush=True)

    def note(self, msg: str) -> None:
        """A line that must not break the bar (``tqdm.write``)."""
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(msg, file=self.stream)
        else:
            print(msg, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
