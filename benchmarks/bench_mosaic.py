"""Benchmark: a whole mosaic on the simulated instrument into the embedded catalog.

Runs an R x C mosaic (SRS 2850 + 2930 + SHG per tile) through the beamline-style session
(RunEngine -> detector OME-TIFF files -> TiledWriter -> tiled/SQLite in a temporary data
directory) and prints, measured in this one run: wall time per tile for the first and the
last tenth of the tiles (their ratio shows whether writing grows with run length), the whole
run, the catalog search latency, and the ratio to the real instrument's time.

    .venv/bin/python benchmarks/bench_mosaic.py [--grid 10x10] [--pixels 512]
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
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows, cols = (int(v) for v in args.grid.lower().split("x"))

    import plans
    from srash_ophyd.catalog import search_runs
    from srash_ophyd.session import make_session

    with tempfile.TemporaryDirectory(prefix="srash-bench-") as tmp:
        t0 = time.perf_counter()
        s = make_session(data_dir=tmp, progress=False, pixels=args.pixels,
                         averages=args.averages)
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
    out = {"grid": args.grid, "pixels": args.pixels, "tiles": len(per_tile),
           "catalog_open_s": round(t_open, 2), "run_s": round(t_run, 2),
           "tile_s_first_tenth": round(first, 3), "tile_s_last_tenth": round(last, 3),
           "growth_last_over_first": round(last / first, 2),
           "search_s": round(t_search, 3), "runs_found": len(found),
           "instrument_s_estimate": round(instrument, 1),
           "speedup_vs_instrument": round(instrument / t_run, 1)}
    if args.json:
        print(json.dumps(out))
        return
    print(f"{args.grid} mosaic, {args.pixels} px, {args.averages} average(s), into an embedded "
          "tiled/SQLite catalog")
    print(f"  run {t_run:.1f} s ({out['tiles']} tiles); per tile: first tenth {first:.3f} s, "
          f"last tenth {last:.3f} s (ratio {out['growth_last_over_first']})")
    print(f"  real instrument ~{instrument:.0f} s -> {out['speedup_vs_instrument']}x; catalog "
          f"open {t_open:.1f} s, search {t_search * 1000:.0f} ms")


if __name__ == "__main__":
    main()
