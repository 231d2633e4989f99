"""``srash demo``: the main job. A simulated patient, a mosaic scan with live LBNet-Dx.

One command on a fresh machine: a simulated testis section (``--phenotype``, ``--seed``;
random when not given), a ``--grid`` mosaic of 1200 x 1200 px fields (0.3 um/px, the
paper's) on the simulated SRASH microscope into the catalog (``--data-dir``), with two
LBNet-Dx callbacks running live behind a buffering thread: normal vs NOA and, for the
subtype, SPT vs SPG. Each writes its own analysis run linked to the scan's uid.

Diagnosis (two-stage, as a clinic would read it): the normal-vs-NOA vote gives ``normal``,
``NOA`` or ``unidentifiable``; when it says NOA, the subtype vote refines it to ``NOA-SPT``
or ``NOA-SPG`` (or leaves ``NOA`` when the subtype is unidentifiable). The subtype model
knows only SPT and SPG: an SCO patient gets one of those two or ``NOA`` (the paper excluded
uncommon subtypes too).

Images (``--out``): the stitched classifier composite (R = 2930, G = 2850, B = SHG) and the
Grad-CAM overlay of the reported class, stitched the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from plans.contract import DEFAULT_SHIFTS_CM1, PHENOTYPES

from .closedloop import add_loop_options, check_loop_options, loop_rule
from .options import CLIError, add_catalog_options, load_dx, parse_grid

__all__ = ["add_parser", "run_demo"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="simulated patient -> mosaic scan with live LBNet-Dx -> diagnosis",
        description="Scan a simulated patient's testis section as a mosaic into the catalog "
                    "while LBNet-Dx classifies every field live (normal vs NOA, then SPT vs "
                    "SPG); print run uids, per-field probabilities, the sample diagnosis "
                    "and the paths of the stitched composite and Grad-CAM PNGs.")
    p.add_argument("--phenotype", choices=PHENOTYPES, default=None,
                   help="simulated patient's phenotype (default: random)")
    p.add_argument("--seed", type=int, default=None, help="specimen seed (default: random)")
    p.add_argument("--grid", default="2x2", help="fields as ROWSxCOLS (default 2x2)")
    p.add_argument("--weights", type=Path, default=None,
                   help="normal-vs-NOA weights (default: shipped)")
    p.add_argument("--subtype-weights", type=Path, default=None,
                   help="SPT-vs-SPG weights (default: shipped)")
    p.add_argument("--out", type=Path, default=Path("out/demo"),
                   help="folder for the PNGs (default out/demo)")
    add_catalog_options(p)
    add_loop_options(p, flag="--adaptive", weights=False)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: scan_uid, analysis_uid, fields, diagnosis, "
                        "probabilities, images")
    p.set_defaults(func=run_demo)


def _stitch_maps(fields, maps: list[np.ndarray]) -> np.ndarray:
    """Feather-blend per-field (3, H, W) maps at the fields' stage positions."""
    from ml.io.runs import Tile
    from ml.io.stitch import stitch

    tiles = [Tile(index=i, x_um=f.x_um, y_um=f.y_um, pixel_um=f.pixel_um, data=m,
                  events=(0, 0), shifts_cm1=(0.0, 0.0)) for i, (f, m) in
             enumerate(zip(fields, maps))]
    mosaic, _, _ = stitch(tiles)
    return np.nan_to_num(mosaic, nan=0.0)


def _images(out: Path, live, dx) -> dict[str, str | None]:
    from ml.dx.gradcam import field_cam, overlay_png

    from ..preview import save_png

    fields = [f for f in live.fields if f.composite is not None]
    if not fields:
        return {"composite": None, "gradcam": None}
    vote = live.vote
    target = vote.label if vote is not None and vote.label is not None else (
        int(np.argmax(vote.probabilities)) if vote is not None else 1)
    comps, cams = [], []
    for f in fields:
        comps.append(f.composite)
        ps = dx.patches(f.composite)
        cam = field_cam(dx.model, f.composite, ps, target_class=int(target)) if len(ps) \
            else np.zeros(f.composite.shape[1:], np.float32)
        cams.append(np.repeat(cam[None], 3, axis=0))
    comp = np.moveaxis(_stitch_maps(fields, comps), 0, -1)
    cam = _stitch_maps(fields, cams)[0]
    out.mkdir(parents=True, exist_ok=True)
    return {"composite": str(save_png(out / "composite.png", np.clip(comp, 0, 1))),
            "gradcam": str(overlay_png(out / "gradcam.png", comp, cam))}


