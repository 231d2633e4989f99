"""What the catalog readers do with a broken run or a bad frame file.

One policy for every reader (``export``, ``classify``, ``quantify``, ``train``, ``evaluate``,
``segment``, ``train-seg``, ``evaluate-seg``):

- a run without a stop document (``open``, :mod:`ml.io.runstate`: a killed scan whose
  events are not in the catalog) is skipped by readers of many runs, with one warning line
  naming its uid and sample; addressed directly it is an
  :class:`~ml.io.runstate.IncompleteRunError`;
- runs stopped early (``aborted`` / ``failed`` / ``repaired``) are used for the fields they
  hold and listed as incomplete in the readers' summaries;
- a frame file that cannot be read (missing, truncated, not a TIFF, of another shape than the
  stream's descriptor says) is a :class:`FrameError` naming the run, the field and the file;
  by default one warning line per bad frame and the field (or stack) is skipped; with
  ``--strict`` (:class:`ReadFaults` ``strict=True``) the first bad frame or open run stops
  the command (``srash: error: ...``, exit status 2).

Frames are read one event at a time (``node[i]``: one request, one file) exactly as before;
the file's path is looked up in the stream's data source only when a read fails, and the
reason is then diagnosed from the file itself when it is visible from this machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

from ml.common.errors import MLError
from ml.io.runstate import require_readable, run_state

__all__ = ["FrameError", "FrameReader", "NotLocalError", "ReadFaults",
           "diagnose_frame", "file_uri", "frame_paths", "read_frame", "read_frame_file",
           "run_label", "uri_path"]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


class FrameError(MLError):
    """A frame file of a run cannot be read. ``uid``, ``field`` (the plan's field index, or
    a band / event label), ``event`` (index in the stream), ``path`` (None when unknown) and
    ``why`` say which and why."""

    def __init__(self, uid: str | None, field: Any, path: str | None, why: str, *,
                 event: int | None = None, what: str = "field") -> None:
        self.uid, self.field, self.path, self.why = uid, field, path, why
        self.event, self.what = event, what
        self.reported = False  # True once a ReadFaults has warned about it
        where = path if path else f"of event {event} (path unknown)"
        super().__init__(f"run {uid}, {what} {field}: frame file {where} unreadable ({why})")

    def as_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, self.what: _plain(self.field), "event": self.event,
                "path": self.path, "why": self.why}


class NotLocalError(MLError):
    """A frame URI that is not a local ``file://`` URI (e.g. on another machine's server)."""


def file_uri(path: str | os.PathLike) -> str:
    """The ``file://localhost/...`` URI of an absolute ``path``, written the way tiled reads
    it back: tiled takes the URI's path verbatim (no percent-decoding), so the path is not
    percent-encoded either (``Path.as_uri()`` would turn a space into ``%20``, which tiled then
    refuses as outside its readable storage)."""
    return "file://localhost" + str(Path(path).absolute())


def uri_path(uri: str) -> Path:
    """The local path of a ``file://`` URI written by :func:`file_uri` (as tiled reads it:
    verbatim). :class:`NotLocalError` for other schemes."""
    from urllib.parse import urlparse

    u = urlparse(uri)
    if u.scheme not in ("file", ""):
        raise NotLocalError(f"URI {uri!r} is not a local file")
    return Path(u.path)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def run_label(start: dict[str, Any]) -> str:
    """``<uid> (sample <id>)`` of a start document, for messages."""
    sid = start.get("sample_id")
    return f"{start.get('uid')}" + (f" (sample {sid})" if sid else "")


