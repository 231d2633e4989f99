"""The run catalog: an embedded tiled catalog (SQLite + files) or any tiled server.

Layout of the embedded default, one data directory (default ``./srash-data``; ``--data-dir``
or the environment variable ``SRASH_DATA_DIR`` override it)::

    <data_dir>/catalog.db      tiled catalog (run metadata, SQLite)
    <data_dir>/tables.sqlite   tiled table storage (event scalars, SQLite)
    <data_dir>/data/           tiled's own writable storage
    <data_dir>/frames/         the detector's OME-TIFF frames (registered, not copied)

It is served in-process through tiled's ASGI app (no socket, no port), with the
``CatalogOfBlueskyRuns`` root spec so that the client is bluesky-aware (``client[-1]``,
partial uids). Storage paths are per-process configuration: every process opening the
directory passes the same ``readable_storage`` (the frames folder), which
:func:`open_catalog` does.

Reading never creates anything: :func:`open_catalog` without ``create=True`` raises
:class:`CatalogError` when the directory has no catalog. tiled is imported lazily (it costs
~3 s): importing this module is cheap.

Every fault of the catalog itself is a :class:`CatalogError` that names the file and says
what to do: a damaged ``catalog.db`` (checked before tiled opens it), a read-only directory
(writers check up front), a server that is unreachable or wants an API key, a search value
that cannot be sent.

The directory can be moved or copied: tiled stores absolute URIs of ``tables.sqlite`` and of
every frame in ``catalog.db`` (table ``assets``). :func:`open_catalog` finds the directory the
catalog was written at from the stored ``tables.sqlite`` URI and, when it is elsewhere now,
rewrites the stored locations under the old directory to the new one (one transaction on
this copy's ``catalog.db``; the original is not touched) with a notice on stderr.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import re
import sqlite3
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ml.io.frames import file_uri, uri_path  # noqa: F401 (re-exported)

from .display import is_control as _is_control
from .errors import SrashError

if TYPE_CHECKING:  # pragma: no cover
    from bluesky_tiled_plugins import TiledWriter

__all__ = ["CatalogError", "DEFAULT_DATA_DIR", "ENV_DATA_DIR", "MAX_VALUE_CHARS", "ROOT_SPEC",
           "WRITE_SCOPES", "check_criteria", "check_remote_writable", "check_uid_prefix",
           "close_catalog", "file_uri", "frames_dir", "fulltext_terms", "get_run",
           "make_analysis_writer", "make_writer", "open_catalog", "parse_since",
           "prepare_embedded", "resolve_data_dir", "search_runs", "serialization_registry",
           "uri_path"]

DEFAULT_DATA_DIR = "srash-data"
ENV_DATA_DIR = "SRASH_DATA_DIR"
ROOT_SPEC = {"name": "CatalogOfBlueskyRuns", "version": "3.0"}
CATALOG_DB = "catalog.db"
TABLES_DB = "tables.sqlite"
MAX_VALUE_CHARS = 256  # longest metadata value a search accepts (characters)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_UID_PREFIX = re.compile(r"[0-9A-Fa-f-]{5,36}")

# third-party: tiled's in-process Context uses starlette's TestClient over httpx, which
# starlette deprecates; nothing here can change that, and users should not see it.
_HTTPX_WARNING = "Using `httpx` with `starlette.testclient` is deprecated"


class CatalogError(SrashError):
    """The catalog cannot be opened or read (missing, unreachable, unknown run...)."""


_last_db: Path | None = None  # the embedded catalog.db this process opened last


def last_database() -> Path | None:
    """The ``catalog.db`` of the embedded catalog this process opened last (None if none):
    named in messages about database errors that surface later, e.g. while reading."""
    return _last_db


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir``, else ``$SRASH_DATA_DIR``, else ``./srash-data`` (not created)."""
    if data_dir is None:
        data_dir = os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


