"""Benchmark: synthesize physics-complete 1200 x 1200 SRASH fields (2 Raman channels + SHG,
3 averages) and compare with the real instrument's time for the same field.

Prints, measured in this one run: seconds per field (median of a warm series), the ratio
real-instrument time / simulation time, and resident memory over 100 sequential fields at
new stage positions (a 10 x 10 mosaic walk, so no rendering cache helps). Not a test: the
numbers go into docs/benchmarks.md by hand.

    .venv/bin/python benchmarks/bench_field.py [--fields 100] [--phenotype normal]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from simulators.instrument import build_simulator
from simulators.specimens import make_specimen


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fields", type=int, default=100)
    ap.add_argument("--phenotype", default="normal")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    spec = make_specimen("testis", 3, phenotype=args.phenotype)
    x0, x1, y0, y1 = spec.extent_um
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    sim = build_simulator(spec, x_um=cx, y_um=cy)
    rng = np.random.default_rng(0)
    step = 360.0 * 0.9  # 10 % overlap
    times, rss = [], []
    instrument = None
    rss0 = rss_mb()
    for i in range(args.fields):
        r, c = divmod(i, 10)
        sim.stage.move(rng, x=cx + (c - 5) * step, y=cy + (r - 5) * step)
        t0 = time.perf_counter()
        f = sim.field(rng)
        times.append(time.perf_counter() - t0)
        instrument = f.instrument_time_s
        rss.append(rss_mb())
        del f
    warm = times[2:] if len(times) > 4 else times
    med = statistics.median(warm)
    out = {
        "fields": args.fields,
        "sim_s_per_field_median": round(med, 4),
        "sim_s_per_field_p90": round(float(np.percentile(warm, 90)), 4),
        "instrument_s_per_field": round(instrument, 2),
        "speedup_vs_instrument": round(instrument / med, 1),
        "rss_mb_start": round(rss0, 1),
        "rss_mb_after_10": round(rss[min(9, len(rss) - 1)], 1),
        "rss_mb_peak": round(max(rss), 1),
        "rss_mb_end": round(rss[-1], 1),
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"one 1200x1200 SRASH field (SRS 2850 + 2930 + SHG, 3 averages), testis {args.phenotype}")
    print(f"  simulation: {med:.3f} s/field median, {out['sim_s_per_field_p90']:.3f} s p90 "
          f"over {len(warm)} warm fields")
    print(f"  real instrument: {instrument:.1f} s/field -> {out['speedup_vs_instrument']:.0f}x "
          "faster than the instrument")
    print(f"  resident memory: start {rss0:.0f} MB, "
          f"after 10 fields {out['rss_mb_after_10']:.0f} MB,"
          f" peak {out['rss_mb_peak']:.0f} MB, end {out['rss_mb_end']:.0f} MB "
          f"(growth 10->{args.fields}: {out['rss_mb_end'] - out['rss_mb_after_10']:+.0f} MB)")


if __name__ == "__main__":
    main()
