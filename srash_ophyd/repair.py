"""``srash catalog repair``: turn runs of killed scans into readable runs marked incomplete.

A scan killed with SIGKILL (or a power loss, or a crash of the writer) leaves

- its journal ``<data_dir>/journal/<uid>.jsonl`` (:mod:`srash_ophyd.journal`): every document
  up to the kill, each frame's file already on disk before its event was journaled;
- in the catalog, a run with a start document (and descriptors) but no events and no stop
  document (an ``open`` run, :mod:`ml.io.runstate`).

For every journal whose run has no stop document in the catalog (and whose journal is not
locked by a scan still running), :func:`repair` keeps the longest whole prefix of the
documents whose frame files exist and open as TIFF, deletes the partial run from the catalog
(its frame files are external: they stay), writes the kept documents again through the
catalog writer with the same run uid, and closes the run with a stop document:
``exit_status "abort"``, a reason starting with
:data:`~ml.io.runstate.REPAIRED_PREFIX` that says how many frames and fields were
recovered, and the real ``num_events``. The journal is then deleted.

What it cannot recover is reported, never guessed: an ``open`` run without a journal (its
documents were never journaled, e.g. written by an older version; its frame folders are on
disk but nothing says which events they belong to), a journal whose start document is
missing, frames after a missing or damaged frame file.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from ml.io.runstate import REPAIRED_PREFIX, run_state

from .catalog import CatalogError, file_uri, make_writer, uri_path
from .journal import iter_journals, journal_dir, read_journal

__all__ = ["RepairResult", "repair"]


@dataclasses.dataclass
class RepairResult:
    """What :func:`repair` did with one run: ``action`` is ``repaired``, ``would-repair``
    (dry run), ``stale-journal`` (the catalog has the whole run; journal removed),
    ``running`` (journal locked by a live scan; left alone) or ``unrecoverable``."""

    uid: str | None
    action: str
    frames: int = 0
    fields: int = 0
    dropped_frames: int = 0
    journal: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _is_locked(path: Path) -> bool:
    """True when a running scan holds the journal's lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return False
    with open(path, "rb") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return False


def _file_of(resource: dict, index: int) -> Path:
    template = (resource.get("parameters") or {}).get("template", "{:d}")
    return uri_path(resource["uri"]) / template.format(index)


def _frame_problem(path: Path, shape: list | None) -> str | None:
    """None when ``path`` is a readable TIFF of the described per-event ``shape``."""
    import tifffile

    if not path.is_file():
        return "missing"
    try:
        with tifffile.TiffFile(path) as tif:
            got = list(tif.series[0].shape)
    except Exception as exc:  # noqa: BLE001 - any parse failure means a damaged file
        return f"not a readable TIFF ({type(exc).__name__}: {exc})"
    if shape and [int(n) for n in got] != [int(n) for n in shape]:
        return f"shape {got}, the run's descriptor says {list(shape)}"
    return None


def _keep_prefix(docs: list[tuple[str, dict]], notes: list[str]) -> tuple[
        list[tuple[str, dict]], int]:
    """The documents up to (not including) the first frame whose file is bad, and the
    number of frames dropped after it."""
    resources: dict[str, dict] = {}
    shapes: dict[str, list] = {}  # data_key -> per-event shape from the descriptors
    kept: list[tuple[str, dict]] = []
    cut_at: str | None = None
    dropped = 0
    for name, doc in docs:
        if name == "start":
            kept.append((name, doc))
            continue
        if cut_at is not None:
            dropped += name == "stream_datum"
            continue
        if name == "descriptor":
            for key, dk in (doc.get("data_keys") or {}).items():
                if dk.get("external"):
                    shapes[key] = dk.get("shape")
        elif name == "stream_resource":
            resources[doc["uid"]] = doc
        elif name == "stream_datum":
            res = resources.get(doc["stream_resource"])
            if res is None:
                cut_at = f"stream datum {doc.get('uid')} names an unknown stream resource"
            else:
                idx = doc.get("indices") or {}
                for i in range(int(idx.get("start", 0)), int(idx.get("stop", 0))):
                    path = _file_of(res, i)
                    problem = _frame_problem(path, shapes.get(res.get("data_key")))
                    if problem:
                        cut_at = f"frame file {path} {problem}"
                        break
            if cut_at is not None:
                dropped += 1
                notes.append(f"{cut_at}: it and every later frame not recovered")
                continue
        elif name == "stop":
            continue  # a journal with a stop is handled before (stale)
        kept.append((name, doc))
    # events that referenced the cut datum come after it and were dropped; drop trailing
    # asset documents without events so the run's arrays match its events
    while kept and kept[-1][0] in ("stream_datum", "stream_resource", "datum", "resource"):
        kept.pop()
    return kept, dropped


def _summarise(kept: list[tuple[str, dict]]) -> tuple[dict[str, int], int, int, float]:
    streams: dict[str, str] = {}
    counts: dict[str, int] = {}
    fields: set[Any] = set()
    last = 0.0
    for name, doc in kept:
        last = max(last, float(doc.get("time") or 0.0))
        if name == "descriptor":
            streams[doc["uid"]] = doc.get("name", "primary")
            counts.setdefault(doc.get("name", "primary"), 0)
        elif name == "event":
            stream = streams.get(doc["descriptor"], "primary")
            counts[stream] = counts.get(stream, 0) + 1
            data = doc.get("data") or {}
            marker = next((v for k, v in data.items() if k.endswith("field_index")), None)
            if stream == "primary" and marker is not None:
                fields.add(marker)
        elif name == "event_page":
            stream = streams.get(doc["descriptor"], "primary")
            counts[stream] = counts.get(stream, 0) + len(doc.get("seq_num") or ())
    frames = counts.get("primary", 0)
    return counts, frames, len(fields), last