def frames_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where the detector writes its OME-TIFF frames: ``<data_dir>/frames``."""
    return resolve_data_dir(data_dir) / "frames"


def open_catalog(data_dir: str | os.PathLike | None = None, uri: str | None = None,
                 api_key: str | None = None, create: bool = False,
                 include_routers: list | None = None):
    """A bluesky-aware tiled client on the run catalog.

    Parameters
    ----------
    data_dir : path, optional
        Embedded catalog directory (see module doc); ignored when ``uri`` is given.
    uri : str, optional
        URL of a tiled server (``http://host:8000``, or ``.../api/v1/metadata/<path>``).
    api_key : str, optional
        API key for the server (default: tiled's usual lookup, e.g. ``TILED_API_KEY``).
    create : bool
        Create the embedded catalog if the directory has none (writers only). Without it a
        missing catalog raises :class:`CatalogError`.
    include_routers : list, optional
        Extra server routers for the embedded app (tests pass bluesky-tiled-plugins'
        validator router so that ``run.validate()`` works).

    Close the in-process server with :func:`close_catalog` when done. Raises
    :class:`CatalogError` with a hint for a missing, damaged, unreachable or (with ``create``)
    read-only catalog; a moved or copied data directory is re-pointed first (module doc).
    """
    if uri is not None:
        client = _open_remote(uri, api_key)
        if create:
            try:
                check_remote_writable(client, uri)
            except BaseException:
                _close_context(client.context)
                raise
        return client
    emb = prepare_embedded(data_dir, create=create)
    root, db, exists, stored_root = emb.root, emb.db, emb.existed, emb.stored_root
    readable = [str(root / "frames")] + [str(p) for p in emb.extra_readable]
    import sqlalchemy.exc

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_HTTPX_WARNING)
        from tiled.catalog import from_uri
        from tiled.client import Context, from_context
        from tiled.server.app import build_app

        # the in-process server announces "Tiled version ..." at INFO on every start
        logging.getLogger("tiled.server.app").setLevel(logging.WARNING)
        try:
            adapter = from_uri(
                f"sqlite:///{db}",
                writable_storage=[str(root / "data"),
                                  f"sqlite:///{stored_root / TABLES_DB}"],
                readable_storage=readable,
                init_if_not_exists=not exists,  # costs ~4 s: only for a new database
                specs=[ROOT_SPEC])
            ctx = Context.from_app(build_app(adapter, include_routers=include_routers or [],
                                             serialization_registry=serialization_registry()))
        except sqlalchemy.exc.DatabaseError as exc:  # OperationalError included
            raise CatalogError(_database_problem(db, exc)) from None
        try:
            return from_context(ctx)
        except sqlalchemy.exc.DatabaseError as exc:
            ctx.close()
            raise CatalogError(_database_problem(db, exc)) from None
        except BaseException:
            ctx.close()
            raise


@dataclass(frozen=True)
class EmbeddedCatalog:
    """An embedded catalog's files, checked by :func:`prepare_embedded`: the data directory
    ``root``, its ``db`` (``catalog.db``), whether it ``existed``, the directory its stored
    URIs name (``stored_root``: ``root`` unless it could not be re-pointed) and the frames
    folders to read besides ``root/frames`` (``extra_readable``)."""

    root: Path
    db: Path
    existed: bool
    stored_root: Path

    @property
    def extra_readable(self) -> list[Path]:
        return [self.stored_root / "frames"] if self.stored_root != self.root else []


def prepare_embedded(data_dir: str | os.PathLike | None, *, create: bool,
                     database: bool = True) -> EmbeddedCatalog:
    """Check (and with ``create``, prepare) the embedded catalog of ``data_dir`` before
    tiled opens it, as :func:`open_catalog` and ``srash serve`` do: without ``create`` a
    missing catalog is a :class:`CatalogError`; with it the directory, ``data/`` and
    ``frames/`` are created and must be writable; an existing ``catalog.db`` must be an
    intact SQLite file and is re-pointed when the directory moved (module doc).
    ``database=False``: only the folders (a server whose catalog is elsewhere)."""
    root = resolve_data_dir(data_dir).absolute()
    db = root / CATALOG_DB
    exists = database and db.is_file()
    if database and not exists and not create:
        raise CatalogError(f"no catalog at {_show(root)}; run `srash scan` (or `srash "
                           f"cohort`) first or pass --data-dir (or set {ENV_DATA_DIR})")
    if create:
        _prepare_writable(root)
    stored_root = root
    if database:
        global _last_db
        _last_db = db
    if exists:
        _check_sqlite_file(db)
        stored_root = _relocate(root, db)
    return EmbeddedCatalog(root=root, db=db, existed=exists, stored_root=stored_root)


def _prepare_writable(root: Path) -> None:
    """Create ``root/data`` and ``root/frames``; :class:`CatalogError` unless the directory,
    its catalog files and data folders are writable (checked before anything is acquired)."""
    if root.exists() and not root.is_dir():
        raise CatalogError(f"data directory {_show(root)} is a file, not a directory: pass "
                           "another --data-dir")
    _check_writable(root, [root])
    try:
        for sub in ("data", "frames"):
            (root / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CatalogError(f"cannot create the catalog in {_show(root)}: {exc.strerror or exc} "
                           "(pass a writable --data-dir)") from None
    _check_writable(root, [root / CATALOG_DB, root / TABLES_DB, root / "data",
                           root / "frames"])


def _check_writable(root: Path, paths: Sequence[Path]) -> None:
    for path in paths:
        if path.exists() and not os.access(path, os.W_OK):
            raise CatalogError(
                f"catalog {_show(root)} is read-only: {_show(path)} is not writable; acquire "
                "into another --data-dir, or make it writable")


def _check_sqlite_file(db: Path) -> None:
    """:class:`CatalogError` when ``db`` is not an intact SQLite file (garbage, empty,
    truncated): a cheap header check, before tiled opens it."""
    try:
        size = db.stat().st_size
        with open(db, "rb") as f:
            head = f.read(100)
    except OSError as exc:
        raise CatalogError(f"catalog database {_show(db)} cannot be read: "
                           f"{exc.strerror or exc}") from None
    why = None
    if size == 0:
        why = "it is empty"
    elif len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        why = "it is not an SQLite database"
    else:
        page = int.from_bytes(head[16:18], "big")
        page = 65536 if page == 1 else page
        pages = int.from_bytes(head[28:32], "big")
        valid = head[24:28] == head[92:96]  # the in-header page count is maintained
        if valid and pages and size < page * pages:
            why = f"it is truncated ({size} of {page * pages} bytes)"
    if why:
        raise CatalogError(_damaged(db, why))


def _damaged(db: Path, why: str) -> str:
    return (f"catalog database {_show(db)} is damaged: {why}; restore it from a backup, or "
            "move it aside to start a new catalog there (the frame files under "
            f"{_show(db.parent / 'frames')} are not affected)")


def _database_problem(db: Path, exc: Exception) -> str:
    """The message of a database error raised by tiled/SQLAlchemy on ``db``."""
    orig = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    if "readonly" in orig or "read-only" in orig:
        return (f"catalog {_show(db.parent)} is read-only ({orig}); acquire into another "
                "--data-dir, or make it writable")
    if "locked" in orig:
        return (f"catalog database {_show(db)} is locked by another process ({orig}); "
                "try again when it is done")
    return _damaged(db, orig)


def _relocate(root: Path, db: Path) -> Path:
    """Point the stored locations of a moved/copied data directory at ``root``.

    The directory the catalog was written at is read from the stored ``tables.sqlite`` URI
    (``sqlite://localhost/<dir>/tables.sqlite``). When that is ``root`` (or the same directory
    by another path, e.g. a symlink: then that path is returned and nothing is rewritten)
    nothing changes; otherwise every asset URI under the old directory (``sqlite://``, and
    ``file://`` with or without ``localhost``, plain or percent-encoded) is rewritten to
    ``root`` in one transaction, with a notice on stderr. Returns the directory the stored
    URIs name now.
    """
    try:
        con = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=30.0,
                              isolation_level=None)
    except sqlite3.Error:  # read-only file: look without writing
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30.0,
                                  isolation_level=None)
        except sqlite3.Error as exc:
            raise CatalogError(_database_problem(db, exc)) from None
    try:
        try:
            rows = con.execute("SELECT data_uri FROM assets WHERE substr(data_uri, 1, 7) = "
                               "'sqlite:'").fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # not a tiled catalog: tiled will say so
                return root
            raise CatalogError(_database_problem(db, exc)) from None
        except sqlite3.DatabaseError as exc:
            raise CatalogError(_database_problem(db, exc)) from None
        olds = []
        for (uri,) in rows:
            path = _sqlite_uri_path(uri)
            if path is not None and path.name == TABLES_DB and path.parent != root:
                olds.append((uri, path.parent))
        for uri, old in olds:
            try:
                if old.exists() and os.path.samefile(old, root):
                    return old
            except OSError:
                pass
        changed = 0
        for uri, old in olds:
            changed += _rewrite(con, db, uri, old, root)
    finally:
        con.close()
    if changed:
        print(f"srash: catalog {_show(root)} was written at {olds[0][1]}: updated {changed} "
              "stored file locations to this directory", file=sys.stderr)
    return root


def _sqlite_uri_path(uri: str) -> Path | None:
    """The file of a tiled ``sqlite://localhost/<abs path>`` URI (tiled: path after the
    third slash), or None."""
    from urllib.parse import urlparse

    path = urlparse(uri).path[1:]
    return Path(path) if path.startswith("/") or re.match(r"[A-Za-z]:", path) else None


def _rewrite(con: sqlite3.Connection, db: Path, tables_uri: str, old: Path, new: Path) -> int:
    """Replace the ``old`` directory prefix by ``new`` in every stored asset URI; returns the
    number of rows changed."""
    from urllib.parse import quote

    head = tables_uri[: len(tables_uri) - len(str(old / TABLES_DB))]  # "sqlite://localhost/"
    pairs = {head + str(old) + "/": head + str(new) + "/"}
    for host in ("", "localhost"):
        pairs[f"file://{host}{old}/"] = f"file://{host}{new}/"
        pairs[f"file://{host}{quote(str(old))}/"] = f"file://{host}{quote(str(new))}/"
    changed = 0
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            for a, b in pairs.items():
                cur = con.execute("UPDATE assets SET data_uri = ? || substr(data_uri, ?) "
                                  "WHERE substr(data_uri, 1, ?) = ?", (b, len(a) + 1, len(a), a))
                changed += max(cur.rowcount, 0)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        msg = str(exc)
        if any(w in msg for w in ("readonly", "read-only", "unable to open")):
            raise CatalogError(
                f"catalog {_show(db.parent)} was written at {old} and its stored file "
                f"locations must be updated to the new directory, but it is read-only "
                f"({msg}); make it writable once, or open it at {old}") from None
        raise CatalogError(_database_problem(db, exc)) from None
    return changed


def _open_remote(uri: str, api_key: str | None):
    if not uri.startswith(("http://", "https://")):
        raise CatalogError(f"catalog URL {uri!r} not allowed: use http:// or https://")
    import httpx

    try:  # one quick probe: tiled's client retries unreachable servers for ~20 s
        httpx.get(uri, timeout=5.0, follow_redirects=True)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise CatalogError(f"cannot reach the catalog at {uri}: {exc} (is the server "
                           "running, and is the URL right?)") from None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_HTTPX_WARNING)
        from tiled.client import Context, from_context
    context = None
    try:  # tiled's from_uri, closing the connection when it fails
        context, path = Context.from_any_uri(uri, api_key=api_key)
        if not context.authenticated and context.server_info.authentication.required:
            # without a key tiled would prompt for a login (or fail: no terminal)
            raise RuntimeError("This server requires API key authentication.")
        client = from_context(context, node_path_parts=path)
    except httpx.HTTPStatusError as exc:
        _close_context(context)
        code = exc.response.status_code
        why = ("the API key was not accepted; check --api-key (or TILED_API_KEY)"
               if code in (401, 403) else "check the URL and --api-key")
        raise CatalogError(f"catalog at {uri} refused the connection (HTTP {code}): {why}"
                           ) from None
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        _close_context(context)
        raise CatalogError(f"cannot reach the catalog at {uri}: {exc}") from None
    except RuntimeError as exc:  # tiled: "This server requires API key authentication."
        _close_context(context)
        if "API key" not in str(exc):
            raise
        raise CatalogError(f"catalog at {uri} requires an API key: pass --api-key KEY or set "
                           "TILED_API_KEY") from None
    except BaseException:
        _close_context(context)
        raise
    specs = {getattr(s, "name", None) for s in getattr(client, "specs", [])}
    if ROOT_SPEC["name"] not in specs:
        _close_context(context)
        raise CatalogError(f"{uri} is not a catalog of bluesky runs (its specs: "
                           f"{sorted(s for s in specs if s)}); point --catalog at one")
    return client


#: the tiled scopes a scan needs: create the run, register its frame files, write events
WRITE_SCOPES = frozenset({"write:metadata", "write:data", "create:node", "register"})


def check_remote_writable(client, uri: str) -> None:
    """:class:`CatalogError` when the API key ``client`` connected with lacks a scope a scan
    needs (:data:`WRITE_SCOPES`): checked before anything is acquired, from the server's
    ``whoami`` (the key's scopes as tiled stores them). Servers without authentication
    providers (tiled's single-user mode: one key with every scope) are not asked."""
    ctx = client.context
    if not ctx.server_info.authentication.links:
        return
    key = (ctx.api_key or "").lower()
    who = ctx.whoami() or {}
    scopes: set[str] | None = None
    for entry in who.get("api_keys") or []:
        if key and entry.get("first_eight") == key[:8]:
            scopes = set(entry.get("scopes") or ())
            break
    if scopes is None or "inherit" in scopes:
        scopes = set().union(*[r.get("scopes") or () for r in who.get("roles") or []])
    missing = WRITE_SCOPES - scopes
    if missing:
        raise CatalogError(
            f"the API key is not allowed to write to the catalog at {uri} (it lacks "
            f"{', '.join(sorted(missing))}: a read-only key?); scans need the server's "
            "read-write key (`srash serve --api-key`): pass --api-key KEY or set "
            "TILED_API_KEY")


def _close_context(context) -> None:
    if context is not None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_HTTPX_WARNING)
            context.close()


def close_catalog(client) -> None:
    """Shut down the in-process server of an embedded catalog (no-op for remote ones)."""
    ctx = getattr(client, "context", None)
    if ctx is not None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_HTTPX_WARNING)
            ctx.close()


#: One writer at a time per process: the scan's writer and the live analysis writers (the
#: demo's two LBNet-Dx callbacks, on their own threads) all write through the same catalog;
#: on the embedded SQLite table store two writers creating tables at once fail with
#: "database is locked" (seen on a fresh clone's `make demo`), so their documents are
#: handed to tiled one at a time. Re-entrant: a writer's call never blocks itself.
_WRITE_LOCK = threading.RLock()


def make_writer(client, **kwargs: Any) -> "TiledWriter":
    """A :class:`bluesky_tiled_plugins.TiledWriter` on ``client`` with the default batching.

    Default batching caches Events/StreamDatums and writes them at the stop document (or
    every 10 000 documents): per-tile cost stays flat over a mosaic, whereas
    ``batch_size=1`` re-writes and grows with the run length (docs/benchmarks.md: 147 ms/frame at
    25 frames, 246 ms at 100). The consequence: readers of the catalog see a run's events
    once it has stopped; live consumers subscribe to the document stream instead.
    """
    from bluesky_tiled_plugins import TiledWriter

    class SerializedWriter(TiledWriter):
        """Documents go in one at a time per process (:data:`_WRITE_LOCK`)."""

        def __call__(self, name: str, doc: dict) -> Any:
            with _WRITE_LOCK:
                return super().__call__(name, doc)

    return SerializedWriter(client, **kwargs)


def make_analysis_writer(client) -> "TiledWriter":
    """A TiledWriter for analysis runs: ``max_array_size=0`` stores every event array as
    zarr (tiled's SQLite tables cannot hold the list columns that small arrays become)."""
    return make_writer(client, max_array_size=0)


def serialization_registry() -> Any:
    """tiled's default serializers plus bluesky's ``application/json-seq`` exporter of a
    run's documents, so that ``run.documents()`` works on this catalog (stored runs are
    replayed through the same document consumers as live ones)."""
    import copy

    from bluesky_tiled_plugins.exporters import json_seq_exporter
    from tiled.media_type_registration import default_serialization_registry

    registry = copy.deepcopy(default_serialization_registry)
    registry.register("BlueskyRun", "application/json-seq", json_seq_exporter)
    return registry


# ---------------------------------------------------------------------------- queries
def parse_since(text: str | float | _dt.datetime) -> float:
    """A POSIX timestamp (s) from ``2025-01-31``, ``2025-01-31T14:00``, a datetime, a number
    of seconds since the epoch, or a relative ``3d``/``12h``/``30m``/``45s``/``2w`` (ago).
    :class:`CatalogError` for anything else, NaN and infinities included."""
    if isinstance(text, _dt.datetime):
        return text.timestamp()
    value: float | None = None
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
        if s and s[-1] in units:
            try:
                value = _dt.datetime.now().timestamp() - float(s[:-1]) * units[s[-1]]
            except ValueError:
                pass
        if value is None:
            try:
                value = float(s)
            except ValueError:
                pass
        if value is None:
            try:
                value = _dt.datetime.fromisoformat(s).timestamp()
            except (ValueError, OverflowError, OSError):
                pass
    if value is None or not math.isfinite(value):
        raise CatalogError(f"--since {_clip(str(text))!r} not understood: use a date "
                           "(2025-01-31), a date and time (2025-01-31T14:00), seconds since "
                           "1970 or an age (3d, 12h, 30m); a finite number")
    return value


def check_criteria(**criteria: Any) -> None:
    """:class:`CatalogError` unless every search value (``sample``, ``patient``, ...; see
    :func:`build_queries`) is a string of at most :data:`MAX_VALUE_CHARS` characters without
    control characters (or, for ``phenotype``, a list of such), and ``since`` parses."""
    for key, value in criteria.items():
        if value is None:
            continue
        if key == "since":
            parse_since(value)
            continue
        values = [value] if isinstance(value, str) or key != "phenotype" else list(value)
        for v in values:
            why = None
            if not isinstance(v, str):
                why = f"it is a {type(v).__name__}, not text"
            elif len(v) > MAX_VALUE_CHARS:
                why = f"it has {len(v)} characters"
            elif any(_is_control(c) for c in v):
                why = "it contains control characters"
            if why:
                raise CatalogError(
                    f"--{key} {_clip(str(v))!r} not allowed: {why}; a search value is at most "
                    f"{MAX_VALUE_CHARS} printable characters")


def check_uid_prefix(uid: str) -> str:
    """``uid`` if it is a run uid or a prefix of one that can only match exactly: 5 to 36
    hexadecimal digits and dashes (anything else, e.g. ``%`` or ``_``, would be an SQL LIKE
    wildcard in the catalog's partial-uid lookup); :class:`CatalogError` otherwise."""
    if not isinstance(uid, str) or not _UID_PREFIX.fullmatch(uid):
        raise CatalogError(
            f"run {_clip(str(uid))!r} not allowed: give a run uid or a prefix of at least 5 "
            "of its characters (hexadecimal digits and dashes, e.g. 5345f2a1), or -1 for the "
            "latest run (-2 the one before...); `srash catalog search` lists them")
    return uid


def get_run(client, uid: str):
    """The run ``uid`` (a full uid or a unique prefix of >= 5 hexadecimal digits/dashes,
    matched exactly) or ``-N`` (the N-th latest); :class:`CatalogError` otherwise."""
    if uid.startswith("-") and uid[1:].isdigit():
        if int(uid[1:]) == 0:
            raise CatalogError(f"{uid} is not a run: use -1 for the latest (-2 the one "
                               "before...)")
        key: Any = int(uid)
    else:
        key = check_uid_prefix(uid)
    try:
        run = client[key]
    except (KeyError, IndexError):
        raise CatalogError(f"no run {uid!r} in the catalog; `srash catalog search` lists "
                           "them") from None
    except ValueError as exc:  # ambiguous partial uid
        raise CatalogError(f"run {uid!r}: {exc}") from None
    if isinstance(key, str) and not str((run.metadata.get("start") or {}).get("uid", "")
                                        ).startswith(key):
        # the catalog's partial-uid lookup is SQL LIKE, which ignores case in SQLite
        raise CatalogError(f"no run {uid!r} in the catalog (uid prefixes are case-sensitive); "
                           "`srash catalog search` lists them")
    return run


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} characters)"


