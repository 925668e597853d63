"""Exceptions raised by :mod:`qgait_lab`.

Every error the library raises on purpose derives from :class:`QGaitError`, so
callers can catch the library's complaints without catching programming errors.
Subclasses also derive from the matching built-in exception where one fits
(``ValueError`` for bad data), so generic handlers keep working.
"""

from __future__ import annotations

__all__ = ["QGaitError", "ConfigError", "DataFormatError", "UnsafePickleError"]


class QGaitError(Exception):
    """Base class of all errors raised deliberately by qgait-lab."""


class ConfigError(QGaitError, ValueError):
    """An option, preset or argument has an invalid value; the message names it."""


class DataFormatError(QGaitError, ValueError):
    """A data file or folder does not hold what the format requires.

    The message always names the offending file and the problem.
    """


class UnsafePickleError(DataFormatError):
    """A pickle asked for something other than a plain numpy array.

    Raised *before* the requested object is created, so no payload runs.
    """
