"""The ``srash`` command line: ``srash <command> [...]``; ``srash <command> --help``.

User mistakes (bad settings, unreadable files) end with ``srash: error: ...`` and exit
status 2, never a traceback: the error bases of the packages are caught
(``SimulatorError``, ``SrashError``, ``PlanError``, ``MLError``) with ``OSError``. Any other
exception, a plain ``ValueError`` included, is a bug and keeps its traceback.

Logging: the project logs through the standard ``logging`` module under the ``srash``
logger (``srash.cli.<command>``, ``srash.io``, ``srash.live``...). ``srash -v COMMAND``
shows its INFO records on stderr (what is read and written, with timestamps), ``-vv`` DEBUG;
without ``-v`` nothing is configured (warnings reach stderr as before). :func:`main`
configures this once per call (:func:`configure_logging`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from ml.common.errors import MLError
from plans.errors import PlanError
from simulators.errors import SimulatorError

from .. import __version__
from ..errors import SrashError
from . import (
    catalog,
    classify,
    cohort,
    demo,
    evaluate,
    ioc,
    quantify,
    scan,
    segment,
    segtrain,
    serve,
    shell,
    simulate,
    train,
)
from .options import CLIError as CLIError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srash",
        description="SRASH (SRS + SHG) microscope framework: simulate, acquire, analyse.",
    )
    parser.add_argument("--version", action="version", version=f"srash {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log what the command does on stderr (INFO; -vv: DEBUG); "
                             "give it before the command: srash -v scan ...")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo.add_parser(sub)
    simulate.add_parser(sub)
    scan.add_parser(sub)
    catalog.add_parser(sub)
    cohort.add_parser(sub)
    train.add_parser(sub)
    evaluate.add_parser(sub)
    classify.add_parser(sub)
    segment.add_parser(sub)
    segtrain.add_parsers(sub)
    quantify.add_parser(sub)
    shell.add_parser(sub)
    serve.add_parser(sub)
    ioc.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``srash`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(getattr(args, "verbose", 0))
    logging.getLogger("srash.cli").info("srash %s (version %s)", getattr(args, "command", "?"),
                                       __version__)
    from ..signals import Terminated, exit_status_for, terminate_gracefully

    # bluesky logs an aborted or failed run with its traceback ("Run aborted"); the commands
    # say what happened in one line, so keep it off the terminal (a user's own logging
    # configuration still receives it)
    logging.getLogger("bluesky").addHandler(logging.NullHandler())

    try:
        with terminate_gracefully():  # SIGTERM / SIGHUP end a command like Ctrl-C
            return int(args.func(args) or 0)
    except Terminated as exc:
        print(f"srash: {exc}", file=sys.stderr)
        return exit_status_for(exc)
    except (SimulatorError, SrashError, PlanError, MLError, OSError) as exc:
        print(f"srash: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("srash: interrupted", file=sys.stderr)
        return 130
    except _third_party_errors() as exc:  # last resort: the sources raise CatalogError
        print(f"srash: error: {_describe_third_party(exc)}", file=sys.stderr)
        return 2


class _StderrHandler(logging.StreamHandler):
    """A stream handler on whatever ``sys.stderr`` is when a record is emitted."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(verbose: int) -> None:
    """Show the ``srash`` loggers' records on stderr: INFO for ``verbose`` 1, DEBUG for 2+;
    0 leaves logging as it is. Idempotent: the handler of a previous call is replaced."""
    log = logging.getLogger("srash")
    for h in list(log.handlers):
        if isinstance(h, _StderrHandler):
            log.removeHandler(h)
    if verbose <= 0:
        log.setLevel(logging.NOTSET)
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
    log.debug("logging configured (verbose=%d)", verbose)


def _third_party_errors() -> tuple[type[BaseException], ...]:
    """The error bases of the catalog's database and network layers (SQLAlchemy's
    ``DatabaseError``, httpx's ``HTTPError``/``InvalidURL``, tiled's ``ClientError``), among
    the modules already imported: evaluated only when an exception reaches :func:`main`.
    Anything else (a bug) keeps its traceback."""
    out: list[type[BaseException]] = []
    if (exc := sys.modules.get("sqlalchemy.exc")) is not None:
        out.append(exc.DatabaseError)
    if (httpx := sys.modules.get("httpx")) is not None:
        out += [httpx.HTTPError, httpx.InvalidURL]
    if (tiled_utils := sys.modules.get("tiled.client.utils")) is not None:
        out.append(tiled_utils.ClientError)
    return tuple(out)


def _describe_third_party(exc: BaseException) -> str:
    """``exc`` in one line, with a hint on what to check."""
    mod = type(exc).__module__.split(".")[0]
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if mod == "sqlalchemy":
        from ..catalog import last_database

        db = last_database()
        where = f" {db}" if db else ""
        return (f"catalog database{where}: {first} (it may be damaged or locked by another "
                "process; restore it from a backup, or try again)")
    return (f"catalog server error: {type(exc).__name__}: {first} (check --catalog, "
            "--api-key and that the server is running)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
