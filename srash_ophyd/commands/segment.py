"""``srash segment RUN``: sub-cellular segmentation of a hyperspectral SRS stack.

``--method phasor`` (:func:`ml.phasor.segment_phasor`, automatic GMM clusters in phasor
space, no hand-placed cursors) on the processed stack (:func:`srash_ophyd.hsdata.run_stack`).
The label map is written back to the catalog as an analysis run linked to the stack::

    start   analysis="segmentation", plan_name="srash-segment", scan_uid, sample_id, method,
            params, class codes {background, nucleus, lipid_droplet, cytoplasm}
    labels  one event: labels (H, W) uint8, dice_nucleus, dice_droplets (NaN without truth)
    stop

When the stack has a simulator-truth run (``srash cohort --specimen cells``), Dice of the
nucleus and lipid-droplet masks against truth is reported. PNGs: the phasor histogram with
the chosen clusters and the label overlay. (The hybrid-UNet method comes with its trained
weights; until then only ``phasor`` is offered.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .options import add_catalog_options

__all__ = ["add_parser", "run_segment", "resolve_stack"]

STACK_PLAN = "hyperspectral_stack"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment", help="nucleus / lipid-droplet segmentation of a hyperspectral stack",
        description="Segment a stored hyperspectral SRS stack into nucleus, lipid droplets "
                    "and cytoplasm, write the label map to the catalog as an analysis run "
                    "linked to the stack, save PNGs, and report Dice against the simulator's "
                    "truth when the stack has one.")
    p.add_argument("uid", help="stack run uid (a unique prefix), or -1 for the latest stack")
    p.add_argument("--method", choices=("phasor",), default="phasor",
                   help="phasor (spectral phasor + Gaussian mixture; default)")
    p.add_argument("--harmonic", type=int, default=1, help="phasor harmonic (1)")
    p.add_argument("--median-passes", type=int, default=2,
                   help="3x3 median filter passes on G and S (2)")
    p.add_argument("--components", type=int, default=3,
                   help="Gaussian-mixture clusters in phasor space (3)")
    p.add_argument("--seed", type=int, default=0, help="Gaussian-mixture seed (0)")
    p.add_argument("--out", type=Path, default=Path("out/segment"),
                   help="folder for the PNGs (default out/segment)")
    p.add_argument("--no-store", action="store_true", help="do not write the analysis run")
    add_catalog_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_segment)


def resolve_stack(client, uid: str):
    """A hyperspectral-stack run by uid (prefix) or ``-N`` (N-th latest stack)."""
    from tiled.queries import Key

    from ..catalog import CatalogError
    from .catalog import _get_run

    if uid.startswith("-") and uid[1:].isdigit():
        stacks = client.search(Key("plan_name") == STACK_PLAN)
        n = int(uid[1:])
        if n < 1 or n > len(stacks):
            raise CatalogError(f"run {uid!r}: the catalog holds {len(stacks)} hyperspectral "
                               "stack(s); `srash cohort --specimen cells` acquires some")
        return stacks[-n]
    run = _get_run(client, uid)
    plan = run.metadata["start"].get("plan_name")
    if plan != STACK_PLAN:
        raise CatalogError(f"run {uid!r} is a {plan!r} run, not a hyperspectral stack")
    return run


def _store(client, start: dict, labels: np.ndarray, params: dict, dice: dict) -> str:
    from ml.phasor import CLASS_NAMES

    from ..docruns import publish_event_run
    from ..live import make_analysis_writer

    md = {k: start.get(k) for k in ("sample_id", "patient_id", "specimen", "cohort", "split")}
    nan = float("nan")
    data = {"labels": labels.astype(np.uint8),
            "dice_nucleus": nan if dice["nucleus"] is None else dice["nucleus"],
            "dice_droplets": nan if dice["lipid_droplet"] is None else dice["lipid_droplet"]}
    number = {"source": "srash segment", "dtype": "number", "shape": []}
    return publish_event_run(
        make_analysis_writer(client),
        {"analysis": "segmentation", "plan_name": "srash-segment", "scan_uid": start["uid"],
         **{k: v for k, v in md.items() if v is not None}, "method": params["method"],
         "params": params, "classes": {name: code for code, name in CLASS_NAMES.items()}},
        "labels", data,
        {"labels": {"source": "srash segment", "dtype": "array", "dtype_numpy": "|u1",
                    "shape": list(labels.shape)},
         "dice_nucleus": number, "dice_droplets": number})


def run_segment(args: argparse.Namespace) -> int:
    from ml.dice import dice
    from ml.phasor import LIPID_DROPLET, NUCLEUS, labels_png, phasor_png, segment_phasor
    from simulators.specimens.base import Label

    from ..catalog import close_catalog, open_catalog
    from ..hsdata import run_stack
    from ..truth import load_truth

    t0 = time.perf_counter()
    client = open_catalog(args.data_dir, uri=args.catalog, api_key=args.api_key)
    try:
        run = resolve_stack(client, args.uid)
        st = run_stack(run)
        params = {"method": args.method, "harmonic": args.harmonic,
                  "median_passes": args.median_passes, "n_components": args.components,
                  "seed": args.seed}
        seg = segment_phasor(st.data, st.raman_cm1, harmonic=args.harmonic,
                             median_passes=args.median_passes, n_components=args.components,
                             seed=args.seed)
        truth = load_truth(client, st.start["uid"])
        dsc: dict[str, Any] = {"nucleus": None, "lipid_droplet": None}
        if truth is not None:
            tl = truth[0]
            if tl.shape == seg.labels.shape:
                dsc = {"nucleus": dice(seg.labels == NUCLEUS, tl == int(Label.NUCLEUS)),
                       "lipid_droplet": dice(seg.labels == LIPID_DROPLET,
                                             tl == int(Label.LIPID_DROPLET))}
        uid = None if args.no_store else _store(client, st.start, seg.labels, params, dsc)
    finally:
        close_catalog(client)
    out = args.out
    short = st.start["uid"][:8]
    images = {
        "phasor": str(phasor_png(out / f"phasor_{short}.png", seg.g, seg.s, labels=seg.labels,
                                 centres=seg.centres, classes=seg.classes,
                                 references=seg.references)),
        "labels": str(labels_png(out / f"labels_{short}.png", seg.mean, seg.labels))}
    counts = {name: int((seg.labels == code).sum()) for code, name in
              enumerate(("background", "nucleus", "lipid_droplet", "cytoplasm"))}
    res = {"scan_uid": st.start["uid"], "analysis_uid": uid, "method": args.method,
           "sample_id": st.start.get("sample_id"), "bands": int(st.data.shape[0]),
           "shape": list(seg.labels.shape), "pixels": counts, "threshold": seg.threshold,
           "dice": dsc if truth is not None else None, "images": images,
           "elapsed_s": round(time.perf_counter() - t0, 2)}
    if args.json:
        print(json.dumps(res))
    else:
        print(f"stack {res['scan_uid']} ({res['sample_id']}): {res['bands']} bands, "
              f"{res['shape'][0]}x{res['shape'][1]} px, method {args.method}")
        print("pixels: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if res["dice"]:
            print(f"Dice vs simulator truth: nucleus {dsc['nucleus']:.3f}, lipid droplets "
                  f"{dsc['lipid_droplet']:.3f}")
        if uid:
            print(f"analysis run: {uid}")
        for k, v in images.items():
            print(f"{k}: {v}")
    return 0
