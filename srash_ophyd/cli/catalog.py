"""``srash catalog search|show|export``: find runs and get images out of the catalog.

Reading never creates a catalog: a data directory without one is an error (exit 2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from ml.io.runstate import run_state

from ..catalog import get_run
from ..display import escape_control
from . import repair, serve
from .options import CLIError, add_catalog_options, add_strict_option

__all__ = ["add_parser", "run_summary"]


def _common(p: argparse.ArgumentParser) -> None:
    add_catalog_options(p)
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("catalog", help="search, inspect and export runs in the catalog",
                       description="Search, inspect and export runs of the run catalog.")
    ss = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    s = ss.add_parser("search", help="list runs matching metadata",
                      description="List runs (oldest first) whose start document matches "
                                  "every given criterion (all of them: AND). Metadata options "
                                  "are exact matches; --text finds words anywhere in a "
                                  "run's metadata.")
    s.add_argument("--sample", default=None, help="sample_id")
    s.add_argument("--patient", default=None, help="patient_id")
    s.add_argument("--diagnosis", default=None, help="diagnosis (normal, NOA)")
    s.add_argument("--phenotype", default=None, help="phenotype (normal, NOA-SPT, ...)")
    s.add_argument("--plan", default=None, help="plan_name (e.g. mosaic)")
    s.add_argument("--cohort", default=None, help="cohort (as given to `srash cohort --name`)")
    s.add_argument("--split", default=None, help="split (train, test, other)")
    s.add_argument("--text", default=None, metavar="WORDS",
                   help="free text: runs whose metadata contain every word, whole words, "
                        "case-insensitive (e.g. --text S-001; hyphens, dots and "
                        "underscores stay inside a word, other punctuation separates words)")
    s.add_argument("--since", default=None,
                   help="runs started at or after: 2025-01-31, 2025-01-31T14:00 or an age "
                        "such as 3d, 12h, 30m")
    s.add_argument("--limit", type=int, default=200, help="at most this many (newest; 200)")
    _common(s)
    s.set_defaults(func=run_search)
    sh = ss.add_parser("show", help="metadata, streams and files of one run",
                       description="Summarise one run: metadata, streams, events, files.")
    sh.add_argument("uid", help="run uid (a unique prefix of >= 5 characters is enough), or "
                                "-1 for the latest")
    _common(sh)
    sh.set_defaults(func=run_show)
    ex = ss.add_parser(
        "export", help="OME-TIFF per tile and a stitched mosaic (OME-TIFF + PNG)",
        description="Rebuild each SRASH tile (SRS_2850, SRS_2930, SHG) from the run's "
                    "events and write tile_NNN.ome.tif, plus mosaic.ome.tif (tiles placed by "
                    "stage coordinates, overlaps blended by linear feathering; a tiled, "
                    "zlib-compressed pyramid above 2048 px) and mosaic.png (R=2930, G=2850, "
                    "B=SHG). The files: docs/files.md.")
    ex.add_argument("uid", help="run uid (a unique prefix is enough), or -1 for the latest")
    ex.add_argument("--out", type=Path, required=True, help="output folder")
    ex.add_argument("--no-mosaic", action="store_true", help="tiles only")
    add_strict_option(ex)
    _common(ex)
    ex.set_defaults(func=run_export)
    repair.add_parser(ss)
    serve.add_init_parser(ss)


def _open(args):
    from ..catalog import open_catalog

    return open_catalog(args.data_dir, uri=args.catalog, api_key=args.api_key, create=False)


def _when(t: float | None) -> str:
    if t is None:
        return ""
    return dt.datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds")


def run_summary(run) -> dict[str, Any]:
    """The row of ``srash catalog search`` for one run."""
    md = run.metadata
    start, stop = md.get("start") or {}, md.get("stop") or {}
    return {"uid": start.get("uid"), "scan_id": start.get("scan_id"),
            "time": start.get("time"), "time_iso": _when(start.get("time")),
            "plan": start.get("plan_name"), "sample": start.get("sample_id"),
            "patient": start.get("patient_id"), "diagnosis": start.get("diagnosis"),
            "phenotype": start.get("phenotype"), "cohort": start.get("cohort"),
            "split": start.get("split"), "shape": start.get("shape"),
            "exit_status": stop.get("exit_status") if stop else None,
            "state": run_state(md).kind,
            "num_events": (stop or {}).get("num_events", {})}


def run_search(args: argparse.Namespace) -> int:
    from ..catalog import check_criteria, close_catalog, search_runs

    criteria = dict(sample=args.sample, patient=args.patient, diagnosis=args.diagnosis,
                    phenotype=args.phenotype, plan=args.plan, cohort=args.cohort,
                    split=args.split, since=args.since, text=args.text)
    check_criteria(**criteria)  # validate before opening anything
    if args.limit < 1:
        raise CLIError(f"--limit {args.limit} not allowed: must be >= 1")
    client = _open(args)
    try:
        results = search_runs(client, **criteria)
        n = len(results)
        runs = list(results.values()[max(n - args.limit, 0):]) if n else []
        rows = [run_summary(r) for r in runs]
    finally:
        close_catalog(client)
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print("no matching runs", file=sys.stderr)
        return 0
    cols = [("uid", 8), ("scan_id", 5), ("time_iso", 19), ("plan", 10), ("sample", 10),
            ("patient", 10), ("diagnosis", 9), ("shape", 7), ("state", 9)]
    heads = {"time_iso": "time", "exit_status": "exit", "scan_id": "scan"}
    print("  ".join(f"{heads.get(c, c):<{w}}" for c, w in cols))
    for r in rows:
        cells = []
        for c, w in cols:
            v = r.get(c)
            v = "x".join(map(str, v)) if c == "shape" and v else ("" if v is None else str(v))
            v = escape_control(v)
            cells.append(f"{v[:w] if c == 'uid' else v:<{w}}")
        print("  ".join(cells).rstrip())
    if n > len(rows):
        print(f"({n - len(rows)} older runs not shown; --limit)", file=sys.stderr)
    return 0


def _files(stream) -> list[str]:
    out = []
    for key in stream:
        try:
            node = stream[key]
            sources = node.data_sources() or []
        except Exception:  # columns of the internal table have no external files
            continue
        for src in sources:
            for asset in getattr(src, "assets", []) or []:
                uri = getattr(asset, "data_uri", "")
                if uri.startswith("file:"):
                    out.append(uri)
    return out


def run_show(args: argparse.Namespace) -> int:
    from ..catalog import close_catalog

    client = _open(args)
    try:
        run = get_run(client, args.uid)
        info = run_summary(run)
        start = run.metadata.get("start") or {}
        info["stop_reason"] = (run.metadata.get("stop") or {}).get("reason") or None
        info["metadata"] = {k: start[k] for k in (
            "specimen", "specimen_seed", "noise_seed", "extents", "snaking", "num_points",
            "scan_id", "overlap", "fov_um") if k in start}
        streams = {}
        for name in run:
            st = run[name]
            dk = st.metadata.get("data_keys", {})
            streams[name] = {"events": info["num_events"].get(name),
                             "data_keys": sorted(dk),
                             "files": _files(st)}
        info["streams"] = streams
    finally:
        close_catalog(client)
    if args.json:
        print(json.dumps(info, default=str))
        return 0
    e = escape_control
    print(f"run {e(info['uid'])}  ({info['time_iso']})")
    for k in ("plan", "sample", "patient", "phenotype", "diagnosis", "shape", "exit_status",
              "state"):
        print(f"  {k:<12} {'' if info[k] is None else e(info[k])}")
    if info["state"] == "open":
        print("  (no stop document: the scan is still running, or its process was killed and "
              "its tiles are not in the catalog yet; `srash catalog repair` recovers them)")
    if info["stop_reason"]:
        print(f"  {'reason':<12} {e(info['stop_reason'])}")
    for k, v in info["metadata"].items():
        print(f"  {k:<12} {e(v)}")
    for name, s in streams.items():
        events = "no" if s["events"] is None else s["events"]
        print(f"stream {e(name)}: {events} events, {len(s['data_keys'])} data keys, "
              f"{len(s['files'])} file locations")
        for f in s["files"][:5]:
            print(f"    {e(f)}")
        if len(s["files"]) > 5:
            print(f"    ... {len(s['files']) - 5} more")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ml.io.frames import ReadFaults
    from ml.io.runstate import require_readable
    from ml.io.stitch import export_run

    from ..catalog import close_catalog

    faults = ReadFaults(args.strict)
    client = _open(args)
    try:
        run = get_run(client, args.uid)
        require_readable(run)  # a killed scan's run: the repair hint, not a KeyError
        summary = export_run(run, args.out, mosaic=not args.no_mosaic, faults=faults)
    finally:
        close_catalog(client)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"run {summary['uid']}: {len(summary['tiles'])} tiles -> {summary['out']}")
    if summary["state"] != "complete":
        print(f"the run is {summary['state']}" + (f" ({summary['stop_reason']})"
                                                   if summary["stop_reason"] else ""))
    bad = sum("paths" in s for s in summary["skipped"])
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} fields ({len(summary['skipped']) - bad} "
              f"incomplete, {bad} with unreadable frame files)")
    for k in ("mosaic", "png"):
        if summary.get(k):
            levels = summary.get("mosaic_levels", 1) if k == "mosaic" else 1
            print(f"wrote {summary[k]}" + (f" ({levels} resolution levels)" if levels > 1
                                           else ""))
    return 0
