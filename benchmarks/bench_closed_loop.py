"""Benchmark: the closed loop's decision latency on the simulated instrument paced at real
speed (issue 18).

Decision latency = from the event of a field's last frame to the stage move to the next field
being issued (the RunEngine's ``set`` message on the stage's x axis, seen through
``RE.msg_hook``). It spans the live LBNet-Dx callback (buffer thread: assemble, composite,
classify, vote), the mailbox, the plan's ``wait_for`` and the decision event. It is compared
with one field's acquisition time (first frame's tuning to last frame, at the same pacing).

Default: the shipped weights, full-size fields (1200 px, 360 um, 3 averages), ``--time-scale
1`` (every status waits the real instrument's time), a 3x3 survey, ``--fields 3`` fields
without early stop (min patches never reached). Not a test: figures go into
docs/benchmarks.md by hand.

    .venv/bin/python benchmarks/bench_closed_loop.py [--time-scale 1] [--fields 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--fields", type=int, default=3)
    ap.add_argument("--pixels", type=int, default=1200)
    ap.add_argument("--fov-um", type=float, default=360.0)
    ap.add_argument("--averages", type=int, default=3)
    ap.add_argument("--seed", type=int, default=70101)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from plans.adaptive import DiagnosisFeedback
    from simulators.specimens import make_specimen
    from srash_ophyd.cli.options import load_dx
    from srash_ophyd.closedloop import attach_closed_loop, run_diagnosis
    from srash_ophyd.session import make_session

    dx = load_dx(None, "normal-vs-noa")
    spec = make_specimen("testis", args.seed, phenotype="NOA-SPG")
    cx, cy = spec.default_center_um()
    s = make_session(data_dir=tempfile.mkdtemp(prefix="bench-cl-"), specimen="testis",
                     phenotype="NOA-SPG", seed=args.seed, noise_seed=args.seed,
                     progress=False, pixels=args.pixels, fov_um=args.fov_um,
                     averages=args.averages, x_um=cx, y_um=cy, time_scale=args.time_scale)
    moves: list[float] = []
    frames: list[tuple[float, int, int]] = []  # (event time, field, shift index)
    x_name = s.mic.xyz.x.name

    def hook(msg) -> None:
        if msg.command == "set" and getattr(msg.obj, "name", None) == x_name:
            moves.append(time.time())

    def on_doc(name, doc) -> None:
        if name == "event" and "shift_index" in doc["data"]:
            frames.append((doc["time"], doc["data"]["field_index"],
                           doc["data"]["shift_index"]))

    s.RE.msg_hook = hook
    fb = DiagnosisFeedback()
    live = attach_closed_loop(s, dx, fb)
    t0 = time.perf_counter()
    diag_start = {}

    def mark(name, doc) -> None:
        if name == "start" and doc.get("plan_name") == "diagnose":
            diag_start["t"] = time.time()

    s.RE.subscribe(mark)
    s.RE.subscribe(on_doc)
    res = run_diagnosis(s, live, feedback=fb, rows=3, cols=3, fov_um=args.fov_um,
                        overlap=0.1, center_um=(cx, cy), shifts_cm1=(2850.0, 2930.0),
                        md=s.run_md(sample_id="BENCH"), max_fields=args.fields,
                        min_patches=10**9, futility=False)
    wall = time.perf_counter() - t0
    compute = [f.compute_s for f in live.fields]
    live.close(60)
    s.close()
    # the diagnosis run's frames only (the survey's frames have shift_index 0 only and
    # come before the diagnosis start)
    dframes = [f for f in frames if f[0] >= diag_start["t"]]
    last = {}
    first = {}
    for t, fi, si in dframes:
        first.setdefault(fi, t)
        last[fi] = t
    order = [f["field_index"] for f in res["fields"]]
    dmoves = [m for m in moves if m >= diag_start["t"]]
    lat = []
    for fi in order[:-1]:
        nxt = next((m for m in dmoves if m > last[fi]), None)
        if nxt is not None:
            lat.append(nxt - last[fi])
    # one field's acquisition: previous field's move issued -> its last frame
    acq = []
    for fi in order:
        prev_move = max((m for m in dmoves if m <= first[fi]), default=None)
        if prev_move is not None:
            acq.append(last[fi] - prev_move)
    out = {"time_scale": args.time_scale, "pixels": args.pixels, "averages": args.averages,
           "fields": len(order), "decision_latency_s": [round(v, 3) for v in lat],
           "decision_latency_median_s": round(statistics.median(lat), 3) if lat else None,
           "recorded_decision_latency_s": [f["decision_latency_s"] for f in res["fields"]],
           "classifier_compute_s": [round(v, 3) for v in compute],
           "field_acquisition_s": [round(v, 2) for v in acq],
           "instrument_time_s": res["instrument_time_s"], "wall_s": round(wall, 1)}
    if args.json:
        print(json.dumps(out))
        return
    for k, v in out.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
