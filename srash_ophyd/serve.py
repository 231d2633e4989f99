"""``srash serve``: the run catalog as a tiled server, with scoped API keys.

What is served is the catalog :func:`srash_ophyd.catalog.open_catalog` opens in-process,
over HTTP: the ``CatalogOfBlueskyRuns`` root spec (bluesky-aware clients: ``client[-1]``,
partial uids), the data directory's ``frames/`` as readable storage (the detector's OME-TIFF
files are registered, not copied) and the ``application/json-seq`` exporter of a run's
documents (``run.documents()``). The database is either

- the embedded SQLite catalog of the data directory (``<data_dir>/catalog.db``, created when
  missing; the same files ``srash scan --data-dir`` writes without a server), or
- a PostgreSQL database (``--database postgresql://user@host:5432/name``) made a catalog
  once by ``srash catalog init --database URL`` (:func:`init_catalog`); event tables go
  into the same database, so nothing but the frames lives on the server's disk.

Authentication: tiled's multi-user mode with **API keys and scopes**, and no interactive
login. The keys are given to the server (``--api-key`` / ``--read-key``, or the variables
:data:`ENV_API_KEY` / :data:`ENV_READ_KEYS`); at start-up each is stored, hashed, as an API
key of a tiled *service principal* in the server's authentication database, which is
tiled's transient in-memory SQLite (so the keys live exactly as long as the process and as
the command line says; restarting with other keys revokes the old ones). A key carries
tiled scopes:

- read-write (:data:`WRITE_SCOPES`): search, read arrays and documents, create runs,
  register frame files, write events, delete (``srash catalog repair`` replaces the
  half-written run of a scan whose server went away);
- read-only (:data:`READ_SCOPES`): search and read; any write is refused by tiled (401
  "Not enough permissions").

Without a key, or with an unknown one, every request is refused (401). Why not tiled's
single-user mode: it knows one key with every scope, no read-only key. Why not keys created
by ``tiled api_key create``: that needs a login provider and a persistent authentication
database to administer; the facility's secrets store already holds the two keys.

Keys are hexadecimal (tiled stores ``sha256(bytes.fromhex(key))``), at least
:data:`MIN_KEY_HEX` digits: ``python -c "import secrets; print(secrets.token_hex(32))"``.

Nothing here is imported by the acquisition path; tiled and uvicorn are imported lazily.
How a facility runs it: ``docs/facility.md``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .catalog import (
    ROOT_SPEC,
    TABLES_DB,
    CatalogError,
    prepare_embedded,
    resolve_data_dir,
    serialization_registry,
)
from .catalog import WRITE_SCOPES as _SCAN_SCOPES

__all__ = ["APIKeyError", "DatabaseUnavailable", "ENV_API_KEY", "ENV_READ_KEYS",
           "MIN_KEY_HEX", "READ_SCOPES", "ServeError", "ServerConfig", "WRITE_SCOPES",
           "build_server_app", "check_api_key", "check_database", "init_catalog",
           "server_config", "serve"]

ENV_API_KEY = "SRASH_SERVE_API_KEY"
ENV_READ_KEYS = "SRASH_SERVE_READ_KEYS"
MIN_KEY_HEX = 32  # hexadecimal digits of a key (128 bits)
READ_SCOPES = ("read:metadata", "read:data")
#: a scan's scopes, and deleting: ``srash catalog repair`` replaces a half-written run
WRITE_SCOPES = READ_SCOPES + tuple(sorted(_SCAN_SCOPES)) + ("delete:node", "delete:revision")
_PROVIDER = "srash-keys"
_HEX = re.compile(r"[0-9A-Fa-f]+")
_GENERATE = 'python -c "import secrets; print(secrets.token_hex(32))"'


class ServeError(CatalogError):
    """The catalog server cannot start: bad keys, database, address or storage."""


class APIKeyError(ServeError):
    """An API key given to the server is not allowed (not hexadecimal, too short...)."""


class DatabaseUnavailable(ServeError):
    """The catalog database does not answer, or is not a catalog (yet)."""


def _internal_authenticator_base() -> type:
    from tiled.server.protocols import InternalAuthenticator

    return InternalAuthenticator


class KeysOnlyAuthenticator(_internal_authenticator_base()):  # type: ignore[misc]
    """tiled authenticator of a server that is entered by API key only: every password
    login is refused (tiled's multi-user mode needs one provider; the API keys of service
    principals do not go through it)."""

    async def authenticate(self, username: str, password: str) -> None:
        return None


# ---------------------------------------------------------------------------- keys
def check_api_key(key: str, option: str = "--api-key") -> str:
    """``key`` in lower case if it is a usable key: hexadecimal, an even number of at least
    :data:`MIN_KEY_HEX` digits; :class:`APIKeyError` saying what is allowed otherwise (the
    message never repeats the key)."""
    why = None
    if not isinstance(key, str) or not key:
        why = "it is empty"
    elif not _HEX.fullmatch(key):
        why = "it has characters other than hexadecimal digits 0-9 a-f"
    elif len(key) < MIN_KEY_HEX:
        why = f"it has {len(key)} digits"
    elif len(key) % 2:
        why = f"it has an odd number of digits ({len(key)})"
    if why:
        raise APIKeyError(f"{option} not allowed: {why}; a key is an even number of at least "
                          f"{MIN_KEY_HEX} hexadecimal digits, e.g. from `{_GENERATE}`")
    return key.lower()


def _keys_from_env(value: str | None) -> list[str]:
    return [k.strip() for k in (value or "").split(",") if k.strip()]


@dataclass(frozen=True)
class ServerConfig:
    """What :func:`serve` serves: the data directory (frames; SQLite catalog unless
    ``database``), the database URI (``None``: embedded SQLite), the readable folders, and
    the read-write and read-only keys (lower-case hexadecimal)."""

    data_dir: Path
    database: str | None
    readable: tuple[Path, ...]
    write_keys: tuple[str, ...]
    read_keys: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8000
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def database_shown(self) -> str:
        """The database without a password (for messages)."""
        if self.database is None:
            return str(self.data_dir / "catalog.db")
        return redact_uri(self.database)


def redact_uri(uri: str) -> str:
    """``uri`` with its password, if any, replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@/]*@", r"\1***@", uri)


