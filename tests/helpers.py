"""Assertions shared by several test modules."""

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
