"""``srash scan``: a tiled SRASH mosaic on the simulated instrument into the catalog.

Overlap is given in **percent** of the field of view (``--overlap 10`` or ``--overlap 10%``;
0 <= overlap < 100); the plan receives the fraction. Tile centres lie on a rows x columns
grid around ``--x-um/--y-um`` with pitch ``fov * (1 - overlap)``, visited in snake order.

Exit status: 0 done; 2 bad input or catalog problem (nothing acquired); 1 the scan failed on
a device fault (finished tiles stay in the catalog, stop document ``exit_status "fail"``);
130 interrupted with Ctrl-C, 143 / 129 ended by SIGTERM / SIGHUP (finished tiles kept,
``exit_status "abort"``, the reason says which). After SIGKILL or a power loss, ``srash catalog
repair`` recovers the finished tiles from the run's journal.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from plans.contract import DEFAULT_SHIFTS_CM1, PHENOTYPES
from simulators.errors import SettingsError
from simulators.specimens import SPECIMEN_KINDS

from .closedloop import add_loop_options
from .options import add_catalog_options, parse_floats, parse_grid, parse_overlap

__all__ = ["add_parser", "mosaic_geometry", "parse_grid", "parse_overlap", "run_scan"]

SHIFTS = DEFAULT_SHIFTS_CM1

log = logging.getLogger("srash.cli.scan")


def mosaic_geometry(rows: int, cols: int, fov_um: float, overlap: float,
                    center_um: tuple[float, float], snake: bool = True) -> list[dict[str, Any]]:
    """Tile centres in acquisition order, ``[{"index", "row", "col", "x_um", "y_um"}]``,
    exactly as :func:`plans.mosaic` visits them (:func:`plans.tile_grid`): pitch
    ``fov_um * (1 - overlap)`` around ``center_um``, snake order, index ``row * cols + col``.
    """
    from plans import tile_grid

    grid = tile_grid(rows=rows, cols=cols, fov_um=fov_um, overlap=overlap,
                     center_um=center_um, snake=snake)
    out = []
    for r, c in grid.order:
        x, y = grid.position(r, c)
        out.append({"index": grid.index(r, c), "row": r, "col": c, "x_um": x, "y_um": y})
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scan", help="acquire a tiled SRASH mosaic into the catalog",
        description="Run a rows x columns mosaic on the simulated microscope: at every tile "
                    "the stage moves, the pump tunes to each Raman shift (SRS) and SHG is "
                    "recorded; frames are OME-TIFF files under DATA_DIR/frames and the run "
                    "goes into the catalog (embedded in DATA_DIR, or --catalog URL) with "
                    "the next scan id of DATA_DIR (counted in DATA_DIR/.srash/re-md across "
                    "commands and sessions). "
                    "Exit status: 0 done, 1 device fault (finished tiles kept), 2 bad input, "
                    "130 interrupted, 143/129 SIGTERM/SIGHUP (finished tiles kept; after a "
                    "SIGKILL `srash catalog repair` recovers them).")
    s = p.add_argument_group("sample")
    s.add_argument("--sample", default=None, help="sample identifier (start.sample_id)")
    s.add_argument("--patient", default=None, help="patient identifier (start.patient_id)")
    s.add_argument("--specimen", choices=SPECIMEN_KINDS, default="testis",
                   help="simulated specimen (default: testis)")
    s.add_argument("--phenotype", choices=PHENOTYPES, default=None,
                   help="testis phenotype (default normal); diagnosis 'normal' or 'NOA'")
    s.add_argument("--seed", type=int, default=0, help="specimen seed (default 0)")
    s.add_argument("--noise-seed", type=int, default=0, help="detector noise seed (default 0)")
    g = p.add_argument_group("mosaic")
    g.add_argument("--grid", default="3x3", help="ROWSxCOLS (default 3x3)")
    g.add_argument("--overlap", default="10",
                   help="overlap of neighbouring tiles in percent of the FOV, 0 <= o < 100 "
                        "(default 10)")
    g.add_argument("--no-snake", action="store_true", help="every row left to right")
    g.add_argument("--x-um", type=float, default=None,
                   help="mosaic centre x (stage um; default: a specimen-chosen field)")
    g.add_argument("--y-um", type=float, default=None, help="mosaic centre y (stage um)")
    g.add_argument("--fov-um", type=float, default=360.0, help="field of view (um, 360)")
    g.add_argument("--pixels", type=int, default=512, help="pixels per side (default 512)")
    g.add_argument("--dwell-us", type=float, default=10.0, help="pixel dwell (us, default 10)")
    g.add_argument("--averages", type=int, default=1, help="frame averages (default 1)")
    g.add_argument("--shifts", type=parse_floats, default=list(SHIFTS),
                   help="Raman shifts in cm^-1 (default 2850,2930)")
    g.add_argument("--time-scale", type=float, default=0.0,
                   help="run the simulation at this multiple of real instrument time, "
                        "0..10 (default 0 = as fast as possible; 1 = real time)")
    e = p.add_argument_group("control")
    e.add_argument("--control", choices=("sim", "epics"), default="sim",
                   help="sim: the simulators in this process (default); epics: Channel "
                        "Access to `srash ioc` (its specimen and seeds are used)")
    e.add_argument("--prefix", default="SRASH:", help="the IOC's PV prefix (--control epics)")
    add_catalog_options(p)
    add_loop_options(p, flag="--until-confident", weights=True)
    o = p.add_argument_group("output")
    o.add_argument("--dry-run", action="store_true",
                   help="print tile count, positions and the estimated instrument time; "
                        "acquire nothing, touch no catalog")
    o.add_argument("--png", type=Path, default=None, help="with --dry-run: tile layout PNG")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    o.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    p.set_defaults(func=run_scan)


# ---------------------------------------------------------------------------- planning
def _plan_request(args: argparse.Namespace) -> dict[str, Any]:
    """Validate every input and compute the geometry before anything is created."""
    from simulators.instrument import build_simulator
    from simulators.specimens import make_specimen

    from ..devices._sim import check_time_scale
    if args.phenotype is not None and args.specimen != "testis":
        raise SettingsError(f"--phenotype applies to --specimen testis only, not {args.specimen}")
    rows, cols = parse_grid(args.grid)
    overlap = parse_overlap(args.overlap)
    if not args.dwell_us > 0:
        raise SettingsError(f"--dwell-us {args.dwell_us:g} not allowed: must be > 0")
    try:
        check_time_scale(args.time_scale)
    except ValueError as exc:
        raise SettingsError(str(exc).replace("time_scale", "--time-scale", 1)) from None
    spec = make_specimen(args.specimen, args.seed, phenotype=args.phenotype)
    cx, cy = args.x_um, args.y_um
    if cx is None or cy is None:
        dx, dy = spec.default_center_um()
        cx = dx if cx is None else cx
        cy = dy if cy is None else cy
    # range-checks pixels, fov, dwell, averages (raises SettingsError)
    sim = build_simulator(spec, pixels=args.pixels, fov_um=args.fov_um,
                          dwell_s=args.dwell_us * 1e-6, averages=args.averages, x_um=0.0,
                          y_um=0.0)
    tiles = mosaic_geometry(rows, cols, args.fov_um, overlap, (cx, cy), snake=not args.no_snake)
    half = args.fov_um / 2
    for ax, key in (("x", "x_um"), ("y", "y_um")):
        lo, hi = sim.stage.config.limits(ax)
        vals = [t[key] for t in tiles]
        if min(vals) - half < lo or max(vals) + half > hi:
            raise SettingsError(
                f"mosaic {rows}x{cols} of {args.fov_um:g} um fields spans {ax} "
                f"{min(vals) - half:.0f}..{max(vals) + half:.0f} um, outside the stage "
                f"limits {lo:g}..{hi:g} um; use a smaller grid or field")
    est = _estimate_time(sim, tiles, args.shifts)
    disk = estimate_disk(len(tiles) * len(args.shifts), args.pixels, args.data_dir)
    return {"rows": rows, "cols": cols, "overlap": overlap, "center_um": (cx, cy),
            "tiles": tiles, "estimate": est, "pixel_um": args.fov_um / args.pixels,
            "disk": disk}


#: bytes a frame file has beyond its pixels (OME-XML with the settings JSON, TIFF tags)
FRAME_OVERHEAD_BYTES = 64 * 1024
#: free space left over after a scan's estimated needs (catalog, journal, the system)
DISK_MARGIN_BYTES = 256 * 1024 ** 2


def estimate_disk(frames: int, pixels: int, data_dir: Any) -> dict[str, Any]:
    """Bytes the frames of a scan need (2 float32 channels per frame plus the OME header)
    and the free bytes on the file system of the data directory (its nearest existing
    parent when it does not exist yet)."""
    import shutil

    from ..catalog import resolve_data_dir

    need = int(frames) * (2 * 4 * int(pixels) ** 2 + FRAME_OVERHEAD_BYTES)
    where = resolve_data_dir(data_dir).absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    return {"bytes": need, "free_bytes": int(shutil.disk_usage(where).free),
            "filesystem_of": str(where)}


def check_disk(disk: dict[str, Any]) -> None:
    """:class:`SettingsError` when the scan would not fit on the disk (with a margin)."""
    if disk["bytes"] + DISK_MARGIN_BYTES > disk["free_bytes"]:
        raise SettingsError(
            f"the scan needs about {_size(disk['bytes'])} for its frames but only "
            f"{_size(disk['free_bytes'])} are free on the file system of "
            f"{disk['filesystem_of']} ({_size(DISK_MARGIN_BYTES)} kept free); free some "
            "space, use another --data-dir, or scan fewer tiles or pixels")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _estimate_time(sim, tiles: list[dict], shifts: list[float]) -> dict[str, float]:
    """Real-instrument time: stage moves (speed + settle), pump tuning, rasters."""
    from simulators.spectra import pump_nm_for_shift

    stage, pump, scanner = sim.stage, sim.pump, sim.scanner
    pos = dict(stage.position)
    lam = pump.wavelength_nm
    t = {"move_s": 0.0, "tune_s": 0.0, "scan_s": 0.0}
    for tile in tiles:
        stage.position.update(pos)  # a throw-away simulator: its state may change
        t["move_s"] += stage.move_time_s(x=tile["x_um"], y=tile["y_um"])
        pos = {"x": tile["x_um"], "y": tile["y_um"]}
        for shift in shifts:
            new = float(pump_nm_for_shift(shift, sim.stokes.wavelength_nm))
            if new != lam:
                pump.wavelength_nm = lam
                t["tune_s"] += pump.tune_time_s(new)
                lam = new
            t["scan_s"] += scanner.acquisition_time_s
    t["total_s"] = sum(t.values())
    return t


def _layout_png(path: Path, req: dict, fov_um: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    tiles = req["tiles"]
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    half = fov_um / 2
    for k, t in enumerate(tiles):
        ax.add_patch(Rectangle((t["x_um"] - half, t["y_um"] - half), fov_um, fov_um,
                               fill=True, alpha=0.15, edgecolor="k", facecolor="tab:blue"))
        ax.text(t["x_um"], t["y_um"], str(k), ha="center", va="center", fontsize=9)
    xs = [t["x_um"] for t in tiles]
    ys = [t["y_um"] for t in tiles]
    ax.plot(xs, ys, "-", color="tab:red", lw=1, alpha=0.7)
    ax.set_xlim(min(xs) - half * 1.1, max(xs) + half * 1.1)
    ax.set_ylim(max(ys) + half * 1.1, min(ys) - half * 1.1)  # image convention: +y down
    ax.set_aspect("equal")
    ax.set_xlabel("stage x (um)")
    ax.set_ylabel("stage y (um)")
    ax.set_title(f"{req['rows']}x{req['cols']} tiles, {req['overlap'] * 100:g}% overlap, "
                 "acquisition order")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _dry_run(args: argparse.Namespace, req: dict) -> int:
    est = req["estimate"]
    summary = {"dry_run": True, "tiles": len(req["tiles"]), "rows": req["rows"],
               "cols": req["cols"], "overlap": req["overlap"], "fov_um": args.fov_um,
               "pixel_size_um": req["pixel_um"], "center_um": list(req["center_um"]),
               "frames": len(req["tiles"]) * len(args.shifts),
               "positions_um": [[round(t["x_um"], 3), round(t["y_um"], 3)] for t in req["tiles"]],
               "estimated_instrument_time_s": round(est["total_s"], 3),
               "estimated_breakdown_s": {k: round(v, 3) for k, v in est.items() if k != "total_s"},
               "estimated_disk_bytes": req["disk"]["bytes"],
               "free_disk_bytes": req["disk"]["free_bytes"],
               "fits_on_disk": req["disk"]["bytes"] + DISK_MARGIN_BYTES
               <= req["disk"]["free_bytes"],
               "png": None}
    if args.png is not None:
        summary["png"] = str(_layout_png(args.png, req, args.fov_um))
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{summary['tiles']} tiles ({req['rows']}x{req['cols']}), "
          f"{summary['frames']} frames, {args.fov_um:g} um fields at "
          f"{req['pixel_um']:.3f} um/px, {req['overlap'] * 100:g}% overlap")
    print(f"{'tile':>4} {'row':>4} {'col':>4} {'x_um':>12} {'y_um':>12}")
    for k, t in enumerate(req["tiles"]):
        print(f"{k:>4} {t['row']:>4} {t['col']:>4} {t['x_um']:>12.2f} {t['y_um']:>12.2f}")
    b = summary["estimated_breakdown_s"]
    print(f"estimated real-instrument time: {_hms(est['total_s'])} (moves {b['move_s']:.1f} s, "
          f"tuning {b['tune_s']:.1f} s, rasters {b['scan_s']:.1f} s)")
    disk = req["disk"]
    print(f"disk: about {_size(disk['bytes'])} of frames; {_size(disk['free_bytes'])} free "
          f"on the file system of {disk['filesystem_of']}"
          + ("" if summary["fits_on_disk"] else "  -- NOT ENOUGH: the scan would be refused"))
    if summary["png"]:
        print(f"wrote {summary['png']}")
    print("dry run: nothing acquired")
    return 0


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f} s"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{sec:02d}"


# ---------------------------------------------------------------------------- running
def run_scan(args: argparse.Namespace) -> int:
    if args.closed_loop and args.control != "sim":
        raise SettingsError("--until-confident runs with --control sim only for now (its "
                            "instrument clock reads the simulator in this process)")
    if args.control == "epics":  # the IOC's specimen and seeds (geometry, metadata)
        from ..devices.epics import read_ioc_info

        info = read_ioc_info(args.prefix)
        args.specimen, args.phenotype = info["specimen"], info.get("phenotype")
        args.seed, args.noise_seed = int(info["seed"]), int(info["noise_seed"])
    req = _plan_request(args)
    if args.dry_run:
        return _dry_run(args, req)
    if args.png is not None:
        raise SettingsError("--png draws the tile layout of --dry-run; use `srash catalog "
                            "export` for images of an acquired mosaic")
    check_disk(req["disk"])
    from ..session import make_session

    cx, cy = req["center_um"]
    t0 = time.perf_counter()
    session = make_session(
        data_dir=args.data_dir, catalog_uri=args.catalog, api_key=args.api_key,
        specimen=args.specimen, phenotype=args.phenotype, seed=args.seed,
        noise_seed=args.noise_seed, progress=not args.quiet, pixels=args.pixels,
        fov_um=args.fov_um, dwell_s=args.dwell_us * 1e-6, averages=args.averages,
        x_um=cx, y_um=cy, time_scale=args.time_scale, control=args.control,
        prefix=args.prefix)
    seen: dict[str, Any] = {"uid": None, "scan_id": None, "events": 0, "stop": None}

    def track(name: str, doc: dict) -> None:
        if name == "start":
            seen["uid"] = doc["uid"]
            seen["scan_id"] = doc.get("scan_id")
            log.info("run %s (scan %s) started: %dx%d tiles", doc["uid"], doc.get("scan_id"),
                     req["rows"], req["cols"])
        elif name == "event":
            seen["events"] += 1
            log.debug("event %d of run %s", seen["events"], seen["uid"])
        elif name == "stop":
            seen["stop"] = doc
            log.info("run %s stopped: %s", doc.get("run_start"), doc.get("exit_status"))

    token = session.RE.subscribe(track)
    md = session.run_md(sample_id=args.sample, patient_id=args.patient)
    mic = session.mic
    status, message, loop = 0, None, None
    try:
        if args.closed_loop:  # --until-confident: survey + closed loop (issue 18)
            from .closedloop import scan_until_confident

            loop = scan_until_confident(args, session, req, md)
            status, message = loop["exit_code"], loop["message"]
        else:
            plan = session.plans.mosaic(
                [mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=req["rows"], cols=req["cols"],
                fov_um=args.fov_um, overlap=req["overlap"], center_um=(cx, cy),
                snake=not args.no_snake, shifts_cm1=tuple(args.shifts), md=md)
            outcome = session.run(plan)
            status, message = outcome.code, outcome.message
    finally:
        session.RE.unsubscribe(token)
        session.close()
    elapsed = time.perf_counter() - t0
    n_shift = max(len(args.shifts), 1)
    stop = seen["stop"] or {}
    summary = {"uid": seen["uid"], "scan_id": seen["scan_id"],
               "exit_status": stop.get("exit_status"),
               "reason": stop.get("reason") or None, "tiles": len(req["tiles"]),
               "tiles_done": seen["events"] // n_shift, "frames": seen["events"],
               "elapsed_s": round(elapsed, 3),
               "estimated_instrument_time_s": round(req["estimate"]["total_s"], 3),
               "data_dir": str(session.data_dir), "catalog": args.catalog or str(
                   session.data_dir), "sample_id": args.sample, "patient_id": args.patient,
               "phenotype": md.get("phenotype"), "diagnosis": md.get("diagnosis")}
    if loop is not None:
        from .closedloop import scan_keys

        summary.update(scan_keys(loop, n_shift))
    if status:
        done = (f"{summary['tiles_done']} of {summary['tiles']} tiles finished and kept in "
                f"the catalog as run {summary['uid']} (exit status "
                f"{summary['exit_status']})" if summary["uid"] else
                "no run was started, nothing acquired")
        if summary["uid"] and session.journal.pending(summary["uid"]):
            repair, hint = "srash catalog repair", "mend the cause"
            if args.catalog:  # a served catalog: it stopped answering, or refused a write
                repair += f" --data-dir {session.data_dir} --catalog {args.catalog}"
                message = f"the catalog at {args.catalog} failed ({message})"
                hint = "mend the cause (is the server running?)"
            done = (f"the catalog did not take run {summary['uid']}; its "
                    f"{summary['tiles_done']} finished tiles are safe in its journal: "
                    f"{hint}, then run `{repair}`")
        what = ("scan interrupted" if status == 130 else f"scan {message}" if status > 128
                else f"scan failed: {message}")
        print(f"srash: {what}; {done}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    elif not status:
        print(f"run {summary['uid']} (scan {summary['scan_id']}): {summary['tiles_done']} "
              f"tiles ({summary['frames']} frames) in {summary['elapsed_s']:.1f} s "
              f"(real instrument ~{_hms(summary['estimated_instrument_time_s'])})")
        print(f"catalog: {summary['catalog']}")
        if loop is not None:
            print(f"closed loop: {loop['diagnosis']} (stop: {loop['stop_reason']}) after "
                  f"{len(loop['fields'])} fields; real instrument "
                  f"{_hms(loop['instrument_time_s'])} with the survey")
    return status

