"""What state a run in the catalog is in, and whether its events can be read.

One rule for every reader (show, export, classify, quantify, train, evaluate, segment) and for
``srash catalog repair``:

- ``complete``: a stop document with ``exit_status "success"``;
- ``aborted`` / ``failed``: a stop document with ``"abort"`` / ``"fail"`` (Ctrl-C, SIGTERM, a
  device fault): the finished tiles are in the catalog and readable; the unfinished tile is not;
- ``repaired``: a run whose acquiring process died (SIGKILL, power loss) and that
  ``srash catalog repair`` completed from the run's journal; its stop document's reason starts
  with :data:`REPAIRED_PREFIX` and says how many tiles were recovered;
- ``open``: no stop document. Either the scan is still running, or its process was killed;
  the embedded writer keeps events until the stop document, so nothing of it is readable until
  ``srash catalog repair`` replays its journal.

Readers iterating over many runs skip ``open`` runs with a warning naming the run; a command
addressing an ``open`` run directly raises :class:`IncompleteRunError`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ml.common.errors import MLError

__all__ = ["IncompleteRunError", "RunError", "REPAIRED_PREFIX", "RunState", "require_readable",
           "run_state"]

REPAIRED_PREFIX = "incomplete: recovered by srash catalog repair"


class RunError(MLError):
    """A stored run cannot be read as asked (no stop document, no such stream, nothing
    usable); the message says which run and what to do."""


class IncompleteRunError(RunError):
    """A run that has no stop document (killed, or still running) was addressed directly."""


@dataclasses.dataclass(frozen=True)
class RunState:
    """``kind`` (complete / aborted / failed / repaired / open), the stop ``reason``, and
    ``readable``: whether the run's events can be read from the catalog."""

    uid: str | None
    kind: str
    reason: str | None

    @property
    def readable(self) -> bool:
        return self.kind != "open"

    @property
    def incomplete(self) -> bool:
        """True unless every planned point was acquired (``complete``)."""
        return self.kind != "complete"


def run_state(run_or_metadata: Any) -> RunState:
    """The :class:`RunState` of a tiled bluesky run (or of its ``metadata`` mapping)."""
    md: Mapping[str, Any] = getattr(run_or_metadata, "metadata", run_or_metadata)
    start = md.get("start") or {}
    stop = md.get("stop") or {}
    uid = start.get("uid")
    if not stop:
        return RunState(uid, "open", None)
    reason = stop.get("reason") or None
    if reason and reason.startswith(REPAIRED_PREFIX):
        return RunState(uid, "repaired", reason)
    status = stop.get("exit_status")
    kind = {"success": "complete", "abort": "aborted", "fail": "failed"}.get(status, "failed")
    return RunState(uid, kind, reason)


def require_readable(run: Any) -> RunState:
    """The run's state; :class:`IncompleteRunError` (with the repair hint) when it is open."""
    state = run_state(run)
    if not state.readable:
        raise IncompleteRunError(
            f"run {state.uid} has no stop document: its scan is still running or its process "
            "was killed, and its tiles are not in the catalog yet; run `srash catalog repair` "
            "to recover the finished tiles (or wait for the scan to end)")
    return state
