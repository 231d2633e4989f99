"""``srash evaluate``: LBNet-Dx on a held-out cohort, with the paper's full report.

Selects the held-out runs by catalog query (``--cohort``/``--split``), refuses any run whose
specimen seed was used in training (from the weights' metadata), classifies every field
with the same :class:`ml.dx.predict.LBNetDx` used live, and writes to ``--out``:

* ``evaluation.json``: patch-level accuracy, recall, specificity, precision, F1, ROC AUC and
  confusion matrix at the training Youden threshold; per-sample votes and sample-level
  accuracy (correct / unidentifiable / wrong); baselines; ablations; Monte-Carlo curve.
* PNGs: ``roc.png`` (LBNet-Dx and baselines), ``confusion_patches.png``,
  ``confusion_samples.png``, ``baselines.png``, ``ablations.png``, ``montecarlo.png``,
  ``gradcam_<sample>.png`` (one field per class).

Baselines (SVM, KNN, decision tree, gradient tree boosting; :mod:`ml.dx.baselines`) are fitted
on the training runs recorded in the weights (same patching, same patches per field) and
scored on the same held-out patches, each at its own Youden threshold (fitted on
out-of-fold scores of the training patches, folds grouped by patient) and with LBNet's
weighted vote per sample (correct / unidentifiable / wrong; :mod:`ml.dx.classical`); their
metrics at LBNet's threshold are kept for comparison. Ablations (:mod:`ml.dx.ablation`)
retrain LBNet on each channel subset with a reduced budget (``--ablation-epochs``,
``--ablation-patches``): they compare channels with each other, not with the shipped model.

The workflow is :func:`ml.dx.workflow.evaluate_dx`; this command selects the runs, loads the
training patches the baselines and ablations need, streams the held-out fields into it, and
prints its report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from .options import (
    CLIError,
    add_catalog_options,
    add_strict_option,
    add_task_option,
    add_weights_option,
)

__all__ = ["add_parser", "run_evaluate"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="evaluate LBNet-Dx on held-out catalog runs (report + PNGs)",
        description="Classify a held-out cohort selected by catalog query and write the "
                    "paper's report: patch- and sample-level metrics, ROC, confusion "
                    "matrices, baselines, channel ablations, Grad-CAM, Monte-Carlo curve.")
    add_task_option(p)
    add_weights_option(p)
    p.add_argument("--cohort", default=None, help="start.cohort of the held-out runs")
    p.add_argument("--split", default="test", help="start.split (default test; '' = any)")
    p.add_argument("--out", type=Path, default=None, help="report folder (reports/<task>)")
    p.add_argument("--no-baselines", action="store_true", help="skip the baselines")
    p.add_argument("--ablations", action="store_true",
                   help="retrain on each channel subset (7 short trainings)")
    p.add_argument("--ablation-epochs", type=int, default=4, help="epochs per ablation (4)")
    p.add_argument("--ablation-patches", type=int, default=16,
                   help="patches per field for ablation training and testing (16)")
    p.add_argument("--gradcam", type=int, default=1,
                   help="Grad-CAM overlays for this many samples per class (1)")
    p.add_argument("--mc-trials", type=int, default=100_000,
                   help="Monte-Carlo samples per patch accuracy (default 1e5; the paper 1e6)")
    p.add_argument("--allow-seed-overlap", action="store_true",
                   help="evaluate even on runs whose specimen seed was used in training")
    add_strict_option(p)
    add_catalog_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_evaluate)


def _print_ablation(stage: str, rec: Mapping[str, Any]) -> None:
    """Progress of :func:`ml.dx.workflow.evaluate_dx`: one line per ablation epoch."""
    print(f"[{stage}] {rec or ''}", file=sys.stderr, flush=True)


def run_evaluate(args: argparse.Namespace) -> int:
    from ml.dx.data import iter_run_fields, load_patch_sets, select_runs
    from ml.dx.predict import get_task
    from ml.dx.workflow import DxEvalSettings, evaluate_dx
    from ml.io.frames import ReadFaults

    from ..catalog import close_catalog, open_catalog, search_runs
    from .options import load_dx

    t0 = time.perf_counter()
    task = get_task(args.task)
    dx = load_dx(args.weights, task.name)  # clear errors: missing weights, wrong task
    settings = DxEvalSettings(baselines=not args.no_baselines, ablations=args.ablations,
                              ablation_epochs=args.ablation_epochs,
                              ablation_patches=args.ablation_patches, gradcam=args.gradcam,
                              mc_trials=args.mc_trials, cohort=args.cohort)
    train_meta = dx.meta.get("train", {})
    used_seeds = set(train_meta.get("specimen_seeds") or [])
    client = open_catalog(args.data_dir, uri=args.catalog, api_key=args.api_key)
    try:
        faults = ReadFaults(args.strict)  # killed runs, unreadable frame files
        crit = {"cohort": args.cohort, "split": args.split or None}
        found = search_runs(client, plan="mosaic", phenotype=list(task.all_phenotypes),
                            **crit).values()
        runs = select_runs(found, task, criteria=crit, faults=faults)
        overlap = sorted({r.metadata["start"].get("specimen_seed") for r in runs} & used_seeds)
        if overlap and not args.allow_seed_overlap:
            raise CLIError(
                f"{len(overlap)} selected run(s) use specimen seeds seen in training "
                f"(e.g. {overlap[:5]}): a held-out evaluation needs new patients; select "
                "another cohort or pass --allow-seed-overlap")
        # one pass over the training runs for both (same subsamples as separate loads)
        specs = ([(train_meta.get("patches_per_field") or 48, 0)] if settings.baselines
                 else []) + ([(args.ablation_patches, 1)] if settings.ablations else [])
        sets = load_patch_sets(_train_runs(client, train_meta), task, specs,
                               patch=dx.patches, progress=not args.quiet,
                               faults=faults) if specs else []
        baseline_train = sets.pop(0) if settings.baselines else None
        ablation_train = sets.pop(0) if settings.ablations else None
        fields = iter_run_fields(runs, task, target_pixel_um=dx.meta.get("pixel_um", 0.3),
                                 progress=not args.quiet, desc="classify", faults=faults)
        report = evaluate_dx(dx, fields, settings=settings,
                             report_dir=args.out or Path("reports") / task.name,
                             n_runs=len(runs), faults=faults,
                             progress=None if args.quiet else _print_ablation,
                             baseline_train=baseline_train, ablation_train=ablation_train,
                             clock_start=t0)
    finally:
        close_catalog(client)
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k not in ("fields",)},
                         default=float))
    else:
        _print(report)
    return 0


def _train_runs(client, train_meta: dict) -> list:
    """The training runs recorded in the weights, from the catalog."""
    from tiled.queries import In

    uids = train_meta.get("runs") or []
    if not uids:
        raise CLIError("the weights record no training runs: baselines and ablations need "
                         "the training cohort in the catalog (or use --no-baselines)")
    runs = list(client.search(In("uid", list(uids))).values())
    if not runs:
        raise CLIError(f"the {len(uids)} training runs recorded in the weights are not in "
                         "this catalog: run `srash cohort` for the training cohort, or use "
                         "--no-baselines")
    return runs


def _print(report: dict) -> None:
    pm, sm = report["patch"], report["sample"]
    print(f"{report['task']} on {report['n_fields']} held-out fields of "
          f"{sm['n_samples']} samples ({report['cohort']})")
    print(f"patch level ({pm['n_patches']} patches, threshold "
          f"{report['patch_threshold']:.3f}): accuracy {pm['accuracy']:.3f}, recall "
          f"{pm['recall']:.3f}, specificity {pm['specificity']:.3f}, precision "
          f"{pm['precision']:.3f}, F1 {pm['f1']:.3f}, AUC {pm['roc_auc']:.3f}")
    print(f"sample level: {sm['correct']} correct, {sm['unidentifiable']} unidentifiable, "
          f"{sm['wrong']} wrong (accuracy {sm['accuracy']:.3f})")
    for name, r in (report.get("baselines") or {}).items():
        m, bs = r["metrics"], r["sample"]
        print(f"  baseline {name:>16}: accuracy {m['accuracy']:.3f} at its threshold "
              f"{r['threshold']:.3f}, AUC {m['roc_auc']:.3f}; samples {bs['correct']} "
              f"correct, {bs['unidentifiable']} unidentifiable, {bs['wrong']} wrong")
    for name, r in (report.get("ablations") or {}).items():
        m = r["metrics"]
        print(f"  ablation {name:>3}: accuracy {m['accuracy']:.3f}, AUC {m['roc_auc']:.3f}")
    if report["skipped_runs"] or report["bad_frames"]:
        print(f"skipped {len(report['skipped_runs'])} run(s) without a stop document and "
              f"{len(report['bad_frames'])} unreadable frame file(s) (warnings above)")
    print(f"report: {report['report']}")
