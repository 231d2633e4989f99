"""``srash segment RUN``: sub-cellular segmentation of a hyperspectral SRS stack.

``--method phasor`` (:func:`ml.seg.phasor.segment_phasor`, automatic GMM clusters in phasor
space, no hand-placed cursors) on the processed stack (:func:`ml.io.stacks.run_stack`).
The label map is written back to the catalog as an analysis run linked to the stack::

    start   analysis="segmentation", plan_name="srash-segment", scan_uid, sample_id, method,
            params, class codes {background, nucleus, lipid_droplet, cytoplasm}
    labels  one event: labels (H, W) uint8, dice_nucleus, dice_droplets (NaN without truth)
    stop

``--method hybrid-unet`` runs a trained segmenter (default: the shipped
``ml/weights/seg_hybrid-unet.pt``, or ``--weights`` from ``srash train-seg``) on the stack
put on the weights' Raman axis (:func:`ml.seg.models.segmenter_input`); its nucleus and
droplet masks become the same label codes (:func:`ml.seg.models.labels_from_masks`).

A stack run without a stop document (a killed scan) or with an unreadable band (a frame
file missing, truncated, not a TIFF, of another shape) is an error naming the run or file.

When the stack has a simulator-truth run (``srash cohort --specimen cells``), Dice of the
nucleus and lipid-droplet masks against truth is reported. PNGs: the label overlay, and for
phasor the phasor histogram with the chosen clusters.
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
    p.add_argument("--method", choices=("phasor", "hybrid-unet"), default="phasor",
                   help="phasor (spectral phasor + Gaussian mixture; default) or hybrid-unet "
                        "(trained network, see --weights)")
    p.add_argument("--weights", type=Path, default=None,
                   help="hybrid-unet: weights from `srash train-seg` (default: the shipped "
                        "ml/weights/seg_hybrid-unet.pt)")
    p.add_argument("--harmonic", type=int, default=1, help="phasor harmonic (1)")
    p.add_argument("--median-passes", type=int, default=2,
                   help="phasor: 3x3 median filter passes on G and S (2)")
    p.add_argument("--components", type=int, default=3,
                   help="phasor: Gaussian-mixture clusters in phasor space (3)")
    p.add_argument("--seed", type=int, default=0, help="phasor: Gaussian-mixture seed (0)")
    p.add_argument("--out", type=Path, default=Path("out/segment"),
                   help="folder for the PNGs (default out/segment)")
    p.add_argument("--no-store", action="store_true", help="do not write the analysis run")
    add_catalog_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_segment)


def resolve_stack(client, uid: str):
    """A hyperspectral-stack run by uid (prefix) or ``-N`` (N-th latest stack);
    :class:`~ml.io.runstate.IncompleteRunError` when it has no stop document."""
    from tiled.queries import Key

    from ml.io.runstate import require_readable

    from ..catalog import CatalogError, get_run

    if uid.startswith("-") and uid[1:].isdigit():
        stacks = client.search(Key("plan_name") == STACK_PLAN)
        n = int(uid[1:])
        if n < 1 or n > len(stacks):
            raise CatalogError(f"run {uid!r}: the catalog holds {len(stacks)} hyperspectral "
                               "stack(s); `srash cohort --specimen cells` acquires some")
        run = stacks[-n]
    else:
        run = get_run(client, uid)
        plan = run.metadata["start"].get("plan_name")
        if plan != STACK_PLAN:
            raise CatalogError(f"run {uid!r} is a {plan!r} run, not a hyperspectral stack")
    require_readable(run)
    return run


def _store(client, start: dict, labels: np.ndarray, params: dict, dice: dict) -> str:
    from ml.io.publish import publish_event_run
    from ml.seg.phasor import CLASS_NAMES

    from ..catalog import make_analysis_writer

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


def _segment(args: argparse.Namespace, st) -> tuple[np.ndarray, dict, dict[str, Any]]:
    """(label map, params, {"seg": phasor result or None, "mean": band-mean image})."""
    if args.method == "phasor":
        from ml.seg.phasor import segment_phasor

        params = {"method": args.method, "harmonic": args.harmonic,
                  "median_passes": args.median_passes, "n_components": args.components,
                  "seed": args.seed}
        seg = segment_phasor(st.data, st.raman_cm1, harmonic=args.harmonic,
                             median_passes=args.median_passes, n_components=args.components,
                             seed=args.seed)
        return seg.labels, params, {"seg": seg, "mean": seg.mean}
    from ml.seg.models import DEFAULT_WEIGHTS, labels_from_masks, load_segmenter, segmenter_input
    from ml.seg.train import predict_masks

    path = args.weights or DEFAULT_WEIGHTS
    model, meta = load_segmenter(path)
    masks = predict_masks(model, segmenter_input(st.data, st.raman_cm1, meta["raman_cm1"]))
    mean = st.data.mean(axis=0)
    params = {"method": args.method, "weights": str(path), "segmenter": meta["segmenter"],
              "trained_on": meta.get("cohort")}
    return labels_from_masks(masks, mean), params, {"seg": None, "mean": mean}


def run_segment(args: argparse.Namespace) -> int:
    from ml.common.dice import dice
    from ml.io.stacks import run_stack
    from ml.io.truth import load_truth
    from ml.seg.phasor import CLASS_NAMES, LIPID_DROPLET, NUCLEUS, labels_png, phasor_png
    from simulators.specimens.base import Label

    from ..catalog import close_catalog, open_catalog

    t0 = time.perf_counter()
    client = open_catalog(args.data_dir, uri=args.catalog, api_key=args.api_key)
    try:
        run = resolve_stack(client, args.uid)
        st = run_stack(run)
        labels, params, extra = _segment(args, st)
        truth = load_truth(client, st.start["uid"])
        dsc: dict[str, Any] = {"nucleus": None, "lipid_droplet": None}
        if truth is not None and truth[0].shape == labels.shape:
            tl = truth[0]
            dsc = {"nucleus": dice(labels == NUCLEUS, tl == int(Label.NUCLEUS)),
                   "lipid_droplet": dice(labels == LIPID_DROPLET,
                                         tl == int(Label.LIPID_DROPLET))}
        uid = None if args.no_store else _store(client, st.start, labels, params, dsc)
    finally:
        close_catalog(client)
    out = args.out
    short = st.start["uid"][:8]
    tag = "" if args.method == "phasor" else f"{args.method}_"
    images = {"labels": str(labels_png(out / f"labels_{tag}{short}.png", extra["mean"], labels,
                                       title=f"{args.method} segmentation"))}
    seg = extra["seg"]
    if seg is not None:
        images["phasor"] = str(phasor_png(out / f"phasor_{short}.png", seg.g, seg.s,
                                          labels=seg.labels, centres=seg.centres,
                                          classes=seg.classes, references=seg.references))
    counts = {name: int((labels == code).sum()) for code, name in CLASS_NAMES.items()}
    res = {"scan_uid": st.start["uid"], "analysis_uid": uid, "method": args.method,
           "sample_id": st.start.get("sample_id"), "bands": int(st.data.shape[0]),
           "shape": list(labels.shape), "pixels": counts,
           "threshold": seg.threshold if seg is not None else None,
           "dice": dsc if dsc["nucleus"] is not None else None, "images": images,
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
