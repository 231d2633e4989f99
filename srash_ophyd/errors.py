"""The error base of the ``srash_ophyd`` package.

Every error the instrument layer raises for bad input or a broken environment is a
:class:`SrashError` (catalog, journal, transport, command line); the command line catches
it, with the bases of the other packages (``simulators.errors.SimulatorError``,
``plans.errors.PlanError``, ``ml.common.errors.MLError``) and ``OSError``, and prints its
message. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["SrashError"]


class SrashError(Exception):
    """Bad input or environment for the instrument layer; the message says what is wrong
    and what is allowed."""