def check_database_uri(database: str) -> str:
    """A PostgreSQL URI (``postgresql://`` or ``postgresql+asyncpg://``) as tiled wants it;
    :class:`ServeError` for anything else."""
    if not isinstance(database, str) or not re.match(r"postgres(ql)?(\+asyncpg)?://",
                                                     database):
        raise ServeError(f"--database {redact_uri(str(database))!r} not allowed: give a "
                         "PostgreSQL URL such as postgresql://user@host:5432/srash, or leave "
                         "it out for the embedded SQLite catalog of --data-dir")
    if database.startswith("postgres://"):
        database = "postgresql://" + database[len("postgres://"):]
    return database


def server_config(*, data_dir: str | os.PathLike | None = None, database: str | None = None,
                  host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                  read_keys: Sequence[str] = (),
                  readable: Sequence[str | os.PathLike] = ()) -> ServerConfig:
    """Check the options of ``srash serve`` (keys from :data:`ENV_API_KEY` /
    :data:`ENV_READ_KEYS` when not given) into a :class:`ServerConfig`; :class:`ServeError`
    / :class:`APIKeyError` naming what is wrong."""
    if api_key is None:
        api_key = os.environ.get(ENV_API_KEY) or None
    reads = list(read_keys) or _keys_from_env(os.environ.get(ENV_READ_KEYS))
    if api_key is None and not reads:
        raise APIKeyError(f"no API key: give --api-key KEY (read-write) and/or --read-key KEY "
                          f"(read-only), or set {ENV_API_KEY} / {ENV_READ_KEYS}; anonymous "
                          f"access is not offered. A key: `{_GENERATE}`")
    write = (check_api_key(api_key, "--api-key"),) if api_key is not None else ()
    read = tuple(check_api_key(k, "--read-key") for k in reads)
    if set(write) & set(read):
        raise APIKeyError("the read-write key (--api-key) is also given as a read-only key "
                          "(--read-key): use different keys")
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ServeError(f"--port {port} not allowed: 0..65535 (0: any free port)")
    if not host or any(c.isspace() for c in host):
        raise ServeError(f"--host {host!r} not allowed: an address such as 127.0.0.1")
    root = resolve_data_dir(data_dir).absolute()
    db = check_database_uri(database) if database is not None else None
    folders = [root / "frames"] + [Path(p).expanduser().absolute() for p in readable]
    return ServerConfig(data_dir=root, database=db, readable=tuple(folders),
                        write_keys=write, read_keys=read, host=host, port=port)


