"""``srash classify RUN`` (after the fact) and ``srash classify-live`` (0MQ, during scans).

Both run :class:`ml.dx.live.LBNetDxCallback`, so a stored scan classified later gives
the numbers the live classifier gave; each writes an analysis run (``start["analysis"] ==
"lbnet-dx"``, ``start["scan_uid"]``) into the catalog. ``RUN`` -1 is the latest scan (analysis
runs are skipped), -2 the one before...
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .options import (
    ClassifyError,
    add_catalog_options,
    add_strict_option,
    add_task_option,
    add_weights_option,
    load_dx,
)

__all__ = ["ClassifyError", "add_parser", "load_dx", "resolve_scan", "run_classify",
           "run_classify_live"]


def _dx_options(p: argparse.ArgumentParser) -> None:
    m = p.add_argument_group("classifier")
    add_task_option(m, default=None,
                    help_default="the weights' task, else normal-vs-noa")
    add_weights_option(m)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "classify", help="LBNet-Dx diagnosis of a stored scan (analysis run into the catalog)",
        description="Classify every complete field of a stored SRASH scan with LBNet-Dx "
                    "(the same code as the live classifier), vote a sample diagnosis, and "
                    "write the result as an analysis run into the catalog.")
    p.add_argument("uid", help="scan uid (a unique prefix is enough), or -1 for the latest "
                               "scan (-2 the one before, ...)")
    _dx_options(p)
    add_catalog_options(p)
    o = p.add_argument_group("output")
    o.add_argument("--no-store", action="store_true",
                   help="print only; write no analysis run")
    o.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    add_strict_option(o)
    p.set_defaults(func=run_classify)

    q = sub.add_parser(
        "classify-live", help="classify scans as they stream in over 0MQ",
        description="Subscribe to a bluesky 0MQ proxy (msgpack documents; start one with "
                    "`bluesky-0MQ-proxy --in-address tcp://127.0.0.1:5577 --out-address "
                    "tcp://127.0.0.1:5578` and publish from the session with "
                    "srash_ophyd.transport.zmq_publisher) and classify each SRASH scan field by "
                    "field, writing an analysis run per scan into the catalog. Frame files "
                    "are read from the paths in the documents. Messages are decoded without "
                    "pickle (numeric arrays only); bad, unknown or over-size messages are "
                    "dropped with a warning and the consumer goes on.")
    q.add_argument("--address", default=None,
                   help="the proxy's output, HOST:PORT or tcp://HOST:PORT "
                        "(default localhost:5578)")
    q.add_argument("--max-message-mb", type=float, default=None, metavar="MIB",
                   help="largest message accepted, MiB (default 256); 0MQ refuses larger "
                        "ones by dropping the connection, which is re-made at once")
    q.add_argument("--once", action="store_true",
                   help="exit after the first scan's analysis ends")
    _dx_options(q)
    add_catalog_options(q)
    o = q.add_argument_group("output")
    o.add_argument("--no-store", action="store_true", help="write no analysis runs")
    o.add_argument("--json", action="store_true",
                   help="one JSON object per line and scan (for scripts)")
    q.set_defaults(func=run_classify_live)


# ---------------------------------------------------------------------------- helpers
def resolve_scan(client, uid: str):
    """The run ``uid`` (prefix) or, for ``-N``, the N-th latest run that is not an analysis
    run; :class:`~srash_ophyd.catalog.CatalogError` when there is none."""
    from ..catalog import CatalogError, get_run

    if not (uid.startswith("-") and uid[1:].isdigit()):
        run = get_run(client, uid)
        if run.metadata["start"].get("analysis"):
            start = run.metadata["start"]
            raise ClassifyError(f"run {uid!r} is a {start['analysis']} analysis run of scan "
                                f"{start.get('scan_uid')}; pass the scan's uid")
        return run
    want, n = int(uid[1:]), len(client)
    if want < 1:
        raise CatalogError(f"run {uid!r}: use -1 for the latest scan")
    seen = 0
    for k in range(1, n + 1):
        run = client[-k]
        if not run.metadata["start"].get("analysis"):
            seen += 1
            if seen == want:
                return run
    raise CatalogError(f"no run {uid!r} in the catalog ({seen} scans); `srash catalog "
                       "search` lists them")


def _open(args: argparse.Namespace):
    from ..catalog import open_catalog

    return open_catalog(args.data_dir, uri=args.catalog, api_key=args.api_key,
                        create=False)


def _fmt(p: Any) -> str:
    return "-" if p is None else " ".join(f"{v:.3f}" for v in p)


def _print_summary(s: dict[str, Any], stored: bool) -> None:
    names = s["class_names"]
    print(f"scan {s['scan_uid']}  sample {s.get('sample_id') or '-'}  task {s['task']}")
    print(f"{'field':>5} {'x_um':>10} {'y_um':>10} {'patches':>7}  "
          f"{'p(' + ', '.join(names) + ')':<24} label")
    for f in s["fields"]:
        print(f"{f['field_index']:>5} {f['x_um']:>10.1f} {f['y_um']:>10.1f} "
              f"{f['n_patches']:>7}  {_fmt(f['probabilities']):<24} {f['label']}")
    if s["skipped_fields"]:
        bad = s.get("unreadable_fields", 0)
        print(f"({s['skipped_fields']} fields skipped: {s['skipped_fields'] - bad} "
              f"incomplete, {bad} with unreadable frame files)")
    if s.get("scan_exit_status") not in (None, "success"):
        print(f"(the scan stopped early: exit status {s['scan_exit_status']}; its finished "
              "fields are classified)")
    print(f"diagnosis: {s['diagnosis']}  (p = {_fmt(s['probabilities'])}, "
          f"{s['n_patches']} patches in {s['n_fields']} fields)")
    if stored:
        print(f"analysis run {s['analysis_uid']}")


# ---------------------------------------------------------------------------- commands
def run_classify(args: argparse.Namespace) -> int:
    from ml.dx.live import classify_run
    from ml.io.frames import ReadFaults
    from ml.io.runstate import require_readable

    from ..catalog import close_catalog, make_analysis_writer

    dx = load_dx(args.weights, args.task)  # before the catalog: fail fast
    client = _open(args)
    try:
        run = resolve_scan(client, args.uid)
        require_readable(run)  # a killed scan's run: the repair hint, and nothing written
        publish = None if args.no_store else make_analysis_writer(client)
        cb = classify_run(run, dx, publish, faults=ReadFaults(args.strict))
    finally:
        close_catalog(client)
    if cb.error is not None:
        raise ClassifyError(f"classification of run {cb.scan_uid} failed: {cb.error}")
    s = cb.summary()
    if args.json:
        print(json.dumps(s))
    else:
        _print_summary(s, stored=not args.no_store)
    return 0


def run_classify_live(args: argparse.Namespace) -> int:
    import logging
    import math

    from ..catalog import close_catalog, make_analysis_writer, open_catalog
    from ..transport import (
        DEFAULT_MAX_MESSAGE_BYTES,
        DEFAULT_SUB_ADDRESS,
        ConsumerStats,
        parse_address,
        serve_live,
    )

    # settings first: nothing is loaded, opened or connected for a bad one
    address_arg = args.address or DEFAULT_SUB_ADDRESS
    address = parse_address(address_arg, what="--address")
    max_bytes = DEFAULT_MAX_MESSAGE_BYTES
    if args.max_message_mb is not None:
        mb = args.max_message_mb
        if not (math.isfinite(mb) and 0 < mb <= 65536):
            raise ClassifyError(f"--max-message-mb {mb:g} not allowed: must be > 0 and "
                                "<= 65536 (MiB)")
        max_bytes = max(1, math.ceil(mb * 2**20))
    dx = load_dx(args.weights, args.task)
    client = None if args.no_store else open_catalog(
        args.data_dir, uri=args.catalog, api_key=args.api_key, create=True)

    def show(s: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(s), flush=True)
        elif s["error"]:
            print(f"scan {s['scan_uid']}: classification failed: {s['error']}",
                  file=sys.stderr, flush=True)
        else:
            _print_summary(s, stored=client is not None)
            sys.stdout.flush()

    # one "srash classify-live: warning: ..." line per dropped message, on stderr
    tlog = logging.getLogger("srash.transport")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("srash classify-live: warning: %(message)s"))
    tlog.addHandler(handler)
    propagate, tlog.propagate = tlog.propagate, False
    stats = ConsumerStats()
    try:
        publish = make_analysis_writer(client) if client is not None else None
        if not args.json:
            print(f"listening on {address} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        results = serve_live(address_arg, dx, publish, once=args.once, on_result=show,
                             max_message_bytes=max_bytes, stats=stats, what="--address")
    finally:
        tlog.removeHandler(handler)
        tlog.propagate = propagate
        if stats.n_dropped or stats.disconnects:
            print(f"srash classify-live: {stats.describe()}", file=sys.stderr, flush=True)
        if client is not None:
            close_catalog(client)
    return 1 if any(r["error"] for r in results) else 0
