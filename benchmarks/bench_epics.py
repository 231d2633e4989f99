"""Benchmark: the Channel Access overhead -- the same mosaic in process and over CA.

Starts ``srash ioc`` as a subprocess on loopback (free ports, caproto's environment
variables), builds the in-process microscope and the EPICS microscope with the same seeds
and scan settings, and runs an R x C mosaic (SRS 2850 + 2930 + SHG per tile) on each with a
bare RunEngine (no catalog: the devices' cost only), interleaved ``--runs`` times. Prints
the median wall time per tile of each and their ratio (CA / in process), measured in this
one run. Not a test: the numbers go into docs/benchmarks.md by hand.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_epics.py [--grid 3x3] [--pixels 128]
        [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="3x3", help="ROWSxCOLS (default 3x3)")
    ap.add_argument("--pixels", type=int, default=128, help="pixels per side (default 128)")
    ap.add_argument("--fov-um", type=float, default=120.0)
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs of each (default 3)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows, cols = (int(v) for v in args.grid.lower().split("x"))
    env = {"EPICS_CA_AUTO_ADDR_LIST": "NO", "EPICS_CA_ADDR_LIST": "127.0.0.1",
           "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1", "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
           "EPICS_CAS_BEACON_ADDR_LIST": "127.0.0.1",
           "EPICS_CA_SERVER_PORT": str(_free_port(socket.SOCK_STREAM)),
           "EPICS_CA_REPEATER_PORT": str(_free_port(socket.SOCK_DGRAM))}
    env["EPICS_CAS_BEACON_PORT"] = env["EPICS_CA_REPEATER_PORT"]
    os.environ.update(env)
    prefix = "SRBENCH:"
    scan = {"pixels": args.pixels, "fov_um": args.fov_um, "averages": 1, "dwell_s": 10e-6}
    log = open(tempfile.mktemp(suffix="-ioc.log"), "w")  # noqa: SIM115 - kept for the run
    ioc = subprocess.Popen(
        [sys.executable, "-m", "srash_ophyd.cli", "ioc", "--prefix", prefix, "--seed", "3",
         "--noise-seed", "5", "--pixels", str(args.pixels), "--fov-um", str(args.fov_um)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log,
        stderr=subprocess.STDOUT)
    try:
        from bluesky import RunEngine

        import plans
        from srash_ophyd.devices.epics import read_ioc_info
        from srash_ophyd.devices.factory import make_microscope

        deadline = time.monotonic() + 300
        while True:
            try:
                read_ioc_info(prefix, timeout=2.0)
                break
            except Exception:  # noqa: BLE001 - not serving yet
                if time.monotonic() > deadline or ioc.poll() is not None:
                    raise
        tmp = Path(tempfile.mkdtemp(prefix="bench-epics-"))
        mics = {"in process": make_microscope("testis", seed=3, noise_seed=5,
                                              data_dir=tmp / "local", x_um=0.0, y_um=0.0,
                                              **scan),
                "over CA": make_microscope(control="epics", prefix=prefix,
                                           data_dir=tmp / "ca", connect_timeout_s=60, **scan)}
        times: dict[str, list[float]] = {k: [] for k in mics}
        for _ in range(args.runs):
            for label, mic in mics.items():
                RE = RunEngine({})
                plan = plans.mosaic([mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=rows,
                                    cols=cols, fov_um=args.fov_um, center_um=(0.0, 0.0))
                t0 = time.perf_counter()
                RE(plan)
                times[label].append((time.perf_counter() - t0) / (rows * cols))
        med = {k: statistics.median(v) for k, v in times.items()}
        out = {"grid": [rows, cols], "pixels": args.pixels, "runs": args.runs,
               "per_tile_s": {k: round(v, 4) for k, v in med.items()},
               "all_per_tile_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
               "ratio_ca_over_in_process": round(med["over CA"] / med["in process"], 2)}
        if args.json:
            print(json.dumps(out))
        else:
            for k, v in med.items():
                print(f"{k:>11}: {v * 1000:8.1f} ms per tile (median of {args.runs} runs)")
            print(f"ratio CA / in process: {out['ratio_ca_over_in_process']:.2f}")
    finally:
        ioc.terminate()
        try:
            ioc.wait(15)
        except subprocess.TimeoutExpired:
            ioc.kill()
        log.close()


if __name__ == "__main__":
    main()
