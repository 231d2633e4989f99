"""Session metadata that outlives the process: ``RE.md`` on disk, ``scan_id`` counting up.

Where: ``<data_dir>/.srash/re-md/`` (:func:`md_dir`), one store per data directory, also
when runs go to a served catalog (``--catalog URL``): the data directory is where this
instrument writes its frames, so scan ids count per instrument data directory. Two data
directories writing into one served catalog each count from 1; ``catalog[scan_id]`` then
returns the latest run with that id (bluesky-tiled-plugins' lookup), and a search by
``scan_id`` lists every one of them.

What: :class:`SessionMetadata`, a :class:`bluesky.utils.PersistentDict` in its on-disk
format (one msgpack file per key, named ``<url-quoted key>#<n>``: bluesky's own
``PersistentDict(path)`` reads it), with its storage rewritten because bluesky's (zict 3's
``File``) is neither safe between processes nor against a kill: it keeps the file names in
memory (a second process's write leaves a stale name, and its next write fails or leaves
two files for one key), and it deletes the old file before writing the new one in place
(a kill in between loses the key or leaves a truncated file). Here:

- every write goes to a temporary file next to the store, is flushed to disk and renamed
  over the key's file (atomic on POSIX file systems): a killed process leaves the old or the
  new value, never a torn one;
- reads and writes hold an exclusive ``fcntl`` lock on ``<data_dir>/.srash/re-md.lock``
  for the few milliseconds of one read or write (released by the kernel when a process
  dies; a lock held longer than ``lock_timeout_s`` is an error, not a hang). POSIX only:
  on a system without ``fcntl`` no lock is taken, and two processes on one data directory
  may then hand out the same scan id. A write re-reads nothing but its own key: other keys
  another process changed are seen at :meth:`SessionMetadata.reload` (the RunEngine reads
  ``RE.md`` from this process's copy);
- ``scan_id`` is allocated by :meth:`SessionMetadata.next_scan_id` (the RunEngine's
  ``scan_id_source``, :func:`scan_id_source`): under the lock it re-reads the stored value,
  adds one and stores it, so two processes scanning into one data directory at once get
  distinct, increasing ids. The RunEngine then assigns ``md["scan_id"]`` the same number;
  that assignment is not written again (the store may already hold a later process's id).

A damaged store (a file that is not msgpack, an unreadable or read-only directory) is a
:class:`SessionMetadataError` naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, unquote

from bluesky.utils import PersistentDict

from .errors import SrashError

__all__ = ["SessionMetadata", "SessionMetadataError", "md_dir", "open_session_md",
           "scan_id_source"]

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no inter-process lock (module doc)
    fcntl = None  # type: ignore[assignment]

MD_DIR = Path(".srash") / "re-md"


class SessionMetadataError(SrashError):
    """The persistent session metadata cannot be read or written."""


def md_dir(data_dir: str | os.PathLike) -> Path:
    """The store of a data directory: ``<data_dir>/.srash/re-md``."""
    return Path(data_dir) / MD_DIR


class SessionMetadata(PersistentDict):
    """``RE.md`` persisted in ``directory`` with atomic writes under a file lock (module doc).

    Keys are strings; values anything msgpack (with msgpack-numpy) encodes. Like bluesky's
    :class:`~bluesky.utils.PersistentDict`, an item mutated in place (``md["x"]["y"] = 1``)
    is stored at the next assignment of its key or at :meth:`flush`; unlike it, nothing is
    written when the object is garbage collected (a stale copy would overwrite newer
    values of another process).
    """

    def __init__(self, directory: str | os.PathLike, *, lock_timeout_s: float = 30.0):
        # not PersistentDict.__init__: its zict.File storage is what this class replaces
        self._directory = str(directory)
        self._dir = Path(directory)
        self._lock_path = self._dir.with_name(self._dir.name + ".lock")
        self.lock_timeout_s = float(lock_timeout_s)
        self._cache: dict[str, Any] = {}
        self._allocated: int | None = None
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SessionMetadataError(
                f"cannot create the session metadata store {self._dir}: "
                f"{exc.strerror or exc} (pass a writable --data-dir)") from None
        if not os.access(self._dir, os.W_OK | os.X_OK):
            raise SessionMetadataError(
                f"session metadata store {self._dir} is not writable: scan ids could not be "
                "counted; make it writable or pass another --data-dir")
        self.reload()

    # ------------------------------------------------------------------ storage
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive inter-process lock on ``<store>.lock`` (module doc)."""
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise SessionMetadataError(
                f"cannot open the lock file {self._lock_path} of the session metadata: "
                f"{exc.strerror or exc}; make {self._lock_path.parent} writable") from None
        try:
            if fcntl is not None:
                deadline = time.monotonic() + self.lock_timeout_s
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise SessionMetadataError(
                                f"the session metadata {self._dir} stayed locked for "
                                f"{self.lock_timeout_s:g} s ({self._lock_path}); another "
                                "srash process is stuck holding it: end it and retry"
                            ) from None
                        time.sleep(0.005)
            yield
        finally:
            os.close(fd)  # closing releases the lock (so does a killed process's exit)

    def _files(self) -> dict[str, list[str]]:
        """Stored file names per key (more than one only after bluesky's own
        PersistentDict raced with itself)."""
        try:
            names = sorted(os.listdir(self._dir))
        except OSError as exc:
            raise SessionMetadataError(
                f"cannot read the session metadata store {self._dir}: "
                f"{exc.strerror or exc}") from None
        out: dict[str, list[str]] = {}
        for fn in names:
            out.setdefault(unquote(fn.split("#")[0]), []).append(fn)
        return out

    def _read(self, key: str, names: list[str]) -> Any:
        """The value of ``key``: its newest file when there are several."""
        paths = [self._dir / fn for fn in names]
        try:
            path = max(paths, key=lambda p: p.stat().st_mtime_ns)
            data = path.read_bytes()
        except OSError as exc:
            raise SessionMetadataError(
                f"cannot read the session metadata file {paths[0]}: "
                f"{exc.strerror or exc}") from None
        try:
            return self._load(data)
        except Exception as exc:  # noqa: BLE001 - msgpack raises several types
            raise SessionMetadataError(
                f"session metadata file {path} is damaged ({type(exc).__name__}: {exc}); "
                f"delete it to start the key {key!r} afresh (for scan_id: the next scan "
                "counts from 1 unless you set RE.md['scan_id'])") from None

    def _write(self, key: str, value: Any) -> None:
        """Store ``key`` atomically (temporary file, fsync, rename); caller holds the lock."""
        if not isinstance(key, str):
            raise TypeError(f"session metadata keys are strings, not {type(key).__name__}")
        data = self._dump(value)
        names = self._files().get(key, [])
        target = self._dir / (names[0] if names else f"{quote(key, safe='')}#0")
        try:
            fd, tmp = tempfile.mkstemp(prefix=".re-md-", dir=self._dir.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            for fn in names[1:]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._dir / fn)
        except OSError as exc:
            raise SessionMetadataError(
                f"cannot write the session metadata file {target}: {exc.strerror or exc}; "
                f"make {self._dir} writable") from None

    # ------------------------------------------------------------------ mapping
    def __setitem__(self, key: str, value: Any) -> None:
        if key == "scan_id" and self._allocated is not None and value == self._allocated:
            self._cache[key] = value  # next_scan_id stored it (module doc)
            return
        with self._locked():
            self._write(key, value)
        self._cache[key] = value
        if key == "scan_id":
            self._allocated = None

    def __delitem__(self, key: str) -> None:
        del self._cache[key]
        with self._locked():
            for fn in self._files().get(key, []):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._dir / fn)

    def popitem(self) -> tuple[str, Any]:
        key = next(iter(self._cache))
        value = self._cache[key]
        del self[key]
        return key, value

    def flush(self) -> None:
        """Store every key's current value (items mutated in place included), except a
        ``scan_id`` that :meth:`next_scan_id` allocated (the store may hold a later one)."""
        with self._locked():
            for k, v in self._cache.items():
                if not (k == "scan_id" and self._allocated is not None
                        and v == self._allocated):
                    self._write(k, v)

    def reload(self) -> None:
        """Re-read every key from disk, replacing this process's copy."""
        with self._locked():
            self._cache = {k: self._read(k, names) for k, names in self._files().items()}

    def next_scan_id(self) -> int:
        """The next scan id of this data directory: the stored ``scan_id`` (as another
        process may have left it) + 1, stored before it is returned."""
        with self._locked():
            names = self._files().get("scan_id")
            last = self._read("scan_id", names) if names else 0
            try:
                new = int(last) + 1
            except (TypeError, ValueError):
                raise SessionMetadataError(
                    f"stored scan_id {last!r} in {self._dir} is not a number; set "
                    "RE.md['scan_id'] to the last scan id, or delete its file") from None
            self._write("scan_id", new)
        self._cache["scan_id"] = new
        self._allocated = new
        return new

    def __repr__(self) -> str:
        return f"<SessionMetadata {self._directory}: {dict(self)!r}>"


def scan_id_source(md: Any) -> int:
    """The RunEngine's ``scan_id_source``: :meth:`SessionMetadata.next_scan_id` when
    ``md`` is one, else bluesky's default (``md["scan_id"] + 1``)."""
    if isinstance(md, SessionMetadata):
        return md.next_scan_id()
    return int(md.get("scan_id", 0)) + 1


def open_session_md(data_dir: str | os.PathLike) -> SessionMetadata:
    """The session metadata store of ``data_dir`` (created when missing)."""
    return SessionMetadata(md_dir(data_dir))