# ---------------------------------------------------------------------------- database
def _asyncpg_dsn(database: str) -> str:
    return re.sub(r"^postgresql\+asyncpg://", "postgresql://", database)


async def _probe(database: str, timeout_s: float) -> bool:
    """True when the database answers and holds tiled's catalog tables."""
    import asyncpg

    con = await asyncpg.connect(_asyncpg_dsn(database), timeout=timeout_s)
    try:
        return bool(await con.fetchval("SELECT to_regclass('public.nodes') IS NOT NULL"))
    finally:
        await con.close()


def check_database(database: str, *, timeout_s: float = 5.0, need_catalog: bool = True
                   ) -> bool:
    """Whether the PostgreSQL ``database`` is a tiled catalog; :class:`DatabaseUnavailable`
    with what to do when it does not answer (down, wrong port, no such database, refused
    login) or, with ``need_catalog``, is not a catalog yet."""
    shown = redact_uri(database)
    try:
        is_catalog = asyncio.run(_probe(database, timeout_s))
    except (OSError, asyncio.TimeoutError) as exc:
        raise DatabaseUnavailable(
            f"catalog database {shown} does not answer ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'timed out'}); is PostgreSQL "
            "running there, and are host and port right?") from None
    except Exception as exc:  # asyncpg's PostgresError family: no database, bad login...
        if type(exc).__module__.split(".")[0] != "asyncpg":
            raise
        hint = ("create it first (`createdb NAME` on the database host)"
                if "does not exist" in str(exc) else "check the user, password and name")
        raise DatabaseUnavailable(f"catalog database {shown} refused the connection: "
                                  f"{str(exc).splitlines()[0]}; {hint}") from None
    if need_catalog and not is_catalog:
        raise DatabaseUnavailable(f"database {shown} is not a catalog yet: run `srash catalog "
                                  f"init --database {shown}` once")
    return is_catalog


def init_catalog(database: str, *, exist_ok: bool = False) -> bool:
    """Make the PostgreSQL ``database`` (which must exist) a new, empty catalog of bluesky
    runs: tiled's catalog tables, its schema revision stamped (what ``tiled catalog init``
    does) and the ``CatalogOfBlueskyRuns`` spec on the root. Returns False when it already
    was one and ``exist_ok``; :class:`DatabaseUnavailable` otherwise, or when it does not
    answer."""
    database = check_database_uri(database)
    if check_database(database, need_catalog=False):
        if exist_ok:
            return False
        raise DatabaseUnavailable(f"database {redact_uri(database)} is already a catalog; "
                                  "nothing done (serve it with `srash serve --database ...`)")
    from sqlalchemy.ext.asyncio import create_async_engine
    from tiled.alembic_utils import stamp_head
    from tiled.catalog.alembic_constants import ALEMBIC_DIR, ALEMBIC_INI_TEMPLATE_PATH
    from tiled.catalog.core import initialize_database
    from tiled.utils import ensure_specified_sql_driver

    uri = ensure_specified_sql_driver(database)

    async def create() -> None:
        engine = create_async_engine(uri)
        try:
            await initialize_database(engine)
        finally:
            await engine.dispose()

    asyncio.run(create())
    with warnings.catch_warnings():  # third-party: tiled's alembic.ini template predates
        warnings.filterwarnings("ignore", message="No path_separator found",  # alembic 1.16
                                category=DeprecationWarning)
        stamp_head(ALEMBIC_INI_TEMPLATE_PATH, ALEMBIC_DIR, uri)
    return True


# ---------------------------------------------------------------------------- the app
def _adapter(config: ServerConfig):
    """tiled's catalog adapter of ``config``: the embedded SQLite catalog (created when
    missing, re-pointed when the directory moved: :func:`catalog.prepare_embedded`) or the
    PostgreSQL one (checked first)."""
    from tiled.catalog import from_uri

    readable = [str(p) for p in config.readable]
    if config.database is None:
        emb = prepare_embedded(config.data_dir, create=True)
        readable += [str(p) for p in emb.extra_readable]
        return from_uri(f"sqlite:///{emb.db}",
                        writable_storage=[str(config.data_dir / "data"),
                                          f"sqlite:///{emb.stored_root / TABLES_DB}"],
                        readable_storage=readable, init_if_not_exists=not emb.existed,
                        specs=[ROOT_SPEC])
    check_database(config.database)
    prepare_embedded(config.data_dir, create=True, database=False)  # frames/ and data/
    return from_uri(config.database,
                    writable_storage=[str(config.data_dir / "data"), config.database],
                    readable_storage=readable, init_if_not_exists=False, specs=[ROOT_SPEC])