def _replay(client: Any, kept: list[tuple[str, dict]], stop: dict) -> None:
    writer = make_writer(client)
    for name, doc in kept:
        writer(name, doc)
    writer("stop", stop)


def _relocate(docs: list[tuple[str, dict]], frames: Path) -> list[tuple[str, dict]]:
    """Stream resources whose folder is gone but whose namesake lies in ``frames`` (the data
    directory was moved or copied since the scan) point at ``frames`` instead."""
    out = []
    for name, doc in docs:
        if name == "stream_resource":
            old = _file_of(doc, 0).parent
            new = frames / old.name
            if not old.is_dir() and new.is_dir():
                doc = {**doc, "uri": file_uri(new) + "/"}
        out.append((name, doc))
    return out


def _repair_one(client: Any, path: Path, *, dry_run: bool, frames: Path) -> RepairResult:
    docs, cut_note = read_journal(path)
    docs = _relocate(docs, frames)
    result = RepairResult(uid=None, action="unrecoverable", journal=str(path))
    if cut_note:
        result.notes.append(f"journal {path.name}: {cut_note}")
    if not docs or docs[0][0] != "start":
        result.notes.append(f"journal {path} has no start document: nothing to replay; "
                            "delete it by hand")
        return result
    start = docs[0][1]
    uid = result.uid = start["uid"]
    try:
        existing = client[uid]
    except KeyError:
        existing = None
    if existing is not None and run_state(existing).kind != "open":
        result.action = "stale-journal"
        result.notes.append("the catalog already has the whole run (the process died after "
                            "writing it); journal removed")
        if not dry_run:
            path.unlink(missing_ok=True)
        return result
    ended = next((doc for name, doc in docs if name == "stop"), None)
    if ended is not None:
        result.notes.append("the journal has a stop document that the catalog lacks: the "
                            "catalog writer failed at the end of the run")
    kept, dropped = _keep_prefix(docs, result.notes)
    counts, frames, fields, last = _summarise(kept)
    result.frames, result.fields, result.dropped_frames = frames, fields, dropped
    planned = start.get("num_points")
    of = f" of {planned}" if isinstance(planned, int) else ""
    how = ("the acquiring process died" if ended is None else
           "the catalog could not take the run at its end (the scan had ended with "
           f"{ended.get('exit_status')!r}{': ' + ended['reason'] if ended.get('reason') else ''})")
    reason = (f"{REPAIRED_PREFIX}: {how}; {frames}{of} frames ({fields} fields) recovered "
              "from its journal"
              + (f", {dropped} later frames lost (damaged or missing files)" if dropped else ""))
    if dry_run:
        result.action = "would-repair"
        return result
    if existing is not None:
        existing.delete(recursive=True)  # frame files are external: they stay on disk
    stop = {"uid": str(uuid.uuid4()), "run_start": uid, "time": last or start["time"],
            "exit_status": "abort", "reason": reason, "num_events": counts}
    _replay(client, kept, stop)
    path.unlink(missing_ok=True)
    result.action = "repaired"
    return result


def repair(client: Any, data_dir: str | os.PathLike, *, dry_run: bool = False,
           on_result: Callable[[RepairResult], Any] | None = None) -> list[RepairResult]:
    """Repair every interrupted run of ``data_dir``'s journals into ``client`` (module doc);
    also report ``open`` runs of the catalog that have no journal. ``dry_run``: change
    nothing, say what would be done."""
    results: list[RepairResult] = []
    journaled: set[str] = set()

    def emit(r: RepairResult) -> None:
        results.append(r)
        if on_result is not None:
            on_result(r)

    for path in iter_journals(data_dir):
        journaled.add(path.stem)
        if _is_locked(path):
            emit(RepairResult(uid=path.stem, action="running", journal=str(path), notes=[
                "a scan is still writing this run; left alone"]))
            continue
        try:
            emit(_repair_one(client, path, dry_run=dry_run,
                             frames=Path(data_dir) / "frames"))
        except CatalogError:
            raise
        except Exception as exc:  # noqa: BLE001 - one run's failure must not stop the rest
            emit(RepairResult(uid=path.stem, action="unrecoverable", journal=str(path),
                              notes=[f"replay failed: {type(exc).__name__}: {exc}; the "
                                     "journal is kept"]))
    for uid in _open_runs(client, exclude=journaled):
        emit(RepairResult(uid=uid, action="unrecoverable", notes=[
            f"run has no stop document and no journal in {journal_dir(data_dir)} (scan still "
            "running elsewhere, or written without a journal): its events cannot be "
            "rebuilt"]))
    return results


def _open_runs(client: Any, exclude: Iterable[str]) -> list[str]:
    """uids of runs without a stop document (newest last), except ``exclude``."""
    skip = set(exclude)
    out = []
    for uid, run in client.items():
        if uid not in skip and run_state(run).kind == "open":
            out.append(uid)
    return out