class ReadFaults:
    """The reader policy of one command (module doc): warn and go on, or stop (``strict``).

    ``warn(line)`` prints a warning (default: ``srash: warning: <line>`` on stderr). What
    was skipped is kept in :attr:`skipped_runs` and :attr:`bad_frames`; runs that stopped
    early but are used are in :attr:`incomplete_runs`.
    """

    def __init__(self, strict: bool = False, *,
                 warn: Callable[[str], Any] | None = None) -> None:
        self.strict = bool(strict)
        self._warn = warn
        self.skipped_runs: list[dict[str, Any]] = []
        self.bad_frames: list[dict[str, Any]] = []
        self.incomplete_runs: list[dict[str, Any]] = []

    def warn(self, line: str) -> None:
        if self._warn is not None:
            self._warn(line)
        else:
            print(f"srash: warning: {line}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ runs
    def usable(self, run: Any) -> bool:
        """True when ``run``'s events can be read; an ``open`` run is skipped with a warning
        (``strict``: :class:`~ml.io.runstate.IncompleteRunError`). Early-stopped runs
        are noted as incomplete and used."""
        state = run_state(run)
        start = dict(getattr(run, "metadata", run).get("start") or {})
        if not state.readable:
            if self.strict:
                require_readable(run)
            self.skipped_runs.append({"uid": state.uid, "sample_id": start.get("sample_id"),
                                      "state": state.kind})
            self.warn(f"run {run_label(start)} has no stop document (scan killed or still "
                      "running): skipped; `srash catalog repair` recovers its finished tiles")
            return False
        if state.incomplete and not any(r["uid"] == state.uid for r in self.incomplete_runs):
            self.incomplete_runs.append({"uid": state.uid, "sample_id": start.get("sample_id"),
                                         "state": state.kind, "reason": state.reason})
        return True

    def runs(self, runs: Iterable[Any]) -> list[Any]:
        """The usable runs of ``runs`` (:meth:`usable`), in order."""
        return [r for r in runs if self.usable(r)]

    # ------------------------------------------------------------------ frames
    def frame(self, err: FrameError, *, action: str = "field skipped") -> None:
        """A bad frame: raise ``err`` when strict, else warn (one line) and record it."""
        if self.strict:
            raise err
        self.bad_frames.append(err.as_dict())
        self.warn(f"{err}; {action}")
        err.reported = True

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts and lists (for the commands' summaries)."""
        return {"skipped_runs": list(self.skipped_runs), "bad_frames": list(self.bad_frames),
                "incomplete_runs": list(self.incomplete_runs)}


# ---------------------------------------------------------------------------- frame files
def frame_paths(node: Any) -> list[str] | None:
    """Local paths of an external image column's frames, one per event (the data sources'
    ``data_uris`` assets in order), or None when they do not map one to one."""
    try:
        sources = node.data_sources() or []
    except Exception:  # a column without external files, or a server that will not say
        return None
    paths: list[str] = []
    for src in sources:
        assets = [a for a in (getattr(src, "assets", None) or [])
                  if getattr(a, "parameter", None) in ("data_uris", "data_uri")]
        assets.sort(key=lambda a: getattr(a, "num", None) or 0)
        paths += [_uri_path(a.data_uri) for a in assets]
    shape = getattr(node, "shape", None)
    if not paths or (shape is not None and len(paths) != shape[0]):
        return None
    return paths


def _uri_path(uri: str) -> str:
    """The path of a ``file://`` URI (:func:`uri_path`); other URIs as they are."""
    try:
        return str(uri_path(uri))
    except NotLocalError:
        return uri


def diagnose_frame(path: str | None, shape: Sequence[int] | None = None,
                   dtype: str | None = None) -> str | None:
    """Why the frame file ``path`` cannot be a ``shape`` ``dtype`` frame, from the file
    itself (missing, empty, not a TIFF, truncated, another shape); None when it looks fine
    or cannot be inspected from here."""
    if not path:
        return None
    p = Path(path)
    try:
        if not p.exists():
            return "file missing"
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        return f"cannot be opened: {exc.strerror or exc}"
    if size == 0:
        return "empty file"
    if head not in _TIFF_MAGIC:
        return f"not a TIFF file (starts with {head!r})"
    need, dname = 0, ""
    if shape is not None and dtype:
        try:
            dt = np.dtype(dtype)
            need, dname = int(np.prod(shape)) * dt.itemsize, f" {dt.name}"
        except TypeError:
            pass
    truncated = (f"truncated: {size} bytes, a {tuple(shape or ())}{dname} frame takes at "
                 f"least {need}")
    try:
        import tifffile

        with _quiet_tifffile() as problems, tifffile.TiffFile(p) as tif:
            got = tuple(tif.series[0].shape)
            tif.asarray()
    except Exception as exc:  # tifffile raises many kinds for damaged files
        return truncated if size < need else f"not a readable TIFF: {_one_line(exc)}"
    if problems:  # tifffile read what it could of a damaged file
        return truncated if size < need else f"damaged TIFF: {_one_line(problems[0])}"
    if shape is not None and tuple(d for d in got if d != 1) != tuple(
            d for d in shape if d != 1):
        return f"holds a {got} image, the stream's descriptor says {tuple(shape)}"
    return truncated if size < need else None


def read_frame_file(path: str | os.PathLike, *, uid: str | None, field: Any,
                    shape: Sequence[int] | None = None, dtype: str | None = None,
                    event: int | None = None) -> NDArray:
    """The ``(channel, y, x)`` data of a detector frame file read directly (a live or
    replayed document stream names the file); :class:`FrameError` naming the run, the
    field and the file when it is missing, damaged, not a TIFF or not of the stream's
    ``shape`` (the descriptor's), with the reason :func:`diagnose_frame` finds."""
    from ml.io.ometiff import OMETiffError, read_ome_tiff

    why = None
    try:
        with _quiet_tifffile() as problems:
            data = read_ome_tiff(path).data
        if problems:
            why = f"damaged TIFF: {_one_line(problems[0])}"
        elif shape is not None and tuple(d for d in data.shape if d != 1) != tuple(
                d for d in shape if d != 1):
            why = f"holds a {tuple(data.shape)} image, the stream's descriptor says " \
                  f"{tuple(shape)}"
    except (OMETiffError, OSError) as exc:
        why = diagnose_frame(str(path), shape, dtype) or _one_line(exc)
    if why is not None:
        raise FrameError(uid, field, str(path), why, event=event)
    return data


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _quiet_tifffile() -> Iterator[list[str]]:
    """Collect tifffile's own warnings about damaged files instead of printing them (the
    readers report each bad frame once); yields the list of messages."""
    lg = logging.getLogger("tifffile")
    handler = _Collect()
    old = lg.level, lg.propagate
    lg.addHandler(handler)
    lg.setLevel(logging.WARNING)
    lg.propagate = False
    try:
        yield handler.messages
    finally:
        lg.removeHandler(handler)
        lg.setLevel(old[0])
        lg.propagate = old[1]


def _from_server(exc: BaseException) -> bool:
    """True for an HTTP error response (a remote server's own reason), False for an error
    raised in this process (the embedded catalog reads the file here)."""
    names = {f"{c.__module__}.{c.__name__}" for c in type(exc).__mro__}
    return bool(names & {"tiled.client.utils.ClientError", "httpx.HTTPStatusError"})


def _is_catalog_failure(exc: BaseException) -> bool:
    """True for faults of the catalog connection or database (not of one frame file):
    those are not skipped field by field."""
    names = {f"{c.__module__}.{c.__name__}" for c in type(exc).__mro__}
    return any(n.startswith(("httpx.TransportError", "httpx.TimeoutException",
                             "sqlalchemy.exc.DBAPIError", "sqlalchemy.exc.OperationalError"))
               for n in names)


class FrameReader:
    """Reads events of one run's external image column, one request (one file) per call,
    turning a failure into a :class:`FrameError`."""

    def __init__(self, node: Any, uid: str | None, shape: Sequence[int] | None = None,
                 dtype: str | None = None) -> None:
        self.node, self.uid = node, uid
        self.shape = tuple(shape) if shape is not None else None
        self.dtype = dtype
        self._paths: list[str] | None | bool = False  # False: not looked up yet

    def path(self, i: int) -> str | None:
        if self._paths is False:
            self._paths = frame_paths(self.node)
        paths = self._paths
        return paths[i] if isinstance(paths, list) and 0 <= i < len(paths) else None

    def __call__(self, i: int, field: Any = None, *, what: str = "field") -> NDArray:
        """Frame of event ``i`` (``field``: the label in messages)."""
        field = i if field is None else field
        try:
            with _quiet_tifffile():
                a = np.asarray(self.node[i])
        except Exception as exc:
            if _is_catalog_failure(exc):
                raise
            raise self._error(i, field, what, exc) from None
        if self.shape is not None and a.shape != self.shape:
            raise self._error(i, field, what, None, got=a.shape)
        return a

    def _error(self, i: int, field: Any, what: str, exc: BaseException | None, *,
               got: tuple | None = None) -> FrameError:
        path = self.path(i)
        if got is not None:  # what the catalog served is authoritative
            why: str | None = f"holds a {got} image, the stream's descriptor says {self.shape}"
        elif exc is not None and _from_server(exc) and not (path and Path(path).exists()):
            why = None  # a remote server's file, not visible here: its reason is all we have
        else:
            why = diagnose_frame(path, self.shape, self.dtype)
        return FrameError(self.uid, field, path, why or _server_reason(exc), event=i,
                          what=what)


def read_frame(node: Any, i: int, *, uid: str | None, field: Any = None,
               shape: Sequence[int] | None = None, dtype: str | None = None) -> NDArray:
    """One frame (event ``i``) of an external image column; :class:`FrameError` (naming the
    run, field and file) when it cannot be read."""
    return FrameReader(node, uid, shape, dtype)(i, field)


def _server_reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown"
    text = _one_line(exc)
    # tiled's ClientError ends with the request URL: not useful to a user
    head, _, tail = text.rpartition(" http")
    return head if head and "://" in "http" + tail else text
