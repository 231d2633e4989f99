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

The workflow is :func:`ml.seg.workflow.segment_stack`; this command finds the stack and its
truth in the catalog, passes them and the catalog's analysis-run writer in, and prints.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

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
    from ml.io.runstate import require_readable

    from ..catalog import CatalogError, get_run, search_runs

    if uid.startswith("-") and uid[1:].isdigit():
        stacks = search_runs(client, plan=STACK_PLAN)
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


def run_segment(args: argparse.Namespace) -> int:
    from ml.io.stacks import run_stack
    from ml.io.truth import load_truth
    from ml.seg.workflow import PhasorSettings, Segmenter, segment_stack

    from ..catalog import close_catalog, make_analysis_writer, open_catalog

    t0 = time.perf_counter()
    phasor = PhasorSettings(harmonic=args.harmonic, median_passes=args.median_passes,
                            n_components=args.components, seed=args.seed)
    client = open_catalog(args.data_dir, uri=args.catalog, api_key=args.api_key)
    try:
        run = resolve_stack(client, args.uid)
        st = run_stack(run)
        segmenter = None
        if args.method != "phasor":
            from ml.seg.models import DEFAULT_WEIGHTS, load_segmenter

            path = args.weights or DEFAULT_WEIGHTS
            segmenter = Segmenter(Path(path), *load_segmenter(path))
        truth = load_truth(client, st.start["uid"])
        res = segment_stack(st, method=args.method, phasor=phasor, segmenter=segmenter,
                            truth=None if truth is None else truth[0], report_dir=args.out,
                            publish=None if args.no_store else make_analysis_writer(client),
                            clock_start=t0)
    finally:
        close_catalog(client)
    if args.json:
        print(json.dumps(res))
    else:
        shape, dsc = res["shape"], res["dice"]
        print(f"stack {res['scan_uid']} ({res['sample_id']}): {res['bands']} bands, "
              f"{shape[0]}x{shape[1]} px, method {args.method}")
        print("pixels: " + ", ".join(f"{k} {v}" for k, v in res["pixels"].items()))
        if dsc:
            print(f"Dice vs simulator truth: nucleus {dsc['nucleus']:.3f}, lipid droplets "
                  f"{dsc['lipid_droplet']:.3f}")
        if res["analysis_uid"]:
            print(f"analysis run: {res['analysis_uid']}")
        for k, v in res["images"].items():
            print(f"{k}: {v}")
    return 0