#: characters that split a free-text search into terms, besides white space: PostgreSQL's
#: ``to_tsquery`` reads ``( ) ! : * & | < >`` as operators and a backslash or ``'`` as
#: quoting; ``"`` ends an SQLite FTS5 string; neither full-text index keeps them in a word
_FULLTEXT_SEPARATORS = re.compile(r"[\s()!:*&|<>\\'\"]+")


def fulltext_terms(text: str) -> list[str]:
    """``text`` as full-text terms that both of tiled's catalog databases parse: split at
    white space and at :data:`_FULLTEXT_SEPARATORS`, terms without a letter or digit
    dropped, each wrapped in double quotes.

    SQLite FTS5 reads a double-quoted string as a phrase (``"S-001"`` = the tokens ``s``
    ``001`` next to each other; a bare ``S-001`` is a syntax error); PostgreSQL's
    ``to_tsquery('simple', '"S-001"')`` ignores the quotes and gives the same phrase
    (``'s' <-> '-001'``), which matches the stored ``S-001``. Hyphens, dots, underscores,
    slashes and ``@`` stay inside a term. One term per :class:`tiled.queries.FullText`
    query: chained, they are an AND on both databases (FTS5's implicit AND between strings
    has no tsquery equivalent in one text).
    """
    terms = [t for t in _FULLTEXT_SEPARATORS.split(text) if any(c.isalnum() for c in t)]
    return [f'"{t}"' for t in terms]


