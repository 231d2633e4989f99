"""Benchmark: a whole mosaic on the simulated instrument into the embedded catalog.

Runs an R x C mosaic (SRS 2850 + 2930 + SHG per tile) through the beamline-style session
(RunEngine -> detector OME-TIFF files -> TiledWriter -> tiled/SQLite in a temporary data
directory) and prints, measured in this one run: wall time per tile for the first and the
last tenth of the tiles (their ratio shows whether writing grows with run length), the whole
run, the catalog search latency, and the ratio to the real instrument's time.

``--durability`` runs the same mosaic once per way of making finished tiles durable and prints
each one's time relative to the first (all measured in this one run, fresh data directory each):

- ``memory``: TiledWriter with default batching alone (a SIGKILL loses every tile);
- ``journal``: + the run journal, no fsync (survives SIGKILL, not a power loss);
- ``durable``: + fsync of every frame file and journal record (the default of the session);
- ``write-through``: TiledWriter(batch_size=1) instead of a journal (every document written to
  the catalog as it comes).

    .venv/bin/python benchmarks/bench_mosaic.py [--grid 10x10] [--pixels 512] [--durability]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="10x10")
    ap.add_argument("--pixels", type=int, default=512)
    ap.add_argument("--averages", type=int, default=1)
    ap.add_argument("--durability", action="store_true",
                    help="compare the ways of making finished tiles durable (module doc)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.durability:
        return durability(args)
    out = run_mosaic(args, "durable")
    if args.json:
        print(json.dumps(out))
        return
    first, last = out["tile_s_first_tenth"], out["tile_s_last_tenth"]
    print(f"{args.grid} mosaic, {args.pixels} px, {args.averages} average(s), into an embedded "
          "tiled/SQLite catalog")
    print(f"  run {out['run_s']:.1f} s ({out['tiles']} tiles); per tile: first tenth {first:.3f} "
          f"s, last tenth {last:.3f} s (ratio {out['growth_last_over_first']})")
    print(f"  real instrument ~{out['instrument_s_estimate']:.0f} s -> "
          f"{out['speedup_vs_instrument']}x; catalog open {out['catalog_open_s']:.1f} s, search "
          f"{out['search_s'] * 1000:.0f} ms")


MODES = ("memory", "journal", "durable", "write-through")


def durability(args) -> None:
    run_mosaic(args, "memory")  # warm-up: the first mosaic of a process pays the first renders
    results = {mode: run_mosaic(args, mode) for mode in MODES}
    base = results["memory"]["run_s"]
    for r in results.values():
        r["run_over_memory"] = round(r["run_s"] / base, 2)
    if args.json:
        print(json.dumps(results))
        return
    print(f"{args.grid} mosaic, {args.pixels} px: run time by durability mode (one run)")
    print(f"{'mode':<14} {'run s':>7} {'x memory':>9} {'s/tile first':>13} {'s/tile last':>12}")
    for mode, r in results.items():
        print(f"{mode:<14} {r['run_s']:>7.1f} {r['run_over_memory']:>9.2f} "
              f"{r['tile_s_first_tenth']:>13.3f} {r['tile_s_last_tenth']:>12.3f}")


def run_mosaic(args, mode: str) -> dict:
    """One mosaic in a fresh data directory with the durability ``mode`` (module doc)."""
    rows, cols = (int(v) for v in args.grid.lower().split("x"))

    import plans
    from srash_ophyd.catalog import make_writer, search_runs
    from srash_ophyd.session import make_session

    with tempfile.TemporaryDirectory(prefix="srash-bench-") as tmp:
        t0 = time.perf_counter()
        s = make_session(data_dir=tmp, progress=False, pixels=args.pixels,
                         averages=args.averages, durable=mode == "durable")
        if mode in ("memory", "write-through"):  # no journal in front of the writer
            s.RE.unsubscribe(s.tokens.pop("writer"))
            writer = s.writer if mode == "memory" else make_writer(s.catalog, batch_size=1)
            s.tokens["writer"] = s.RE.subscribe(writer)
        t_open = time.perf_counter() - t0
        stamps: list[float] = []

        def on_event(name, doc):
            if name == "event" and doc["data"].get("shift_index") == 1:
                stamps.append(time.perf_counter())

        token = s.RE.subscribe(on_event)
        fov = s.mic.sim.scanner.fov_um
        t_start = time.perf_counter()
        (uid,) = s.RE(plans.mosaic([s.mic], s.mic.raman, s.mic.xyz.x, s.mic.xyz.y, rows=rows,
                                   cols=cols, fov_um=fov, overlap=0.1,
                                   md=s.run_md(sample_id="BENCH")))
        t_run = time.perf_counter() - t_start
        s.RE.unsubscribe(token)
        t0 = time.perf_counter()
        found = list(search_runs(s.catalog, sample="BENCH"))
        t_search = time.perf_counter() - t0
        sim = s.mic.sim
        # instrument time per tile: two frames, the OPO tuning there and back, the stage step
        tune = 2 * (sim.pump.config.tune_settle_s + 5.05 / sim.pump.config.tune_rate_nm_per_s)
        move = fov * 0.9 / sim.stage.config.speed_um_s + sim.stage.config.settle_s
        instrument = rows * cols * (2 * sim.scanner.acquisition_time_s + tune + move)
        s.close()
    per_tile = [b - a for a, b in zip([t_start] + stamps[:-1], stamps)]
    k = max(1, len(per_tile) // 10)
    first, last = statistics.mean(per_tile[:k]), statistics.mean(per_tile[-k:])
    return {"mode": mode, "grid": args.grid, "pixels": args.pixels, "tiles": len(per_tile),
           "catalog_open_s": round(t_open, 2), "run_s": round(t_run, 2),
           "tile_s_first_tenth": round(first, 3), "tile_s_last_tenth": round(last, 3),
           "growth_last_over_first": round(last / first, 2),
           "search_s": round(t_search, 3), "runs_found": len(found),
           "instrument_s_estimate": round(instrument, 1),
           "speedup_vs_instrument": round(instrument / t_run, 1)}


if __name__ == "__main__":
    main()
