"""``srash train-seg`` and ``srash evaluate-seg``: the nucleus / lipid-droplet segmenters.

Data: the ``hyperspectral_stack`` runs of a cohort (``srash cohort --specimen cells``) with
their simulator-truth label maps, processed by :func:`ml.io.stacks.run_stack`. Every
stack of one training set must share one Raman axis; the weights remember it
(:mod:`ml.seg.models`).

``train-seg`` holds back ``--val-fraction`` of the stacks (seeded) to choose the best epoch
(:func:`ml.seg.train.train_segmenter`: BCE + soft Dice on random crops), saves the weights
with their provenance (cohort, run uids, specimen seeds, settings, history) and writes a
report (JSON, learning curves PNG).

``evaluate-seg`` scores every given weights file, the automatic spectral phasor
(:func:`ml.seg.phasor.segment_phasor`, default settings) and the two-band rule (thresholds
fitted at training, :mod:`ml.seg.twoband`) against truth and, separately, against the
phasor's labels (the study's protocol) on a held-out cohort:
Dice per stack and class, mean +- SD, a Dice-bars PNG, and one example stack's label maps
side by side. It refuses stacks whose specimen seed any of the weights saw in training.

The workflows are :func:`ml.seg.workflow.train_seg` and :func:`ml.seg.workflow.evaluate_seg`;
these commands load the stacks and their truth from the catalog, call them, and print.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from .options import CLIError, add_catalog_options, add_strict_option, command_line

__all__ = ["add_parsers", "run_train_seg", "run_evaluate_seg"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from plans.contract import SEGMENTERS

    p = sub.add_parser(
        "train-seg", help="train a nucleus / lipid-droplet segmenter on catalog stacks",
        description="Train the hybrid UNet (or an ablation / baseline) on the hyperspectral "
                    "stacks of a cohort and their simulator truth; write the weights and a "
                    "report (JSON, learning curves).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="models:\n" + "\n".join(f"  {k:22s} {v}" for k, v in SEGMENTERS.items()))
    p.add_argument("--model", choices=list(SEGMENTERS), default="hybrid-unet",
                   help="which network (default hybrid-unet; see below)")
    p.add_argument("--cohort", required=True, help="start.cohort of the training stacks")
    p.add_argument("--split", default="train", help="start.split (default train; '' = any)")
    p.add_argument("--out", type=Path, default=None,
                   help="weights file (default ml/weights/seg_<model>.pt)")
    p.add_argument("--report-dir", type=Path, default=None,
                   help="report folder (default reports/train-seg-<model>)")
    p.add_argument("--epochs", type=int, default=60,
                   help="epochs (default 60, the shipped weights' recipe)")
    p.add_argument("--crop", type=int, default=128,
                   help="training crop side in pixels, a multiple of 16 (default 128)")
    p.add_argument("--crops-per-stack", type=int, default=4,
                   help="random crops per stack per epoch (default 4)")
    p.add_argument("--batch-size", type=int, default=4, help="crops per step (default 4)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (3e-3)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="cosine",
                   help="learning rate over the epochs: cosine (default, the shipped "
                        "weights' recipe: from --lr down to --lr / 100 at the last epoch) "
                        "or constant (the recipe of the segmentation ablations and "
                        "baselines of docs/model_card.md, with --epochs 30)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction of stacks held back to pick the best epoch (0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of init, split, crops (0)")
    add_strict_option(p)
    add_catalog_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_train_seg)

    e = sub.add_parser(
        "evaluate-seg", help="Dice of segmenters and phasor vs truth on held-out stacks",
        description="Segment every stack of a held-out cohort with each weights file and "
                    "with the automatic spectral phasor; report Dice against the simulator "
                    "truth (JSON, Dice bars PNG, example label maps PNG).")
    e.add_argument("--cohort", required=True, help="start.cohort of the held-out stacks")
    e.add_argument("--split", default="test", help="start.split (default test; '' = any)")
    e.add_argument("--weights", type=Path, nargs="+", default=None,
                   help="weights files from `srash train-seg` (default: the shipped "
                        "ml/weights/seg_hybrid-unet.pt)")
    e.add_argument("--out", type=Path, default=Path("reports/evaluate-seg"),
                   help="report folder (default reports/evaluate-seg)")
    e.add_argument("--allow-seed-overlap", action="store_true",
                   help="evaluate even on stacks whose specimen seed was used in training")
    add_strict_option(e)
    add_catalog_options(e)
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=run_evaluate_seg)


def _load(args: argparse.Namespace):
    """(stacks, truth labels, :class:`~ml.io.frames.ReadFaults`): stacks of
    killed scans or with an unreadable band are skipped with a warning (``--strict``:
    an error)."""
    from ml.io.frames import ReadFaults
    from ml.io.stacks import load_stacks

    from ..catalog import close_catalog, open_catalog, search_runs

    faults = ReadFaults(args.strict)
    client = open_catalog(args.data_dir, uri=args.catalog, api_key=args.api_key)
    try:
        crit = {"cohort": args.cohort, "split": args.split or None}
        found = search_runs(client, plan="hyperspectral_stack", **crit).values()
        stacks, labels = load_stacks(found, client, criteria=crit, faults=faults)
    finally:
        close_catalog(client)
    return stacks, labels, faults


def _epoch_bar(quiet: bool, total: int, desc: str):
    """A tqdm bar over epochs and the progress callback of :func:`ml.seg.workflow.train_seg`
    that advances it."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="epoch", disable=quiet, file=sys.stderr)

    def show(stage: str, rec: Mapping[str, Any]) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{rec['train_loss']:.3f}", nuc=f"{rec['val_dice_nucleus']:.3f}",
                        ld=f"{rec['val_dice_lipid_droplet']:.3f}")
    return bar, show