def build_queries(*, sample: str | None = None, patient: str | None = None,
                  diagnosis: str | None = None, phenotype: str | Sequence[str] | None = None,
                  plan: str | None = None, cohort: str | None = None,
                  split: str | None = None, since: Any = None,
                  text: str | None = None) -> list:
    """tiled queries on start-document keys: ``sample_id``, ``patient_id``, ``diagnosis``,
    ``phenotype`` (one value, or a list: any of them), ``plan_name``, ``cohort``, ``split``
    (exact matches), ``time >= since``, and ``text``: free text anywhere in a run's metadata
    (every word, :func:`fulltext_terms`; case-insensitive whole words, so ``S-001`` does not
    find ``S-0012``)."""
    from tiled.queries import FullText, In, Key

    check_criteria(sample=sample, patient=patient, diagnosis=diagnosis, phenotype=phenotype,
                   plan=plan, cohort=cohort, split=split, since=since, text=text)
    q: list = []
    if text is not None:
        terms = fulltext_terms(text)
        if not terms:
            raise CatalogError(f"--text {_clip(text)!r} has no word to search for: give "
                               "letters or digits (e.g. --text S-001)")
        q.extend(FullText(t) for t in terms)
    if phenotype is not None and not isinstance(phenotype, str):
        q.append(In("phenotype", list(phenotype)))
        phenotype = None
    for key, value in (("sample_id", sample), ("patient_id", patient),
                       ("diagnosis", diagnosis), ("phenotype", phenotype),
                       ("plan_name", plan), ("cohort", cohort), ("split", split)):
        if value is not None:
            q.append(Key(key) == value)
    if since is not None:
        q.append(Key("time") >= parse_since(since))
    return q


def search_runs(client, **criteria: Any):
    """``client`` narrowed by :func:`build_queries` (chained searches: AND)."""
    results = client
    for query in build_queries(**criteria):
        results = results.search(query)
    return results


def _show(path: Path) -> str:
    try:
        rel = path.relative_to(Path.cwd())
        return f"./{rel}" if str(rel) != "." else "."
    except ValueError:
        return str(path)
