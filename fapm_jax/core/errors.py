"""The package's errors: one base, :class:`FAPMError` (a ``ValueError``), and a few kinds.

Every message is one line naming what is wrong and where (the option, the file and column, the
window); the command line catches :class:`FAPMError` and prints it with exit code 2.
"""

from __future__ import annotations


class FAPMError(ValueError):
    """Base of every error the package raises for bad input or options."""


class ConfigError(FAPMError):
    """An invalid option: a training, model, suite or command-line setting."""


class DataError(FAPMError):
    """Bad input data: a missing column, an unparseable date, a duplicate key, NaN/inf, a file
    that does not cover what is asked of it."""


#: The name of :class:`DataError` before the errors were unified; kept for user scripts.
PanelError = DataError


class WindowError(DataError):
    """A rolling window the data cannot fill (a missing or empty year)."""


class StudyError(FAPMError):
    """A study (comparison suite, simulation study, sweep) that cannot run as asked."""
