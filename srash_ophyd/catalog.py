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
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from bluesky_tiled_plugins import TiledWriter

__all__ = ["CatalogError", "DEFAULT_DATA_DIR", "ENV_DATA_DIR", "ROOT_SPEC", "close_catalog",
           "frames_dir", "make_writer", "open_catalog", "parse_since", "resolve_data_dir",
           "search_runs"]

DEFAULT_DATA_DIR = "srash-data"
ENV_DATA_DIR = "SRASH_DATA_DIR"
ROOT_SPEC = {"name": "CatalogOfBlueskyRuns", "version": "3.0"}
CATALOG_DB = "catalog.db"
TABLES_DB = "tables.sqlite"

# third-party: tiled's in-process Context uses starlette's TestClient over httpx, which
# starlette deprecates; nothing here can change that, and users should not see it.
_HTTPX_WARNING = "Using `httpx` with `starlette.testclient` is deprecated"


class CatalogError(Exception):
    """The catalog cannot be opened or read (missing, unreachable, unknown run...)."""


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

    Close the in-process server with :func:`close_catalog` when done.
    """
    if uri is not None:
        return _open_remote(uri, api_key)
    root = resolve_data_dir(data_dir).absolute()
    db = root / CATALOG_DB
    exists = db.is_file()
    if not exists and not create:
        raise CatalogError(f"no catalog at {_show(root)}; run `srash scan` (or `srash "
                           f"cohort`) first or pass --data-dir (or set {ENV_DATA_DIR})")
    frames = root / "frames"
    if create:
        (root / "data").mkdir(parents=True, exist_ok=True)
        frames.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_HTTPX_WARNING)
        from tiled.catalog import from_uri
        from tiled.client import Context, from_context
        from tiled.server.app import build_app

        # the in-process server announces "Tiled version ..." at INFO on every start
        logging.getLogger("tiled.server.app").setLevel(logging.WARNING)
        adapter = from_uri(
            f"sqlite:///{db}",
            writable_storage=[str(root / "data"), f"sqlite:///{root / TABLES_DB}"],
            readable_storage=[str(frames)],
            init_if_not_exists=not exists,  # costs ~4 s: only for a new database
            specs=[ROOT_SPEC])
        ctx = Context.from_app(build_app(adapter, include_routers=include_routers or []))
        try:
            return from_context(ctx)
        except BaseException:
            ctx.close()
            raise


def _open_remote(uri: str, api_key: str | None):
    if not uri.startswith(("http://", "https://")):
        raise CatalogError(f"catalog URL {uri!r} not allowed: use http:// or https://")
    import httpx

    try:  # one quick probe: tiled's client retries unreachable servers for ~20 s
        httpx.get(uri, timeout=5.0, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise CatalogError(f"cannot reach the catalog at {uri}: {exc}") from exc
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_HTTPX_WARNING)
        from tiled.client import from_uri
    try:
        client = from_uri(uri, api_key=api_key)
    except httpx.HTTPStatusError as exc:
        raise CatalogError(f"catalog at {uri} refused the connection "
                           f"(HTTP {exc.response.status_code}); check the URL and --api-key"
                           ) from exc
    except (httpx.HTTPError, OSError) as exc:
        raise CatalogError(f"cannot reach the catalog at {uri}: {exc}") from exc
    specs = {getattr(s, "name", None) for s in getattr(client, "specs", [])}
    if ROOT_SPEC["name"] not in specs:
        raise CatalogError(f"{uri} is not a catalog of bluesky runs (its specs: "
                           f"{sorted(s for s in specs if s)}); point --catalog at one")
    return client


def close_catalog(client) -> None:
    """Shut down the in-process server of an embedded catalog (no-op for remote ones)."""
    ctx = getattr(client, "context", None)
    if ctx is not None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_HTTPX_WARNING)
            ctx.close()


def make_writer(client, **kwargs: Any) -> "TiledWriter":
    """A :class:`bluesky_tiled_plugins.TiledWriter` on ``client`` with the default batching.

    Default batching caches Events/StreamDatums and writes them at the stop document (or
    every 10 000 documents): per-tile cost stays flat over a mosaic, whereas
    ``batch_size=1`` re-writes and grows with the run length (docs/stack.md: 147 ms/frame at
    25 frames, 246 ms at 100). The consequence: readers of the catalog see a run's events
    once it has stopped; live consumers subscribe to the document stream instead.
    """
    from bluesky_tiled_plugins import TiledWriter

    return TiledWriter(client, **kwargs)


# ---------------------------------------------------------------------------- queries
def parse_since(text: str | float | _dt.datetime) -> float:
    """A POSIX timestamp from ``2025-01-31``, ``2025-01-31T14:00``, a datetime, a number
    of seconds since the epoch, or a relative ``3d``/``12h``/``30m`` (ago)."""
    if isinstance(text, (int, float)):
        return float(text)
    if isinstance(text, _dt.datetime):
        return text.timestamp()
    s = str(text).strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    if s and s[-1] in units:
        try:
            return _dt.datetime.now().timestamp() - float(s[:-1]) * units[s[-1]]
        except ValueError:
            pass
    try:
        return float(s)
    except ValueError:
        pass
    try:
        return _dt.datetime.fromisoformat(s).timestamp()
    except ValueError:
        raise CatalogError(f"--since {text!r} not understood: use a date (2025-01-31), a "
                           "date and time (2025-01-31T14:00) or an age (3d, 12h, 30m)") from None


def build_queries(*, sample: str | None = None, patient: str | None = None,
                  diagnosis: str | None = None, phenotype: str | Sequence[str] | None = None,
                  plan: str | None = None, cohort: str | None = None,
                  split: str | None = None, since: Any = None) -> list:
    """tiled queries on start-document keys: ``sample_id``, ``patient_id``, ``diagnosis``,
    ``phenotype`` (one value, or a list: any of them), ``plan_name``, ``cohort``, ``split``
    (exact matches) and ``time >= since``."""
    from tiled.queries import In, Key

    q = []
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
