"""``srash serve`` (the catalog as a tiled server with API keys) and ``srash catalog init``
(a new PostgreSQL catalog). The workflow is :mod:`srash_ophyd.serve`; docs/facility.md."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_init_parser", "add_parser", "run_init", "run_serve"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="serve the catalog over HTTP (tiled, API keys)",
        description="Serve the run catalog as a tiled server: the catalog of bluesky runs "
                    "(embedded SQLite of --data-dir, or PostgreSQL with --database), the "
                    "frames of DATA_DIR/frames and the documents of every run "
                    "(run.documents()). Every request needs an API key: the read-write key "
                    "(--api-key) may scan into it, a read-only key (--read-key) may search "
                    "and read. Clients: `srash ... --catalog URL --api-key KEY`. Runs until "
                    "Ctrl-C / SIGTERM (a graceful stop: exit status 0; 2 when it cannot "
                    "start). See docs/facility.md.")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="data directory: frames (and the SQLite catalog unless --database); "
                        "default $SRASH_DATA_DIR or ./srash-data")
    p.add_argument("--database", default=None, metavar="URL",
                   help="PostgreSQL catalog, e.g. postgresql://srash@dbhost:5432/srash "
                        "(made a catalog once by `srash catalog init --database URL`); "
                        "default: the embedded SQLite catalog of --data-dir")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every "
                        "interface, behind the facility's TLS proxy)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help="the read-write key (default $SRASH_SERVE_API_KEY; the variable keeps "
                        "it out of process lists): hexadecimal, >= 32 digits, e.g. `python -c "
                        "\"import secrets; print(secrets.token_hex(32))\"`")
    p.add_argument("--read-key", action="append", default=[], metavar="KEY",
                   help="a read-only key (repeatable; default: the comma-separated "
                        "$SRASH_SERVE_READ_KEYS)")
    p.add_argument("--readable", action="append", default=[], type=Path, metavar="DIR",
                   help="another folder whose frame files runs may register (repeatable), "
                        "e.g. an instrument's frames on shared storage")
    p.add_argument("--json", action="store_true",
                   help="print the start-up line as JSON (url, database, frames, key counts)")
    p.set_defaults(func=run_serve)


def add_init_parser(ss: argparse._SubParsersAction) -> None:
    """``srash catalog init`` (added to ``srash catalog``'s sub-commands)."""
    p = ss.add_parser(
        "init", help="make a PostgreSQL database a new catalog of bluesky runs",
        description="Create tiled's catalog tables in an existing, empty PostgreSQL database "
                    "(`createdb srash` first) so that `srash serve --database URL` serves "
                    "it. A database that already is a catalog is left alone (exit 2, or 0 "
                    "with --if-not-exists). The embedded SQLite catalog needs no init.")
    p.add_argument("--database", required=True, metavar="URL",
                   help="postgresql://user@host:5432/name")
    p.add_argument("--if-not-exists", action="store_true",
                   help="an existing catalog is not an error")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    p.set_defaults(func=run_init)


def run_serve(args: argparse.Namespace) -> int:
    from ..serve import print_ready, serve, server_config

    config = server_config(data_dir=args.data_dir, database=args.database, host=args.host,
                           port=args.port, api_key=args.api_key, read_keys=args.read_key,
                           readable=args.readable)
    from ..signals import Terminated

    why = "done"
    try:  # uvicorn stops gracefully on SIGINT / SIGTERM, then re-raises the signal
        serve(config, ready=lambda url: print_ready(url, config, as_json=args.json))
    except Terminated as exc:
        why = str(exc)
    except KeyboardInterrupt:
        why = "interrupted (Ctrl-C)"
    print(f"srash serve: stopped, {why}", file=sys.stderr)
    return 0


def run_init(args: argparse.Namespace) -> int:
    from ..serve import init_catalog, redact_uri

    created = init_catalog(args.database, exist_ok=args.if_not_exists)
    shown = redact_uri(args.database)
    if args.json:
        print(json.dumps({"database": shown, "created": created}))
    else:
        print(f"catalog {'created in' if created else 'already in'} {shown}", file=sys.stderr)
    return 0
