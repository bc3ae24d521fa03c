"""Assertions shared by several test modules."""

import logging
import re

import pytest


def one_line_error(exc, fn, *patterns) -> str:
    """``fn()`` raises ``exc`` with a single-line message matching every regex in ``patterns``."""
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg, msg
    for pat in patterns:
        assert re.search(pat, msg), (pat, msg)
    return msg


class count_compiles:
    """Count XLA compilations (JAX logs one line per compiled program under ``log_compiles``)."""

    def __enter__(self):
        self.records = []
        handler = logging.Handler()
        handler.emit = lambda rec: self.records.append(rec.getMessage())
        self.handler, self.logger = handler, logging.getLogger("jax")
        self.logger.addHandler(handler)
        self.level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        return lambda: sum("Compiling" in m for m in self.records)

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)