def build_server_app(config: ServerConfig, *, include_routers: list | None = None):
    """The ASGI app of ``config``: tiled's ``build_app`` over the catalog, in multi-user mode
    with the :class:`KeysOnlyAuthenticator` provider, no anonymous access, and the keys of
    ``config`` registered at start-up (module doc)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from tiled.config import Authentication
        from tiled.server.app import build_app

    adapter = _adapter(config)
    auth = Authentication(
        providers=[{"provider": _PROVIDER,
                    "authenticator": "srash_ophyd.serve:KeysOnlyAuthenticator"}],
        secret_keys=[secrets.token_hex(32)],  # signs tokens; no login issues any
        allow_anonymous_access=False)
    app = build_app(adapter, authentication=auth,
                    serialization_registry=serialization_registry(),
                    include_routers=include_routers or [])
    keys = ([("admin", WRITE_SCOPES, k, "srash serve: read-write") for k in config.write_keys]
            + [("user", READ_SCOPES, k, "srash serve: read-only") for k in config.read_keys])
    _register_keys_at_startup(app, keys)
    return app


def _register_keys_at_startup(app: Any, keys: list[tuple[str, tuple[str, ...], str, str]]
                              ) -> None:
    """Wrap the app's lifespan: once tiled has created its authentication database, add one
    service principal per role and the keys as its API keys (hashed, as tiled stores them)."""
    from contextlib import asynccontextmanager

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):
        async with inner(a) as state:
            await _register_keys(app, keys)
            yield state

    app.router.lifespan_context = lifespan


async def _register_keys(app: Any, keys: list[tuple[str, tuple[str, ...], str, str]]) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession
    from tiled.authn_database import orm
    from tiled.authn_database.core import create_service
    from tiled.server.connection_pool import get_database_engine
    from tiled.server.settings import get_settings

    settings = app.dependency_overrides[get_settings]()
    engine = get_database_engine(settings)
    async with AsyncSession(engine, autoflush=False, expire_on_commit=False) as db:
        principals: dict[str, Any] = {}
        for role, scopes, key, note in keys:
            if role not in principals:
                principals[role] = await create_service(db, role)
            secret = bytes.fromhex(key)
            db.add(orm.APIKey(principal_id=principals[role].id, first_eight=secret.hex()[:8],
                              hashed_secret=hashlib.sha256(secret).digest(),
                              scopes=list(scopes), note=note, expiration_time=None,
                              access_tags=None))
        await db.commit()


def serve(config: ServerConfig, *, ready: Any = None, log_level: str = "warning") -> None:
    """Serve ``config`` with uvicorn until SIGINT / SIGTERM. ``ready(url)`` is called once
    the server listens (``url`` with the port actually bound, ``--port 0`` included).
    :class:`ServeError` when the address is taken or not available."""
    import socket

    import uvicorn

    app = build_server_app(config)
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {config.host}:{config.port}: "
                         f"{exc.strerror or exc} (another server there? pick another --port, "
                         "or --port 0 for any free one)") from None
    port = sock.getsockname()[1]
    bound = ServerConfig(**{**config.__dict__, "port": port})
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on",
                                           access_log=False))
    if ready is not None:
        startup = server.startup

        async def announce(sockets=None):
            await startup(sockets=sockets)
            if server.started:
                ready(bound.url)

        server.startup = announce  # type: ignore[method-assign]
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise ServeError(f"the catalog server did not start (database {bound.database_shown});"
                         " its log above says why")


def print_ready(url: str, config: ServerConfig, *, as_json: bool = False,
                file: Any = None) -> None:
    """The start-up line (stdout): where the catalog answers and what it serves."""
    import json

    out = file if file is not None else sys.stdout
    info = {"url": url, "database": config.database_shown,
            "frames": [str(p) for p in config.readable],
            "write_keys": len(config.write_keys), "read_keys": len(config.read_keys)}
    if as_json:
        print(json.dumps(info), file=out, flush=True)
    else:
        print(f"srash serve: catalog at {url} (database {info['database']}; frames "
              f"{', '.join(info['frames'])}; {info['write_keys']} read-write and "
              f"{info['read_keys']} read-only keys); Ctrl-C stops it", file=out, flush=True)
