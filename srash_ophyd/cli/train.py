"""``srash train``: train LBNet-Dx on catalog runs selected by query.

Data: the mosaic runs of the task's phenotypes in ``--cohort`` (and ``--split``), their
fields rebuilt into composites (:mod:`ml.dx.data`), valid patches cut with the
classifier's patching rule, at most ``--patches-per-field`` per field (seeded subsample).
Patients are split into training and validation groups (``--val-fraction``, never a patient
on both sides, every class on both sides); the validation patients drive early stopping
and Youden's patch threshold (the paper: "threshold from Youden's index on training
results"; here the training cohort's held-back patients, which is less optimistic than the
fitted patches themselves).

``--cv K`` first runs K-fold cross-validation grouped by patient (the paper: 9 folds over
images, split by sample) with the same settings and reports every fold; the final model is
then trained as above. Weights are written with :func:`ml.common.weights.save_weights` (metadata:
model, task, thresholds, training cohort, the specimen seeds used, history, metrics).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ml.io.frames import add_strict_option

from .options import CLIError, add_catalog_options, add_task_option, command_line

__all__ = ["add_parser", "run_train", "zscore_inplace"]


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
    add_strict_option(p)
    add_catalog_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_train)


def zscore_inplace(x: np.ndarray) -> np.ndarray:
    """The paper's z-score applied in place to float32 (N, 3, H, W) [0, 1] patches
    (same float32 arithmetic as :func:`ml.dx.preprocess.normalize`, without a copy)."""
    from ml.dx.preprocess import MEAN, STD

    for c in range(3):
        x[:, c] -= np.float32(MEAN[c])
        x[:, c] /= np.float32(STD[c])
    return x


def _epoch_printer(quiet: bool, label: str):
    def show(rec: dict[str, float]) -> None:
        if not quiet:
            print(f"[{label}] epoch {int(rec['epoch']):3d}  lr {rec['lr']:.2e}  "
                  f"train loss {rec['train_loss']:.4f} acc {rec['train_acc']:.3f}  "
                  f"val loss {rec['val_loss']:.4f} acc {rec['val_acc']:.3f}  "
                  f"({rec['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return show


def _config(args: argparse.Namespace):
    """The training configuration of the command's options (the paper's defaults else)."""
    from ml.dx.train import TrainConfig

    return TrainConfig(max_epochs=args.epochs, patience=args.patience, seed=args.seed,
                       device=args.device)


def _fit(ds, tr, va, args, label: str, *, n_classes: int) -> tuple[Any, Any, np.ndarray]:
    """Train one model on patches ``tr`` (bool mask), validate on ``va``; returns (model,
    TrainResult, validation probabilities)."""
    import torch

    from ml.dx.lbnet import LiteBlendNet
    from ml.dx.predict import predict_proba
    from ml.dx.train import train_model

    cfg = _config(args)
    torch.manual_seed(args.seed)
    model = LiteBlendNet(n_classes, width=args.width)
    res = train_model(model, ds.x[tr], ds.y[tr], ds.x[va], ds.y[va], config=cfg,
                      progress=_epoch_printer(args.quiet, label))
    return model, res, predict_proba(res.model, ds.x[va])


def run_train(args: argparse.Namespace) -> int:
    import torch

    from ml.common.metrics import patch_metrics, youden_threshold
    from ml.common.weights import save_weights
    from ml.dx.cv import group_kfold
    from ml.dx.data import load_patches, select_runs
    from ml.dx.lbnet import PARAM_RANGES  # the widths LBNetDx.load accepts back
    from ml.dx.predict import LBNetDx, default_weights_path, get_task
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
    task = get_task(args.task)
    out = args.out or default_weights_path(task.name)
    report_dir = args.report_dir or Path("reports") / f"train-{task.name}"
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
    t_load = time.perf_counter() - t0
    zscore_inplace(ds.x)
    k = len(task.class_names)
    cv_report = None
    if args.cv:
        folds = []
        oof = np.full(len(ds), np.nan)
        for i, (tr_idx, va_idx) in enumerate(group_kfold(ds.groups, args.cv, rng=args.seed)):
            tr = np.zeros(len(ds), bool)
            tr[tr_idx] = True
            va = np.zeros(len(ds), bool)
            va[va_idx] = True
            _, res, pv = _fit(ds, tr, va, args, f"fold {i + 1}/{args.cv}", n_classes=k)
            oof[va] = pv[:, 1]
            m = patch_metrics(ds.y[va], pv[:, 1], 0.5).as_dict() if \
                len(np.unique(ds.y[va])) == 2 else {"accuracy": float(
                    np.mean((pv[:, 1] >= 0.5) == ds.y[va]))}
            folds.append({"fold": i, "n_val": int(va.sum()), "best_epoch": res.best_epoch,
                          **m})
        thr_cv, j_cv = youden_threshold(oof, ds.y)
        accs = [f["accuracy"] for f in folds]
        cv_report = {"folds": folds, "accuracy_mean": float(np.mean(accs)),
                     "accuracy_std": float(np.std(accs)), "youden_threshold_oof": thr_cv,
                     "youden_j_oof": j_cv}
    from ml.dx.cv import split_patients

    tr, va = split_patients(ds.groups, ds.y, args.val_fraction, seed=args.seed)
    model, res, pv = _fit(ds, tr, va, args, "final", n_classes=k)
    thr, j = youden_threshold(pv[:, 1], ds.y[va])
    val = patch_metrics(ds.y[va], pv[:, 1], thr).as_dict()
    dx = LBNetDx(model, task=task, patch_threshold=thr)
    seeds = sorted({f["specimen_seed"] for f in ds.fields if f["specimen_seed"] is not None})
    cfg = _config(args)
    train_groups = sorted(set(ds.groups[tr].tolist()))
    val_groups = sorted(set(ds.groups[va].tolist()))
    meta = {"model": {"num_classes": k, "width": args.width}, "dx": dx.dx_meta(),
            "pixel_um": 0.3,
            "train": {"cohort": args.cohort, "split": args.split or None,
                      "runs": sorted({f["run_uid"] for f in ds.fields}),
                      "specimen_seeds": seeds, "patients_train": train_groups,
                      "patients_val": val_groups, "n_fields": len(ds.fields),
                      "n_patches_train": int(tr.sum()), "n_patches_val": int(va.sum()),
                      "patches_per_field": args.patches_per_field or None,
                      "config": cfg.to_dict(), "best_epoch": res.best_epoch,
                      "epochs_run": res.epochs_run, "stopped_early": res.stopped_early,
                      "seconds": round(res.seconds, 1), "device": res.device,
                      "torch": torch.__version__, "youden_j": j, "val_metrics": val,
                      "cv": cv_report,
                      "command": command_line()}}
    path = save_weights(model, out, meta=meta)
    report = {"task": task.name, "weights": str(path), "threshold": thr, "val": val,
              "history": res.history, **{k2: meta["train"][k2] for k2 in (
                  "cohort", "n_fields", "n_patches_train", "n_patches_val", "best_epoch",
                  "epochs_run", "seconds", "patients_train", "patients_val", "cv")},
              "load_seconds": round(t_load, 1), **faults.summary()}
    images = _train_pngs(report_dir, res.history, ds.y[va], pv[:, 1], thr, task)
    report["images"] = images
    from ml.common.fileio import write_json

    report["report"] = str(write_json(report_dir / "train.json", report))
    if args.json:
        print(json.dumps({k2: v for k2, v in report.items() if k2 != "history"}))
    else:
        print(f"{task.name}: {meta['train']['n_patches_train']} training / "
              f"{meta['train']['n_patches_val']} validation patches from "
              f"{len(ds.fields)} fields; best epoch {res.best_epoch} of {res.epochs_run} "
              f"({res.seconds:.0f} s on {res.device})")
        print(f"validation: accuracy {val['accuracy']:.3f}, AUC {val['roc_auc']:.3f}, "
              f"Youden threshold {thr:.3f}")
        if faults.skipped_runs or faults.bad_frames:
            print(f"skipped {len(faults.skipped_runs)} run(s) without a stop document and "
                  f"{len(faults.bad_frames)} unreadable frame file(s) (warnings above)")
        print(f"weights: {path}\nreport: {report['report']}")
    return 0


def _train_pngs(report_dir: Path, hist: dict, y: np.ndarray, s: np.ndarray, thr: float,
                task) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ml.common.metrics import roc_auc, roc_curve
    from ml.common.plotting import roc_png

    report_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    ax[0].plot(hist["epoch"], hist["train_loss"], label="train")
    ax[0].plot(hist["epoch"], hist["val_loss"], label="validation")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("loss")
    ax[0].legend()
    ax[1].plot(hist["epoch"], hist["train_acc"], label="train")
    ax[1].plot(hist["epoch"], hist["val_acc"], label="validation")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("patch accuracy")
    ax[1].legend()
    fig.suptitle(f"LBNet-Dx training, {task.name}")
    fig.tight_layout()
    curves = report_dir / "learning_curves.png"
    fig.savefig(curves)
    plt.close(fig)
    out = {"learning_curves": str(curves)}
    if len(np.unique(y)) == 2:
        fpr, tpr, thresholds = roc_curve(y, s)
        i = int(np.argmin(np.abs(np.asarray(thresholds) - thr)))
        out["roc"] = str(roc_png(report_dir / "val_roc.png",
                                 {"LBNet-Dx (validation)": (fpr, tpr, roc_auc(y, s))},
                                 points={"LBNet-Dx (validation)": (fpr[i], tpr[i])},
                                 title=f"{task.name}: validation patients"))
    return out
