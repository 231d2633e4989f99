"""The run journal: every document of a run on disk as it happens, so SIGKILL loses nothing.

The catalog writer (tiled's ``TiledWriter`` with default batching) keeps a run's events in
memory and writes them at the stop document: flat cost per tile, but a process killed with
SIGKILL (or a power loss) leaves a run with only its start document, and the frame files on
disk referenced by nothing. Writing every document through to the catalog instead
(``batch_size=1``) costs time that grows with the run length (see docs/benchmarks.md).

So :class:`JournaledWriter` sits in front of the catalog writer: it appends each document as
one JSON line to ``<data_dir>/journal/<run uid>.jsonl`` and forces it to disk (``fsync``)
after each event, i.e. after each frame, whose file the detector has already forced to disk
before the event exists. Then it hands the document to the catalog writer. When the catalog
writer has taken the stop document, the journal is deleted. A journal left behind is a run
whose process died: ``srash catalog repair`` (:mod:`srash_ophyd.repair`) replays it.

While a run is being written its journal is locked (``flock``); the lock dies with the
process, so repair can tell a killed scan from a running one.

File format: one ``[name, document]`` JSON array per line, in emission order. A line cut by
the kill (no newline, invalid JSON) ends the journal; everything before it is whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import SrashError

__all__ = ["JOURNAL_DIR", "JournalError", "JournaledWriter", "journal_dir", "read_journal"]

JOURNAL_DIR = "journal"
_SYNC_AFTER = frozenset({"event", "event_page", "stop"})


class JournalError(SrashError, OSError):
    """The journal cannot be written (disk full, permissions...)."""


def journal_dir(data_dir: str | os.PathLike) -> Path:
    """``<data_dir>/journal``: where the runs' journals live."""
    return Path(data_dir) / JOURNAL_DIR


def _json_default(obj: Any) -> Any:
    tolist = getattr(obj, "tolist", None)  # numpy scalars and arrays
    if tolist is not None:
        return tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _lock(fh: Any) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, repair trusts the user
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


class _RunJournal:
    def __init__(self, path: Path, sync: bool) -> None:
        self.path = path
        self.sync = sync
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "x", encoding="utf-8")  # noqa: SIM115 - open for the run
        _lock(self.fh)

    def append(self, name: str, doc: dict) -> None:
        self.fh.write(json.dumps([name, doc], default=_json_default,
                                 separators=(",", ":")) + "\n")
        if self.sync and name in _SYNC_AFTER:
            self.fh.flush()
            os.fsync(self.fh.fileno())

    def close(self, remove: bool) -> None:
        self.fh.close()
        if remove:
            self.path.unlink(missing_ok=True)


class JournaledWriter:
    """Document callback: journal each document, then pass it to ``writer``.

    Parameters
    ----------
    writer : callable
        The catalog writer (``TiledWriter``).
    directory : path
        Journal folder (``<data_dir>/journal``).
    sync : bool
        ``fsync`` after every event and at stop (True). False keeps the journal in the page
        cache: it survives SIGKILL, not a power loss.
    """

    def __init__(self, writer: Callable[[str, dict], Any], directory: str | os.PathLike, *,
                 sync: bool = True) -> None:
        self.writer = writer
        self.directory = Path(directory)
        self.sync = sync
        self._runs: dict[str, _RunJournal] = {}
        self._run_of: dict[str, str] = {}  # descriptor / stream resource uid -> run uid
        self._current: str | None = None

    def _journal_for(self, name: str, doc: dict) -> _RunJournal | None:
        if name == "start":
            run = doc["uid"]
            try:
                self._runs[run] = _RunJournal(self.directory / f"{run}.jsonl", self.sync)
            except OSError as exc:
                raise JournalError(f"cannot write the run journal in {self.directory}: "
                                   f"{exc}") from exc
            self._current = run
            return self._runs[run]
        run = doc.get("run_start")
        if run is None:
            ref = doc.get("descriptor") or doc.get("stream_resource")
            run = self._run_of.get(ref, self._current) if ref else self._current
        if name in ("descriptor", "stream_resource"):
            self._run_of[doc["uid"]] = run
        return self._runs.get(run) if run is not None else None

    def __call__(self, name: str, doc: dict) -> Any:
        journal = self._journal_for(name, doc)
        failed: OSError | None = None
        if journal is not None:
            try:
                journal.append(name, doc)
            except OSError as exc:  # e.g. disk full: the catalog still gets the document
                failed = exc
        try:
            result = self.writer(name, doc)
        except BaseException:
            if name == "start" and journal is not None:  # the catalog refused the run
                self._runs.pop(doc["uid"], None)
                journal.close(remove=True)
            raise
        if name == "stop" and journal is not None:
            # the catalog has the whole run now: the journal is no longer needed
            run = doc["run_start"]
            self._runs.pop(run, None)
            journal.close(remove=True)
            self._run_of = {k: v for k, v in self._run_of.items() if v != run}
            if self._current == run:
                self._current = None
        elif failed is not None:  # fail the run: a kill now would lose its tiles
            raise JournalError(f"cannot write the run journal {journal.path}: {failed}; the "
                               "run is stopped so that no tile goes unrecorded") from failed
        return result

    def pending(self, run_uid: str) -> bool:
        """True when ``run_uid``'s journal is still on disk: the run is not whole in the
        catalog (killed, or the catalog failed at its stop); ``srash catalog repair``."""
        return (self.directory / f"{run_uid}.jsonl").exists()

    def close(self) -> None:
        """Close (and keep) the journals of runs that never stopped."""
        for journal in self._runs.values():
            journal.close(remove=False)
        self._runs.clear()


def read_journal(path: str | os.PathLike) -> tuple[list[tuple[str, dict]], str | None]:
    """The whole documents of a journal, and a note when its end was cut (None if not)."""
    docs: list[tuple[str, dict]] = []
    note = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                note = f"line {lineno} was cut by the kill; ignored"
                break
            try:
                name, doc = json.loads(line)
            except (ValueError, TypeError):
                note = f"line {lineno} is not a journal record; it and the rest ignored"
                break
            if not isinstance(name, str) or not isinstance(doc, dict):
                note = f"line {lineno} is not a journal record; it and the rest ignored"
                break
            docs.append((name, doc))
    return docs, note


def iter_journals(data_dir: str | os.PathLike) -> Iterator[Path]:
    """The journal files of ``data_dir``, oldest first."""
    d = journal_dir(data_dir)
    if not d.is_dir():
        return iter(())
    return iter(sorted(d.glob("*.jsonl"), key=lambda p: p.stat().st_mtime))
