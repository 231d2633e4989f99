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
scored on the same held-out patches. Ablations (:mod:`ml.dx.ablation`) retrain LBNet on each
channel subset with a reduced budget (``--ablation-epochs``, ``--ablation-patches``): they
compare channels with each other, not with the shipped model.
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

from .options import CLIError, add_catalog_options, add_task_option, add_weights_option

__all__ = ["add_parser", "run_evaluate", "sample_summary"]


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


def sample_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of correct / unidentifiable / wrong sample-level diagnoses."""
    n = len(samples)
    correct = sum(s["outcome"] == "correct" for s in samples)
    unid = sum(s["outcome"] == "unidentifiable" for s in samples)
    wrong = n - correct - unid
    ident = n - unid
    return {"n_samples": n, "correct": correct, "unidentifiable": unid, "wrong": wrong,
            "accuracy": correct / n if n else float("nan"),
            "accuracy_identified": correct / ident if ident else float("nan"),
            "unidentifiable_fraction": unid / n if n else float("nan"),
            "all_correct_or_unidentifiable": wrong == 0}


def run_evaluate(args: argparse.Namespace) -> int:
    from ml.common.metrics import confusion_matrix, patch_metrics, roc_curve
    from ml.dx.data import iter_run_fields, load_patch_sets, select_runs
    from ml.dx.predict import SampleVote, get_task
    from ml.io.frames import ReadFaults

    from ..catalog import close_catalog, open_catalog, search_runs
    from .options import load_dx

    task = get_task(args.task)
    dx = load_dx(args.weights, task.name)  # clear errors: missing weights, wrong task
    out = args.out or Path("reports") / task.name
    out.mkdir(parents=True, exist_ok=True)
    train_meta = dx.meta.get("train", {})
    used_seeds = set(train_meta.get("specimen_seeds") or [])
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
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
        fields: list[dict[str, Any]] = []
        votes: dict[str, SampleVote] = {}
        meta_s: dict[str, dict[str, Any]] = {}
        y_patch, s_patch, feats, abl_x, abl_y = [], [], [], [], []
        cams: dict[int, int] = {}
        images: dict[str, str] = {}
        want_feats = not args.no_baselines
        if want_feats:
            from ml.dx.baselines import patch_features
        for info, fc in iter_run_fields(runs, task, target_pixel_um=dx.meta.get("pixel_um",
                                                                               0.3),
                                        progress=not args.quiet, desc="classify",
                                        faults=faults):
            ps = dx.patches(fc.composite)
            if len(ps) == 0:
                fields.append({**info, "n_patches": 0, "field_vote": None})
                continue
            fdx = dx.classify_patches(ps)
            p = fdx.probabilities
            sid = info["sample_id"] or info["run_uid"]
            votes.setdefault(sid, SampleVote(dx.class_names, threshold=dx.vote_threshold))
            votes[sid].add(fdx)
            meta_s[sid] = {"sample_id": sid, "patient_id": info["patient_id"],
                           "phenotype": info["phenotype"], "label": info["label"],
                           "run_uid": info["run_uid"], "specimen_seed": info["specimen_seed"]}
            fields.append({**info, "n_patches": len(ps),
                           "field_vote": list(fdx.vote.probabilities)})
            y_patch.append(np.full(len(ps), info["label"], np.int64))
            s_patch.append(p[:, 1])
            if want_feats:
                feats.append(patch_features(ps.patches))
            if args.ablations:
                k = min(args.ablation_patches, len(ps))
                idx = np.sort(rng.choice(len(ps), size=k, replace=False))
                abl_x.append(ps.patches[idx])
                abl_y.append(np.full(k, info["label"], np.int64))
            lab = info["label"]
            if cams.get(lab, 0) < args.gradcam and fc.tile.index == 0:
                images[f"gradcam_{sid}"] = _gradcam(out, dx, fc.composite, ps, sid, fdx)
                cams[lab] = cams.get(lab, 0) + 1
        if not y_patch:
            raise CLIError(f"no valid patch in the {len(fields)} readable field(s) of the "
                             f"{len(runs)} selected run(s): nothing to evaluate")
        y = np.concatenate(y_patch)
        s = np.concatenate(s_patch)
        samples = []
        for sid, sv in votes.items():
            v = sv.vote()
            truth = dx.class_names[meta_s[sid]["label"]]
            outcome = ("unidentifiable" if v.label is None else
                       "correct" if v.label_name == truth else "wrong")
            samples.append({**meta_s[sid], "truth": truth, "diagnosis": v.label_name,
                            "probabilities": list(v.probabilities), "n_patches": v.n_patches,
                            "outcome": outcome})
        thr = dx.patch_threshold
        pm = patch_metrics(y, s, thr).as_dict()
        pm["n_patches"] = int(y.size)
        cm_patch = confusion_matrix(y, (s >= thr).astype(np.int64))
        truth_idx = np.array([sm["label"] for sm in samples])
        pred_idx = np.array([dx.class_names.index(sm["diagnosis"]) if sm["diagnosis"] in
                             dx.class_names else -1 for sm in samples])
        ident = pred_idx >= 0
        cm_sample = confusion_matrix(truth_idx[ident], pred_idx[ident]) if ident.any() \
            else np.zeros((2, 2), np.int64)
        report: dict[str, Any] = {
            "task": task.name, "class_names": list(dx.class_names),
            "weights": dx.meta.get("path"), "cohort": args.cohort,
            "train_cohort": train_meta.get("cohort"), "patch_threshold": thr,
            "vote_threshold": dx.vote_threshold, "n_runs": len(runs),
            "n_fields": len(fields), "patch": pm, "confusion_patches": cm_patch.tolist(),
            "sample": sample_summary(samples), "confusion_samples_identified":
                cm_sample.tolist(), "samples": samples, "fields": fields,
            **faults.summary()}
        curves = {"LBNet-Dx": roc_curve(y, s)[:2] + (pm["roc_auc"],)}
        if want_feats or args.ablations:
            # one pass over the training runs for both (same subsamples as separate loads)
            specs = ([(train_meta.get("patches_per_field") or 48, 0)] if want_feats else []) \
                + ([(args.ablation_patches, 1)] if args.ablations else [])
            sets = load_patch_sets(_train_runs(client, train_meta), task, specs,
                                   patch=dx.patches, progress=not args.quiet, faults=faults)
        if want_feats:
            report["baselines"], base_curves = _baselines(sets.pop(0), np.concatenate(feats),
                                                          y, thr)
            curves.update(base_curves)
        if args.ablations:
            report["ablations"] = _ablations(sets.pop(0), dx, args, np.concatenate(abl_x),
                                             np.concatenate(abl_y))
        report.update(faults.summary())  # the training runs' too
    finally:
        close_catalog(client)
    report["montecarlo"] = _montecarlo(samples, pm["accuracy"], report["sample"],
                                       args.mc_trials, dx.vote_threshold)
    images.update(_pngs(out, report, curves, cm_patch, cm_sample, dx.class_names))
    report["images"] = images
    report["seconds"] = round(time.perf_counter() - t0, 1)
    from ml.common.fileio import write_json

    report["report"] = str(write_json(out / "evaluation.json", report))
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k not in ("fields",)},
                         default=float))
    else:
        _print(report)
    return 0


def _train_runs(client, train_meta: dict) -> list:
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


def _baselines(ds, f_test, y_test, thr):
    from ml.dx.baselines import fit_baselines_features, patch_features

    f_train = patch_features(ds.x)
    res = fit_baselines_features(f_train, ds.y, f_test, y_test, seed=0, threshold=thr)
    curves = {name: tuple(r["roc"]) for name, r in res.items() if r["roc"] is not None}
    return {name: {"metrics": r["metrics"], "seconds": r["seconds"]}
            for name, r in res.items()}, curves


def _ablations(ds, dx, args, x_test, y_test):
    from ml.dx.ablation import CHANNEL_SUBSETS, run_ablation
    from ml.dx.cv import split_patients
    from ml.dx.lbnet import LiteBlendNet
    from ml.dx.train import TrainConfig

    tr, va = split_patients(ds.groups, ds.y, 0.2, seed=0)
    cfg = TrainConfig(max_epochs=args.ablation_epochs, patience=args.ablation_epochs, seed=0)
    k = len(dx.class_names)

    def show(subset, rec=None):
        if not args.quiet:
            print(f"[ablation {subset}] {rec or ''}", file=sys.stderr, flush=True)

    res = run_ablation(ds.x[tr], ds.y[tr], ds.x[va], ds.y[va], x_test, y_test,
                       subsets=CHANNEL_SUBSETS, config=cfg,
                       model_factory=lambda: LiteBlendNet(k, width=32), seed=0,
                       progress=show)
    return {name: {"metrics": r["metrics"], "best_epoch": r["best_epoch"],
                   "epochs_run": r["epochs_run"], "seconds": r["seconds"],
                   "n_train": int(tr.sum()), "n_test": int(len(y_test))}
            for name, r in res.items()}


def _montecarlo(samples, patch_acc, sample_sum, trials, threshold):
    from ml.dx.montecarlo import accuracy_curve

    n = [s["n_patches"] for s in samples] or [30, 90]
    grid = np.round(np.linspace(0.5, 1.0, 21), 3)
    res = accuracy_curve(grid, n_trials=int(trials), rng=np.random.default_rng(0),
                         n_patches=(int(min(n)), int(max(n))), threshold=threshold)
    return {"n_trials": int(trials), "n_patches_range": [int(min(n)), int(max(n))],
            "curve": [r.as_dict() for r in res], "observed_patch_accuracy": patch_acc,
            "observed_sample_accuracy": sample_sum["accuracy"]}


def _gradcam(out: Path, dx, composite, ps, sid: str, fdx) -> str:
    from ml.dx.gradcam import field_cam, overlay_png

    target = fdx.vote.label if fdx.vote is not None and fdx.vote.label is not None else \
        int(np.argmax(fdx.vote.probabilities)) if fdx.vote is not None else 1
    cam = field_cam(dx.model, composite, ps, target_class=int(target))
    rgb = np.moveaxis(composite, 0, -1)
    return str(overlay_png(out / f"gradcam_{sid}.png", rgb, cam))


def _pngs(out: Path, report, curves, cm_patch, cm_sample, names) -> dict[str, str]:
    from ml.common.plotting import bars_png, confusion_png, roc_png
    from ml.dx.report import montecarlo_png

    task = report["task"]
    imgs = {"roc": str(roc_png(out / "roc.png", curves, title=f"{task}: held-out patches")),
            "confusion_patches": str(confusion_png(out / "confusion_patches.png", cm_patch,
                                                   list(names),
                                                   title=f"{task}: patches")),
            "confusion_samples": str(confusion_png(out / "confusion_samples.png", cm_sample,
                                                   list(names),
                                                   title=f"{task}: identified samples"))}
    keys = ("accuracy", "roc_auc", "f1")
    if "baselines" in report:
        vals = {"LBNet-Dx": {k: report["patch"][k] for k in keys}}
        vals.update({n: {k: r["metrics"][k] for k in keys}
                     for n, r in report["baselines"].items()})
        imgs["baselines"] = str(bars_png(out / "baselines.png", vals,
                                         title=f"{task}: patch level, held-out"))
    if "ablations" in report:
        vals = {n: {k: r["metrics"][k] for k in ("accuracy", "roc_auc")}
                for n, r in report["ablations"].items()}
        imgs["ablations"] = str(bars_png(out / "ablations.png", vals,
                                         title=f"{task}: channel ablations (short training)"))
    mc = report["montecarlo"]
    imgs["montecarlo"] = str(montecarlo_png(
        out / "montecarlo.png", mc["curve"], observed=mc["observed_patch_accuracy"],
        title=f"{task}: Monte-Carlo ({mc['n_trials']:.0e} samples per point)"))
    return imgs


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
        m = r["metrics"]
        print(f"  baseline {name:>16}: accuracy {m['accuracy']:.3f}, AUC {m['roc_auc']:.3f}")
    for name, r in (report.get("ablations") or {}).items():
        m = r["metrics"]
        print(f"  ablation {name:>3}: accuracy {m['accuracy']:.3f}, AUC {m['roc_auc']:.3f}")
    if report["skipped_runs"] or report["bad_frames"]:
        print(f"skipped {len(report['skipped_runs'])} run(s) without a stop document and "
              f"{len(report['bad_frames'])} unreadable frame file(s) (warnings above)")
    print(f"report: {report['report']}")
