"""``srash train``: train LBNet-Dx on catalog runs selected by query.

Data: the mosaic runs of the task's phenotypes in ``--cohort`` (and ``--split``), their
fields rebuilt into composites (:mod:`ml.dx.data`), valid patches cut with the
classifier's patching rule, at most ``--patches-per-field`` per field (seeded subsample).
Patients are split into training and validation groups (``--val-fraction``, never a patient
on both sides, every class on both sides); the validation patients drive early stopping
and Youden's patch threshold (the paper: "threshold from Youden's index on training
results"; here the training cohort's held-back patients, which is less optimistic than the
fitted patches themselves).

``--cv K`` first runs K-fold cross-validation grouped by patient and stratified by label
(the paper: 9 folds over images, split by sample) with the same settings and reports every
fold and Youden's threshold over the out-of-fold scores; the final model is
then trained as above. Weights are written with :func:`ml.common.weights.save_weights` (metadata:
model, task, thresholds, training cohort, the specimen seeds used, history, metrics).

The workflow is :func:`ml.dx.workflow.train_dx`; this command selects and loads the runs,
calls it, and prints its report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from .options import CLIError, add_catalog_options, add_strict_option, add_task_option, command_line

__all__ = ["add_parser", "run_train"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train LBNet-Dx on catalog runs (split by patient)",
        description="Train LiteBlendNet for a task on the mosaic runs a catalog query "
                    "selects; write the weights (+ a report: JSON, learning curves, "
                    "validation ROC).")
    add_task_option(p)
    p.add_argument("--cohort", default=None, help="start.cohort of the training runs")
    p.add_argument("--split", default="train", help="start.split (default train; '' = any)")
    p.add_argument("--out", type=Path, default=None,
                   help="weights file (default ml/weights/lbnet_<task>.pt)")
    p.add_argument("--report-dir", type=Path, default=None,
                   help="report folder (default reports/train-<task>)")
    p.add_argument("--epochs", type=int, default=12, help="epoch cap (default 12)")
    p.add_argument("--patience", type=int, default=8, help="early-stopping patience (8)")
    p.add_argument("--patches-per-field", type=int, default=48,
                   help="at most this many valid patches per field (default 48; 0 = all)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction of patients held back for validation (0.2)")
    p.add_argument("--cv", type=int, default=0,
                   help="K-fold cross-validation by patient before the final fit (0 = off; "
                        "the paper used 9)")
    p.add_argument("--width", type=int, default=32, help="LiteBlendNet base width (32)")
    p.add_argument("--seed", type=int, default=0, help="seed of init, split, batches (0)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda")
    p.add_argument("--channels", default="RGB",
                   help="composite channels the model sees: RGB (default) or a subset for "
                        "a full-length channel ablation, e.g. GB (R = SRS 2930 protein, G = "
                        "SRS 2850 lipid, B = SHG; the others are zeroed); a subset's weights "
                        "default to reports/ablations/lbnet_<task>_<channels>.pt, never the "
                        "shipped file")
    p.add_argument("--session-gain", action="store_true",
                   help="add the session-gain augmentation to the paper's: per patch, SRS "
                        "channels x exp(0.24 z), SHG x exp(0.18 z), the residual gain the "
                        "simulated instrument leaves after calibration (default off)")
    add_strict_option(p)
    add_catalog_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_train)


def _print_epoch(label: str, rec: Mapping[str, Any]) -> None:
    """Progress of :func:`ml.dx.workflow.train_dx`: one line per epoch on stderr."""
    print(f"[{label}] epoch {int(rec['epoch']):3d}  lr {rec['lr']:.2e}  "
          f"train loss {rec['train_loss']:.4f} acc {rec['train_acc']:.3f}  "
          f"val loss {rec['val_loss']:.4f} acc {rec['val_acc']:.3f}  "
          f"({rec['seconds']:.0f} s)", file=sys.stderr, flush=True)


def run_train(args: argparse.Namespace) -> int:
    from ml.dx.data import load_patches, select_runs
    from ml.dx.lbnet import PARAM_RANGES  # the widths LBNetDx.load accepts back
    from ml.dx.predict import default_weights_path, get_task
    from ml.dx.workflow import DxTrainSettings, train_dx
    from ml.io.frames import ReadFaults

    from ..catalog import close_catalog, open_catalog, search_runs

    if args.epochs < 1 or args.patience < 1:
        raise CLIError("--epochs and --patience must be >= 1")
    if not 0.0 < args.val_fraction < 1.0:
        raise CLIError(f"--val-fraction {args.val_fraction:g}: expected a value in (0, 1)")
    if args.cv == 1 or args.cv < 0:
        raise CLIError(f"--cv {args.cv}: use 0 (off) or K >= 2 folds")
    if not PARAM_RANGES["width"].check(args.width):
        raise CLIError(f"--width {args.width}: expected {PARAM_RANGES['width'].describe()}")
    from ml.dx.channels import AblationError, check_subset

    try:
        channels = check_subset(args.channels.upper())
    except AblationError as exc:
        raise CLIError(f"--channels {args.channels!r}: {exc}") from None
    task = get_task(args.task)
    settings = DxTrainSettings(channels=channels,
        epochs=args.epochs, patience=args.patience, width=args.width, seed=args.seed,
        device=args.device, val_fraction=args.val_fraction, cv_folds=args.cv,
        cohort=args.cohort, split=args.split or None,
        patches_per_field=args.patches_per_field or None, command=command_line(),
        session_gain=args.session_gain)
    t0 = time.perf_counter()
    client = open_catalog(args.data_dir, uri=args.catalog, api_key=args.api_key)
    try:
        faults = ReadFaults(args.strict)  # killed runs, unreadable frame files
        crit = {"cohort": args.cohort, "split": args.split or None}
        found = search_runs(client, plan="mosaic", phenotype=list(task.all_phenotypes),
                            **crit).values()
        runs = select_runs(found, task, criteria=crit, faults=faults)
        # the classifier's default patching rule (LBNetDx stores the same in dx_meta)
        ds = load_patches(runs, task, patches_per_field=args.patches_per_field or None,
                          seed=args.seed, progress=not args.quiet, faults=faults)
    finally:
        close_catalog(client)
    tag = "" if channels == "RGB" else f"_{channels}"
    default_out = (default_weights_path(task.name) if channels == "RGB" else
                   Path("reports") / "ablations" / f"lbnet_{task.name}{tag}.pt")
    res = train_dx(ds, task, settings=settings,
                   weights_path=args.out or default_out,
                   report_dir=args.report_dir or Path("reports") / f"train-{task.name}{tag}",
                   report_extra={"load_seconds": round(time.perf_counter() - t0, 1),
                                 **faults.summary()},
                   progress=None if args.quiet else _print_epoch)
    report, fit = res.report, res.result
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "history"}))
    else:
        print(f"{task.name}: {report['n_patches_train']} training / "
              f"{report['n_patches_val']} validation patches from "
              f"{report['n_fields']} fields; best epoch {fit.best_epoch} of {fit.epochs_run} "
              f"({fit.seconds:.0f} s on {fit.device})")
        val, thr = report["val"], report["threshold"]
        print(f"validation: accuracy {val['accuracy']:.3f}, AUC {val['roc_auc']:.3f}, "
              f"Youden threshold {thr:.3f}")
        if faults.skipped_runs or faults.bad_frames:
            print(f"skipped {len(faults.skipped_runs)} run(s) without a stop document and "
                  f"{len(faults.bad_frames)} unreadable frame file(s) (warnings above)")
        print(f"weights: {res.weights}\nreport: {report['report']}")
    return 0
