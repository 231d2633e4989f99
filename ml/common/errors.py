"""The error base of the ``ml`` package.

Every error an ``ml`` function raises for bad input is a :class:`MLError`: it says what was
wrong and what is allowed. It is a :class:`ValueError`, so callers that catch bad values
keep working; the command line catches :class:`MLError` and shows its message, while any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["MLError", "ReportError"]


class MLError(ValueError):
    """Input an ``ml`` function cannot use; the message names the value and what is allowed."""


class ReportError(MLError):
    """Data a figure or JSON file cannot show: shapes, ranges, empty input, odd types."""
