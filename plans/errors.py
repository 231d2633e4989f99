"""The error base of the ``plans`` package.

A plan given arguments it cannot run with raises a :class:`PlanError` before any document
is emitted; it is a :class:`ValueError`, so callers catching bad values keep working.
"""

from __future__ import annotations

__all__ = ["PlanError"]


class PlanError(ValueError):
    """Plan arguments that cannot be used; the message names the value and what is allowed."""
