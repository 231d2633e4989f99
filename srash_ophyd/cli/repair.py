"""``srash catalog repair``: recover the finished tiles of killed scans (see
:mod:`srash_ophyd.repair`)."""

from __future__ import annotations

import argparse
import json
import sys

from .options import add_catalog_options

__all__ = ["add_parser", "run_repair"]


def add_parser(ss: argparse._SubParsersAction) -> None:
    p = ss.add_parser(
        "repair", help="recover the finished tiles of killed scans from their journals",
        description="A scan killed with SIGKILL or a power loss leaves a run without stop "
                    "document (its tiles not in the catalog) and a journal in "
                    "DATA_DIR/journal. This replays each journal: the run gets back every "
                    "finished frame whose file is intact and a stop document marking it "
                    "incomplete (exit status 'abort', reason 'incomplete: recovered by srash "
                    "catalog repair ...'). Runs it cannot recover are listed with the reason. "
                    "Exit status: 0 nothing left unrecovered, 1 some run could not be "
                    "recovered, 2 bad input.")
    p.add_argument("--dry-run", action="store_true", help="report only; change nothing")
    add_catalog_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON list (for scripts)")
    p.set_defaults(func=run_repair)


def _show(r) -> None:
    counts = (f": {r.frames} frames, {r.fields} fields"
              if r.action in ("repaired", "would-repair") else "")
    print(f"{r.action:<14} {r.uid or '-'}{counts}")
    for note in r.notes:
        print(f"    {note}")


def run_repair(args: argparse.Namespace) -> int:
    from ..catalog import close_catalog, open_catalog, resolve_data_dir
    from ..repair import repair

    root = resolve_data_dir(args.data_dir)
    client = open_catalog(root, uri=args.catalog, api_key=args.api_key, create=False)
    try:
        results = repair(client, root, dry_run=args.dry_run,
                         on_result=None if args.json else _show)
    finally:
        close_catalog(client)
    if args.json:
        print(json.dumps([r.as_dict() for r in results]))
    elif not results:
        print("nothing to repair: every run in the catalog is closed", file=sys.stderr)
    return 1 if any(r.action == "unrecoverable" for r in results) else 0