def run_demo(args: argparse.Namespace) -> int:
    from simulators.specimens import make_specimen

    from ..session import attach_live_dx, make_session

    rows, cols = parse_grid(args.grid)
    if args.closed_loop:
        check_loop_options(args)
    if rows * cols > 100:
        raise CLIError(f"--grid {args.grid}: at most 100 fields in the demo")
    rng = np.random.default_rng()
    phenotype = args.phenotype or str(rng.choice(PHENOTYPES))
    seed = int(args.seed) if args.seed is not None else int(rng.integers(100_000, 1_000_000))
    dx = load_dx(args.weights, "normal-vs-noa")
    sub = load_dx(args.subtype_weights, "spt-vs-spg")
    spec = make_specimen("testis", seed, phenotype=phenotype)
    cx, cy = spec.default_center_um()
    t0 = time.perf_counter()
    session = make_session(data_dir=args.data_dir, catalog_uri=args.catalog,
                           api_key=args.api_key, specimen="testis", phenotype=phenotype,
                           seed=seed, noise_seed=seed + 500_000, progress=not args.quiet,
                           pixels=1200, fov_um=360.0, averages=3, x_um=cx, y_um=cy)
    sample = f"DEMO-{phenotype}-{seed}"
    loop = None
    if args.closed_loop:  # --adaptive: survey + closed loop on the normal-vs-NOA vote
        from plans.adaptive import DiagnosisFeedback

        from ..closedloop import attach_closed_loop, run_diagnosis

        fb = DiagnosisFeedback()
        live = attach_closed_loop(session, dx, fb, keep_composites=True)
    else:
        live = attach_live_dx(session, dx, keep_composites=True)
    live_sub = attach_live_dx(session, sub)
    status, message = 0, None
    try:
        mic = session.mic
        md = session.run_md(sample_id=sample, patient_id=f"P-{seed}", demo=True)
        if loop is None and args.closed_loop:
            loop = run_diagnosis(session, live, feedback=fb, rows=rows, cols=cols,
                                 fov_um=360.0, overlap=0.1, center_um=(cx, cy),
                                 shifts_cm1=DEFAULT_SHIFTS_CM1, md=md, **loop_rule(args))
            outcome = _Outcome(loop["exit_code"], loop["message"])
        else:
            outcome = session.run(session.plans.mosaic(
                [mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=rows, cols=cols,
                fov_um=360.0, overlap=0.1, center_um=(cx, cy), shifts_cm1=DEFAULT_SHIFTS_CM1,
                md=md))
        status, message = outcome.code, outcome.message
        t_scan = time.perf_counter() - t0
        live.close()
        live_sub.close()
        images = _images(args.out, live, dx)
    finally:
        session.close()
    res = _summary(live, live_sub, dx, sub, images, phenotype, seed, sample)
    if loop is not None:
        res.update(_loop_keys(res, loop))
    res["elapsed_s"] = {"scan": round(t_scan, 2), "total": round(time.perf_counter() - t0, 2)}
    if status:
        what = f"scan {message}" if outcome.interrupted else f"scan failed: {message}"
        print(f"srash: {what}; finished fields stay in the catalog as run "
              f"{res['scan_uid']}", file=sys.stderr)
    if args.json:
        print(json.dumps(res))
    else:
        _print(res)
    return status


class _Outcome:
    """The two fields of :class:`~srash_ophyd.session.PlanOutcome` the demo reads."""

    def __init__(self, code: int, message: str | None) -> None:
        self.code, self.message = code, message

    @property
    def interrupted(self) -> bool:
        return self.code >= 128


def _loop_keys(res: dict[str, Any], loop: dict[str, Any]) -> dict[str, Any]:
    """``--adaptive``: each field entry gains the loop's decision, and ``instrument_time_s``,
    ``stop_reason``, ``survey_uid`` are added. The diagnosis is the loop's: a vote that
    passed 0.8 before the minimum evidence does not count."""
    by_index = {f["field_index"]: f for f in loop["fields"]}
    fields = [{**f, **{k: v for k, v in by_index.get(f["field_index"], {}).items()
                       if k != "n_patches"}} for f in res["fields"]]
    out = {"fields": fields, "instrument_time_s": loop["instrument_time_s"],
           "survey_instrument_time_s": loop["survey_instrument_time_s"],
           "stop_reason": loop["stop_reason"], "survey_uid": loop["survey_uid"]}
    if loop["diagnosis"] == "unidentifiable":
        out["diagnosis"] = "unidentifiable"
    return out


def _summary(live, live_sub, dx, sub, images, phenotype, seed, sample) -> dict[str, Any]:
    v, vs = live.vote, live_sub.vote
    diagnosis = v.label_name if v is not None else "unidentifiable"
    if diagnosis == "NOA" and vs is not None and vs.label is not None:
        diagnosis = vs.label_name
    sub_by_field = {f.field_index: f for f in live_sub.fields}
    fields = []
    for f in live.fields:
        s = sub_by_field.get(f.field_index)
        fields.append({"field_index": f.field_index, "x_um": round(f.x_um, 2),
                       "y_um": round(f.y_um, 2), "n_patches": f.n_patches,
                       "probabilities": dict(zip(dx.class_names, f.field_probabilities or [])),
                       "subtype_probabilities": dict(zip(sub.class_names,
                                                         (s.field_probabilities or [])
                                                         if s else []))})
    err = live.callback.error or live_sub.callback.error
    return {"scan_uid": live.callback.scan_uid, "analysis_uid": live.analysis_uid,
            "subtype_analysis_uid": live_sub.analysis_uid, "sample_id": sample,
            "truth": {"phenotype": phenotype, "seed": seed},
            "fields": fields, "diagnosis": diagnosis,
            "probabilities": dict(zip(dx.class_names, v.probabilities)) if v else None,
            "subtype_probabilities": dict(zip(sub.class_names, vs.probabilities))
            if vs else None, "images": images, "live_error": err}


def _print(res: dict) -> None:
    print(f"scan {res['scan_uid']} ({res['sample_id']}; simulated truth "
          f"{res['truth']['phenotype']}, seed {res['truth']['seed']})")
    print(f"LBNet-Dx analysis runs: {res['analysis_uid']} (normal vs NOA), "
          f"{res['subtype_analysis_uid']} (SPT vs SPG)")
    for f in res["fields"]:
        p = ", ".join(f"{k} {v:.3f}" for k, v in f["probabilities"].items())
        print(f"  field {f['field_index']:>2} ({f['x_um']:8.1f}, {f['y_um']:8.1f}) um: "
              f"{f['n_patches']:3d} patches, {p}")
    if res["probabilities"]:
        p = ", ".join(f"{k} {v:.3f}" for k, v in res["probabilities"].items())
        print(f"sample vote: {p}")
    if res["subtype_probabilities"]:
        p = ", ".join(f"{k} {v:.3f}" for k, v in res["subtype_probabilities"].items())
        used = "" if res["diagnosis"].startswith("NOA") else " (not used: not NOA)"
        print(f"subtype vote{used}: {p}")
    print(f"diagnosis: {res['diagnosis']}")
    if res.get("stop_reason") is not None or "instrument_time_s" in res:
        print(f"closed loop: stop {res.get('stop_reason')} after {len(res['fields'])} fields, "
              f"{res['instrument_time_s']:.0f} s of real-instrument time (survey included)")
    if res["live_error"]:
        print(f"live classifier error (scan unaffected): {res['live_error']}")
    for k, v in res["images"].items():
        if v:
            print(f"{k}: {v}")