def run_train_seg(args: argparse.Namespace) -> int:
    from ml.seg.models import DEFAULT_WEIGHTS
    from ml.seg.train import SegConfig
    from ml.seg.workflow import SegTrainSettings, train_seg

    t0 = time.perf_counter()
    if not 0.0 < args.val_fraction < 1.0:
        raise CLIError(f"--val-fraction {args.val_fraction!r}: expected a value in (0, 1)")
    cfg = SegConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                    crop_size=args.crop, crops_per_stack=args.crops_per_stack, seed=args.seed,
                    lr_schedule=args.lr_schedule)
    settings = SegTrainSettings(model=args.model, config=cfg, val_fraction=args.val_fraction,
                                cohort=args.cohort, split=args.split, command=command_line())
    stacks, labels, faults = _load(args)
    bar, show = _epoch_bar(args.quiet, cfg.epochs, f"train-seg {args.model}")
    try:
        res = train_seg(
            stacks, labels, settings=settings,
            weights_path=args.out or DEFAULT_WEIGHTS.with_name(f"seg_{args.model}.pt"),
            report_dir=args.report_dir or Path("reports") / f"train-seg-{args.model}",
            report_extra=faults.summary(), progress=show, clock_start=t0)
    finally:
        bar.close()
    summary = res.summary
    if args.json:
        print(json.dumps(summary))
    else:
        d, st = summary["val_dice"], summary["stacks"]
        print(f"{args.model}: {summary['parameters'] / 1e6:.2f} M parameters, "
              f"{st['train']} training / {st['validation']} validation stacks, "
              f"{summary['bands']} bands")
        print(f"best epoch {summary['best_epoch']}/{cfg.epochs}: validation Dice nucleus "
              f"{d['nucleus']:.3f}, lipid droplets {d['lipid_droplet']:.3f} "
              f"({res.result.seconds:.0f} s training)")
        print(f"weights: {summary['weights']}\nreport: {summary['report']}\n"
              f"learning curves: {summary['images']['learning_curves']}")
    return 0


def run_evaluate_seg(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ml.seg.models import DEFAULT_WEIGHTS, load_segmenter
    from ml.seg.workflow import Segmenter, evaluate_seg

    t0 = time.perf_counter()
    segmenters = [Segmenter(Path(p), *load_segmenter(p))
                  for p in (args.weights or [DEFAULT_WEIGHTS])]
    stacks, labels, faults = _load(args)
    used = {s for sg in segmenters for s in sg.meta.get("specimen_seeds", [])}
    overlap = sorted({st.start.get("specimen_seed") for st in stacks} & used)
    if overlap and not args.allow_seed_overlap:
        raise CLIError(f"{len(overlap)} selected stack(s) use specimen seeds seen in "
                         f"training (e.g. {overlap[:5]}): evaluate on another cohort or pass "
                         "--allow-seed-overlap")
    bar = tqdm(total=len(stacks), desc="evaluate-seg", unit="stack", disable=args.quiet,
               file=sys.stderr)
    try:
        report = evaluate_seg(stacks, labels, segmenters, report_dir=args.out,
                              cohort=args.cohort, report_extra=faults.summary(),
                              progress=lambda stage, rec: bar.update(1), clock_start=t0)
    finally:
        bar.close()
    if args.json:
        print(json.dumps({k: v for k, v in report.items()
                          if k not in ("per_stack", "per_stack_vs_phasor")}))
        return 0
    for key, what in (("dice", "Dice vs simulator truth"),
                      ("dice_vs_phasor", "Dice vs the phasor's labels (the study's protocol)")):
        print(f"{len(stacks)} held-out stacks of {args.cohort}: {what}, mean +- SD (min)")
        for name, s in report[key].items():
            n, d = s["nucleus"], s["lipid_droplet"]
            print(f"  {name:22s} nucleus {n['mean']:.3f} +- {n['sd']:.3f} ({n['min']:.3f})   "
                  f"lipid droplets {d['mean']:.3f} +- {d['sd']:.3f} ({d['min']:.3f})   "
                  f"{report['seconds_per_stack'][name]:.2f} s/stack")
    print(f"two-band rule: {report['two_band']}")
    print(f"report: {report['report']}")
    for k, v in report["images"].items():
        print(f"{k}: {v}")
    return 0
