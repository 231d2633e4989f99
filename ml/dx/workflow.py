"""LBNet-Dx workflows: training (``srash train``) and held-out evaluation (``srash evaluate``).

Plain functions over data that is already loaded: a :class:`~ml.dx.data.PatchDataset` for
training, an iterable of ``(field_info, FieldComposite)`` (:func:`ml.dx.data.iter_run_fields`)
for evaluation. The command line (the composition root) opens the catalog, selects and loads
the runs, calls one function here and prints what it returns; these functions write the
weights, the report JSON and the PNGs into the folders they are given.

Training (:func:`train_dx`): the patches are z-scored in place (:func:`zscore_inplace`);
with ``cv_folds = K`` a K-fold cross-validation grouped by patient and stratified by label
(:func:`cross_validate`; :func:`ml.dx.cv.group_kfold` with ``y``) gives every patch one
out-of-fold score and Youden's threshold over them; the final model is trained on the
training patients and validated on held-back patients (:func:`ml.dx.cv.split_patients`),
whose scores give the patch threshold stored with the weights.

Evaluation (:func:`evaluate_dx`): every field is classified with the same
:class:`~ml.dx.predict.LBNetDx` used live; patch metrics at the stored threshold, one vote
per sample, baselines fitted on the training patches, channel ablations, the Monte-Carlo
curve of the vote, Grad-CAM overlays; ``evaluation.json`` and PNGs.

Progress: the optional ``progress(stage, record)`` callback is called after every training
epoch (``stage`` ``"fold i/K"``, ``"final"`` or ``"ablation <channels>"``; ``record`` the
epoch's numbers, :attr:`ml.dx.train.TrainResult.history` keys).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
from numpy.typing import NDArray

from ml.common.errors import MLError
from ml.dx.data import FieldComposite, PatchDataset
from ml.dx.predict import LBNetDx, Task
from ml.io.frames import ReadFaults

__all__ = ["Progress", "WorkflowError", "zscore_inplace", "DxTrainSettings", "CVOutcome",
           "DxTrainOutcome", "cross_validate", "train_dx", "DxEvalSettings", "sample_summary",
           "evaluate_dx"]

#: ``progress(stage, record)``: called after each training epoch (module doc).
Progress = Callable[[str, Mapping[str, Any]], None]


class WorkflowError(MLError):
    """Settings a workflow cannot use, or data that leaves nothing to train or evaluate."""


def zscore_inplace(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """The paper's z-score applied in place to float32 ``(N, 3, H, W)`` [0, 1] patches
    (same float32 arithmetic as :func:`ml.dx.preprocess.normalize`, without a copy)."""
    from ml.dx.preprocess import MEAN, STD

    for c in range(3):
        x[:, c] -= np.float32(MEAN[c])
        x[:, c] /= np.float32(STD[c])
    return x


# ============================================================================ training
@dataclasses.dataclass(frozen=True)
class DxTrainSettings:
    """Settings of :func:`train_dx`.

    Attributes
    ----------
    epochs, patience : epoch cap and early-stopping patience (>= 1).
    width : LiteBlendNet base width (:data:`ml.dx.lbnet.PARAM_RANGES`).
    seed : seeds the model initialisation, the patient split, folds and batches.
    device : ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
    val_fraction : fraction of each class's patients held back for validation, in (0, 1).
    cv_folds : K-fold cross-validation by patient before the final fit (0 = off, else >= 2).
    pixel_um : pixel size the patches were cut at (um), recorded with the weights.
    cohort, split, patches_per_field, command : provenance recorded with the weights.
    channels : composite channels the model sees (``"RGB"``, or a subset for a channel
        ablation trained at full length: :mod:`ml.dx.channels`).
    session_gain : add the session-gain augmentation to the paper's
        (:data:`ml.dx.augment.SESSION_GAIN_SIGMA`; default off).
    """

    epochs: int = 12
    patience: int = 8
    width: int = 32
    seed: int = 0
    device: str = "auto"
    val_fraction: float = 0.2
    cv_folds: int = 0
    pixel_um: float = 0.3
    cohort: str | None = None
    split: str | None = None
    patches_per_field: int | None = None
    command: str | None = None
    channels: str = "RGB"
    session_gain: bool = False

    def __post_init__(self) -> None:
        from ml.dx.channels import AblationError, check_subset
        from ml.dx.lbnet import PARAM_RANGES

        try:
            object.__setattr__(self, "channels", check_subset(self.channels))
        except AblationError as exc:
            raise WorkflowError(str(exc)) from None

        if self.epochs < 1 or self.patience < 1:
            raise WorkflowError(f"epochs {self.epochs}, patience {self.patience}: both must "
                                "be >= 1")
        if not 0.0 < self.val_fraction < 1.0:
            raise WorkflowError(f"val_fraction {self.val_fraction!r}: expected a value in "
                                "(0, 1)")
        if self.cv_folds == 1 or self.cv_folds < 0:
            raise WorkflowError(f"cv_folds {self.cv_folds}: use 0 (off) or K >= 2 folds")
        if not PARAM_RANGES["width"].check(self.width):
            raise WorkflowError(f"width {self.width}: expected "
                                f"{PARAM_RANGES['width'].describe()}")

    def train_config(self) -> Any:
        """The :class:`ml.dx.train.TrainConfig` of these settings (the paper's otherwise)."""
        from ml.dx.augment import SESSION_GAIN_SIGMA, AugmentConfig
        from ml.dx.train import TrainConfig

        aug = AugmentConfig(session_gain_sigma=SESSION_GAIN_SIGMA) if self.session_gain else None
        return TrainConfig(max_epochs=self.epochs, patience=self.patience, seed=self.seed,
                           device=self.device, augment_config=aug)


@dataclasses.dataclass
class CVOutcome:
    """Result of :func:`cross_validate`.

    Attributes
    ----------
    folds : one report row per fold: ``fold``, ``n_val``, ``best_epoch`` and the fold's
        patch metrics at 0.5 (accuracy only when its validation patches are of one class).
    val_indices : each fold's validation patch indices (sorted int64); disjoint, covering
        every patch once.
    oof_scores : ``(N,)`` out-of-fold positive-class score of every patch.
    threshold, youden_j : Youden's threshold over ``oof_scores`` (an observed score) and J.
    """

    folds: list[dict[str, Any]]
    val_indices: list[NDArray[np.int64]]
    oof_scores: NDArray[np.float64]
    threshold: float
    youden_j: float

    def as_report(self) -> dict[str, Any]:
        """The ``cv`` block of the training report and the weights metadata."""
        accs = [f["accuracy"] for f in self.folds]
        return {"folds": self.folds, "accuracy_mean": float(np.mean(accs)),
                "accuracy_std": float(np.std(accs)), "youden_threshold_oof": self.threshold,
                "youden_j_oof": self.youden_j}


@dataclasses.dataclass
class DxTrainOutcome:
    """Result of :func:`train_dx`.

    Attributes
    ----------
    report : what ``train.json`` holds, plus ``"report"`` (its path).
    meta : the metadata saved with the weights.
    weights : path of the weights file written.
    result : the final fit (:class:`ml.dx.train.TrainResult`).
    cv : the cross-validation, None when ``cv_folds`` is 0.
    """

    report: dict[str, Any]
    meta: dict[str, Any]
    weights: Path
    result: Any
    cv: CVOutcome | None


def _fit(ds: PatchDataset, tr: NDArray[np.bool_] | slice, va: NDArray[np.bool_] | slice,
         settings: DxTrainSettings, n_classes: int, label: str,
         progress: Progress | None) -> tuple[Any, Any, NDArray[np.float64]]:
    """Train one model on patches ``tr``, validate on ``va`` (bool masks, or slices, which
    select views of ``ds.x`` instead of copies); (model, TrainResult, validation
    probabilities)."""
    import torch

    from ml.dx.lbnet import LiteBlendNet
    from ml.dx.predict import predict_proba
    from ml.dx.train import train_model

    torch.manual_seed(settings.seed)
    model = LiteBlendNet(n_classes, width=settings.width)
    if settings.channels != "RGB":  # an ablation: dropped channels fixed inside forward
        from ml.dx.channels import ChannelMask

        model = ChannelMask(model, settings.channels)
    show = None if progress is None else (lambda rec: progress(label, rec))
    xv = ds.x[va]
    res = train_model(model, ds.x[tr], ds.y[tr], xv, ds.y[va],
                      config=settings.train_config(), progress=show)
    return model, res, predict_proba(res.model, xv)


def permute_inplace(ds: PatchDataset, order: NDArray[np.int64]) -> None:
    """Reorder every per-patch array of ``ds`` so that new patch ``i`` is old ``order[i]``.

    The patches are moved in place by following the permutation's cycles, one patch of
    extra memory, so a dataset of many GB is never copied (boolean indexing would copy it).
    """
    order = np.asarray(order, dtype=np.int64)
    n = len(ds)
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise WorkflowError(f"order must be a permutation of 0..{n - 1}")
    x = ds.x
    done = np.zeros(n, dtype=bool)
    for start in range(n):
        if done[start]:
            continue
        done[start] = True
        if order[start] == start:
            continue
        tmp = x[start].copy()
        i = start
        while True:
            j = int(order[i])
            if j == start:
                x[i] = tmp
                break
            x[i] = x[j]
            done[j] = True
            i = j
    for name in ("y", "weights", "groups", "field"):
        setattr(ds, name, getattr(ds, name)[order])


def cross_validate(ds: PatchDataset, task: Task, settings: DxTrainSettings, *,
                   progress: Progress | None = None) -> CVOutcome:
    """K-fold cross-validation by patient (``settings.cv_folds`` folds).

    Folds: :func:`ml.dx.cv.group_kfold` over ``ds.groups`` stratified by ``ds.y`` and
    seeded with ``settings.seed``: every patient's patches are in exactly one validation
    fold. Each fold trains a fresh LiteBlendNet on the other folds.

    Parameters
    ----------
    ds : PatchDataset
        Patches already z-scored (:func:`zscore_inplace`).
    task : Task
        Gives the number of classes.
    settings : DxTrainSettings
        ``cv_folds >= 2``.
    progress : callable, keyword-only
        ``progress("fold i/K", epoch_record)``.

    Returns
    -------
    CVOutcome

    Raises
    ------
    WorkflowError
        ``cv_folds`` < 2.
    ml.dx.cv.CVError
        Fewer patients than folds.
    """
    from ml.common.metrics import patch_metrics, youden_threshold
    from ml.dx.cv import group_kfold

    k_folds = settings.cv_folds
    if k_folds < 2:
        raise WorkflowError(f"cv_folds {k_folds}: cross-validation needs >= 2 folds")
    n_classes = len(task.class_names)
    folds: list[dict[str, Any]] = []
    val_indices: list[NDArray[np.int64]] = []
    oof = np.full(len(ds), np.nan)
    splits = group_kfold(ds.groups, k_folds, y=ds.y, rng=settings.seed)
    for i, (tr_idx, va_idx) in enumerate(splits):
        tr = np.zeros(len(ds), bool)
        tr[tr_idx] = True
        va = np.zeros(len(ds), bool)
        va[va_idx] = True
        _, res, pv = _fit(ds, tr, va, settings, n_classes, f"fold {i + 1}/{k_folds}",
                          progress)
        oof[va] = pv[:, 1]
        m = patch_metrics(ds.y[va], pv[:, 1], 0.5).as_dict() if \
            len(np.unique(ds.y[va])) == 2 else {"accuracy": float(
                np.mean((pv[:, 1] >= 0.5) == ds.y[va]))}
        folds.append({"fold": i, "n_val": int(va.sum()), "best_epoch": res.best_epoch, **m})
        val_indices.append(va_idx)
    thr, j = youden_threshold(oof, ds.y)
    return CVOutcome(folds=folds, val_indices=val_indices, oof_scores=oof, threshold=thr,
                     youden_j=j)


def train_dx(ds: PatchDataset, task: Task, *, settings: DxTrainSettings,
             weights_path: str | Path, report_dir: str | Path,
             report_extra: Mapping[str, Any] | None = None,
             progress: Progress | None = None) -> DxTrainOutcome:
    """Train LBNet-Dx on a patch dataset; write the weights, ``train.json`` and the PNGs.

    Parameters
    ----------
    ds : PatchDataset
        [0, 1] patches of the task's classes with their patients (``groups``) and fields
        (:func:`ml.dx.data.load_patches`); ``ds.x`` is z-scored in place and the
        patches are reordered in place, training patients' first (:func:`permute_inplace`;
        no copy of the patches is made).
    task : Task
    settings : DxTrainSettings, keyword-only
    weights_path : path, keyword-only
        Weights file to write (:func:`ml.common.weights.save_weights`).
    report_dir : path, keyword-only
        Folder of ``train.json``, ``learning_curves.png`` and ``val_roc.png``.
    report_extra : mapping, keyword-only
        More report entries (e.g. load time, read faults), after the training ones.
    progress : callable, keyword-only
        Called after every epoch (module doc).

    Returns
    -------
    DxTrainOutcome

    Raises
    ------
    ml.dx.cv.CVError
        A class with fewer than 2 patients, or fewer patients than folds.
    """
    import torch

    from ml.common.fileio import write_json
    from ml.common.metrics import patch_metrics, youden_threshold
    from ml.common.weights import save_weights
    from ml.dx.cv import split_patients

    report_dir = Path(report_dir)
    zscore_inplace(ds.x)
    k = len(task.class_names)
    cv = cross_validate(ds, task, settings, progress=progress) if settings.cv_folds else None
    cv_report = cv.as_report() if cv is not None else None
    tr, va = split_patients(ds.groups, ds.y, settings.val_fraction, seed=settings.seed)
    # training patches first, then validation, each in its old order: both become views
    # of ds.x (no copy of the patches; the same batches as boolean selection would give)
    permute_inplace(ds, np.concatenate([np.flatnonzero(tr), np.flatnonzero(va)]))
    n_tr, n_va = int(tr.sum()), int(va.sum())
    tr, va = slice(0, n_tr), slice(n_tr, n_tr + n_va)
    model, res, pv = _fit(ds, tr, va, settings, k, "final", progress)
    thr, j = youden_threshold(pv[:, 1], ds.y[va])
    val = patch_metrics(ds.y[va], pv[:, 1], thr).as_dict()
    dx = LBNetDx(model, task=task, patch_threshold=thr, channels=settings.channels)
    seeds = sorted({f["specimen_seed"] for f in ds.fields if f["specimen_seed"] is not None})
    train_meta: dict[str, Any] = {"cohort": settings.cohort, "split": settings.split,
                      "runs": sorted({f["run_uid"] for f in ds.fields}),
                      "specimen_seeds": seeds,
                      "patients_train": sorted(set(ds.groups[tr].tolist())),
                      "patients_val": sorted(set(ds.groups[va].tolist())),
                      "n_fields": len(ds.fields),
                      "n_patches_train": n_tr, "n_patches_val": n_va,
                      "patches_per_field": settings.patches_per_field,
                      "config": settings.train_config().to_dict(),
                      "best_epoch": res.best_epoch,
                      "epochs_run": res.epochs_run, "stopped_early": res.stopped_early,
                      "seconds": round(res.seconds, 1), "device": res.device,
                      "torch": torch.__version__, "youden_j": j, "val_metrics": val,
                      "cv": cv_report, "command": settings.command}
    meta = {"model": {"num_classes": k, "width": settings.width}, "dx": dx.dx_meta(),
            "pixel_um": settings.pixel_um, "train": train_meta}
    # the bare LiteBlendNet (a subset's mask is re-imposed from meta["dx"]["channels"])
    path = save_weights(getattr(model, "model", model) if settings.channels != "RGB" else model,
                        weights_path, meta=meta)
    report = {"task": task.name, "weights": str(path), "threshold": thr, "val": val,
              "history": res.history, **{key: train_meta[key] for key in (
                  "cohort", "n_fields", "n_patches_train", "n_patches_val", "best_epoch",
                  "epochs_run", "seconds", "patients_train", "patients_val", "cv")},
              **dict(report_extra or {})}
    report["images"] = _train_pngs(report_dir, res.history, ds.y[va], pv[:, 1], thr, task)
    report["report"] = str(write_json(report_dir / "train.json", report))
    return DxTrainOutcome(report=report, meta=meta, weights=Path(path), result=res, cv=cv)


def _train_pngs(report_dir: Path, hist: Mapping[str, Any], y: NDArray, s: NDArray,
                thr: float, task: Task) -> dict[str, str]:
    """Learning curves and (both classes present) the validation ROC with its Youden
    point."""
    from ml.common.metrics import roc_auc, roc_curve
    from ml.common.plotting import new_figure, roc_png, save_png

    fig = new_figure((10.0, 4.0), dpi=100)
    ax = fig.subplots(1, 2)
    for a, key, label in ((ax[0], "loss", "loss"), (ax[1], "acc", "patch accuracy")):
        a.plot(hist["epoch"], hist[f"train_{key}"], label="train")
        a.plot(hist["epoch"], hist[f"val_{key}"], label="validation")
        a.set(xlabel="epoch", ylabel=label)
        a.legend()
    fig.suptitle(f"LBNet-Dx training, {task.name}")
    out = {"learning_curves": str(save_png(fig, report_dir / "learning_curves.png"))}
    if len(np.unique(y)) == 2:
        fpr, tpr, thresholds = roc_curve(y, s)
        i = int(np.argmin(np.abs(np.asarray(thresholds) - thr)))
        out["roc"] = str(roc_png(report_dir / "val_roc.png",
                                 {"LBNet-Dx (validation)": (fpr, tpr, roc_auc(y, s))},
                                 points={"LBNet-Dx (validation)": (fpr[i], tpr[i])},
                                 title=f"{task.name}: validation patients"))
    return out


# ============================================================================ evaluation
@dataclasses.dataclass(frozen=True)
class DxEvalSettings:
    """Settings of :func:`evaluate_dx`.

    Attributes
    ----------
    baselines : fit the baselines (SVM, KNN, tree, boosting) on the training patches.
    ablations : retrain LBNet on each channel subset (7 short trainings).
    ablation_epochs : epochs (and patience) per ablation (>= 1 when ``ablations``).
    ablation_patches : patches per field for ablation training and testing (>= 1 when
        ``ablations``).
    gradcam : Grad-CAM overlays for this many samples per class (none when < 1).
    mc_trials : Monte-Carlo samples per patch accuracy (>= 1).
    cohort : the held-out cohort's name (recorded in the report).
    """

    baselines: bool = True
    ablations: bool = False
    ablation_epochs: int = 4
    ablation_patches: int = 16
    gradcam: int = 1
    mc_trials: int = 100_000
    cohort: str | None = None

    def __post_init__(self) -> None:
        checks = [("mc_trials", 1)]
        if self.ablations:
            checks += [("ablation_epochs", 1), ("ablation_patches", 1)]
        for name, low in checks:
            if int(getattr(self, name)) < low:
                raise WorkflowError(f"{name} {getattr(self, name)!r}: expected an integer "
                                    f">= {low}")


def sample_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of correct / unidentifiable / wrong sample-level diagnoses (``outcome`` of
    each sample) and the accuracies they give (NaN when undefined)."""
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


def evaluate_dx(dx: LBNetDx, fields: Iterable[tuple[dict[str, Any], FieldComposite]], *,
                settings: DxEvalSettings, report_dir: str | Path, n_runs: int,
                baseline_train: PatchDataset | None = None,
                ablation_train: PatchDataset | None = None,
                faults: ReadFaults | None = None, progress: Progress | None = None,
                clock_start: float | None = None) -> dict[str, Any]:
    """Classify held-out fields; write ``evaluation.json`` and the report PNGs.

    Parameters
    ----------
    dx : LBNetDx
        The classifier (with its training metadata, ``dx.meta["train"]``).
    fields : iterable of (dict, FieldComposite)
        The held-out fields with their info (run uid, sample, patient, phenotype, label,
        specimen seed, field index), e.g. :func:`ml.dx.data.iter_run_fields`; consumed
        once, one field at a time.
    settings : DxEvalSettings, keyword-only
    report_dir : path, keyword-only
        Folder of ``evaluation.json`` and the PNGs (module doc of ``srash evaluate``).
    n_runs : int, keyword-only
        Number of held-out runs selected (recorded).
    baseline_train, ablation_train : PatchDataset, keyword-only
        Training patches ([0, 1]) for the baselines / ablations; required when
        ``settings.baselines`` / ``settings.ablations``.
    faults : ReadFaults, keyword-only
        The reader's faults; its summary (read at the end) goes into the report.
    progress : callable, keyword-only
        ``progress("ablation <channels>", epoch_record)``.
    clock_start : float, keyword-only
        ``time.perf_counter()`` when the command started: the report's ``seconds`` count
        from it (default: from this call).

    Returns
    -------
    dict
        The report (as written, plus ``"report"``: the JSON's path).

    Raises
    ------
    WorkflowError
        No valid patch in any field; a training set missing for baselines / ablations.
    """
    from ml.common.fileio import write_json
    from ml.common.metrics import confusion_matrix, patch_metrics, roc_curve
    from ml.dx.predict import SampleVote

    t0 = time.perf_counter() if clock_start is None else clock_start
    if settings.baselines and baseline_train is None:
        raise WorkflowError("baselines requested without their training patches "
                            "(baseline_train)")
    if settings.ablations and ablation_train is None:
        raise WorkflowError("ablations requested without their training patches "
                            "(ablation_train)")
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    faults = faults if faults is not None else ReadFaults()
    train_meta = dx.meta.get("train", {})
    rng = np.random.default_rng(0)
    field_rows: list[dict[str, Any]] = []
    votes: dict[str, SampleVote] = {}
    meta_s: dict[str, dict[str, Any]] = {}
    y_patch, s_patch, feats, abl_x, abl_y = [], [], [], [], []
    g_patch: list[NDArray] = []
    w_patch: list[NDArray] = []
    cams: dict[int, int] = {}
    images: dict[str, str] = {}
    if settings.baselines:
        from ml.dx.baselines import patch_features
    for info, fc in fields:
        ps = dx.patches(fc.composite)
        if len(ps) == 0:
            field_rows.append({**info, "n_patches": 0, "field_vote": None})
            continue
        fdx = dx.classify_patches(ps)
        if fdx.vote is None:  # a field with patches always has a vote
            raise WorkflowError(f"field {info.get('field_index')} of run "
                                f"{info.get('run_uid')}: patches but no vote")
        sid = info["sample_id"] or info["run_uid"]
        votes.setdefault(sid, SampleVote(dx.class_names, threshold=dx.vote_threshold))
        votes[sid].add(fdx)
        meta_s[sid] = {"sample_id": sid, "patient_id": info["patient_id"],
                       "phenotype": info["phenotype"], "label": info["label"],
                       "run_uid": info["run_uid"], "specimen_seed": info["specimen_seed"]}
        field_rows.append({**info, "n_patches": len(ps),
                           "field_vote": list(fdx.vote.probabilities)})
        y_patch.append(np.full(len(ps), info["label"], np.int64))
        s_patch.append(fdx.probabilities[:, 1])
        g_patch.append(np.full(len(ps), sid, object))
        w_patch.append(np.asarray(fdx.weights, np.float64))
        if settings.baselines:
            feats.append(patch_features(ps.patches))
        if settings.ablations:
            k = min(settings.ablation_patches, len(ps))
            idx = np.sort(rng.choice(len(ps), size=k, replace=False))
            abl_x.append(ps.patches[idx])
            abl_y.append(np.full(k, info["label"], np.int64))
        lab = info["label"]
        if cams.get(lab, 0) < settings.gradcam and fc.tile.index == 0:
            images[f"gradcam_{sid}"] = _gradcam(out, dx, fc.composite, ps, sid, fdx)
            cams[lab] = cams.get(lab, 0) + 1
    if not y_patch:
        raise WorkflowError(f"no valid patch in the {len(field_rows)} readable field(s) of "
                            f"the {n_runs} selected run(s): nothing to evaluate")
    y = np.concatenate(y_patch)
    s = np.concatenate(s_patch)
    samples = []
    for sid, sv in votes.items():
        v = sv.vote()
        if v is None:  # every sample has seen patches
            continue
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
        "task": dx.task.name, "class_names": list(dx.class_names),
        "weights": dx.meta.get("path"), "cohort": settings.cohort,
        "train_cohort": train_meta.get("cohort"), "patch_threshold": thr,
        "vote_threshold": dx.vote_threshold, "n_runs": n_runs,
        "n_fields": len(field_rows), "patch": pm, "confusion_patches": cm_patch.tolist(),
        "sample": sample_summary(samples), "confusion_samples_identified":
            cm_sample.tolist(), "samples": samples, "fields": field_rows,
        **faults.summary()}
    curves = {"LBNet-Dx": roc_curve(y, s)[:2] + (pm["roc_auc"],)}
    if settings.baselines and baseline_train is not None:  # (checked above)
        report["baselines"], base_curves = _baselines(
            baseline_train, np.concatenate(feats), y, np.concatenate(g_patch),
            np.concatenate(w_patch), thr, dx.vote_threshold)
        curves.update(base_curves)
    if settings.ablations and ablation_train is not None:
        report["ablations"] = _ablations(ablation_train, dx, settings, np.concatenate(abl_x),
                                         np.concatenate(abl_y), progress)
    report["montecarlo"] = _montecarlo(samples, pm["accuracy"], report["sample"],
                                       settings.mc_trials, dx.vote_threshold)
    images.update(_eval_pngs(out, report, curves, cm_patch, cm_sample, dx.class_names))
    report["images"] = images
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["report"] = str(write_json(out / "evaluation.json", report))
    return report


def _baselines(ds: PatchDataset, f_test: NDArray, y_test: NDArray, g_test: NDArray,
               w_test: NDArray, lbnet_thr: float, vote_thr: float
               ) -> tuple[dict[str, Any], dict[str, tuple]]:
    """Each baseline at its own threshold (Youden's over out-of-fold scores of the
    training patches, folds grouped by patient) and with LBNet's vote per sample
    (:mod:`ml.dx.classical`); ``metrics_at_lbnet_threshold`` for comparison."""
    from ml.common.metrics import patch_metrics, roc_curve
    from ml.dx.baselines import patch_features
    from ml.dx.classical import score_classical

    f_train = patch_features(ds.x)
    out: dict[str, Any] = {}
    curves: dict[str, tuple] = {}
    both = np.unique(y_test).size == 2
    for name, r in score_classical(f_train, ds.y, ds.groups, f_test, y_test, g_test,
                                   w_test, seed=0, vote_threshold=vote_thr).items():
        t0 = time.perf_counter()
        sample = {k: v for k, v in r["sample"].items() if k != "per_sample"}
        out[name] = {"threshold": r["threshold"], "youden_j_oof": r["youden_j_oof"],
                     "metrics": r["patch"], "balanced_accuracy": r["balanced_accuracy"],
                     "sample": sample, "metrics_at_lbnet_threshold":
                         patch_metrics(y_test, r["proba"], lbnet_thr).as_dict(),
                     "seconds": r["seconds"] + time.perf_counter() - t0}
        if both:
            curves[name] = roc_curve(y_test, r["proba"])[:2] + (r["patch"]["roc_auc"],)
    return out, curves


def _ablations(ds: PatchDataset, dx: LBNetDx, settings: DxEvalSettings, x_test: NDArray,
               y_test: NDArray, progress: Progress | None) -> dict[str, Any]:
    from ml.dx.ablation import CHANNEL_SUBSETS, run_ablation
    from ml.dx.cv import split_patients
    from ml.dx.lbnet import LiteBlendNet
    from ml.dx.train import TrainConfig

    tr, va = split_patients(ds.groups, ds.y, 0.2, seed=0)
    cfg = TrainConfig(max_epochs=settings.ablation_epochs, patience=settings.ablation_epochs,
                      seed=0)
    k = len(dx.class_names)

    def show(subset: str, rec: Mapping[str, Any]) -> None:
        if progress is not None:
            progress(f"ablation {subset}", rec)

    res = run_ablation(ds.x[tr], ds.y[tr], ds.x[va], ds.y[va], x_test, y_test,
                       subsets=CHANNEL_SUBSETS, config=cfg,
                       model_factory=lambda: LiteBlendNet(k, width=32), seed=0,
                       progress=show)
    return {name: {"metrics": r["metrics"], "best_epoch": r["best_epoch"],
                   "epochs_run": r["epochs_run"], "seconds": r["seconds"],
                   "n_train": int(tr.sum()), "n_test": int(len(y_test))}
            for name, r in res.items()}


def _montecarlo(samples: list[dict[str, Any]], patch_acc: float,
                sample_sum: Mapping[str, Any], trials: int, threshold: float
                ) -> dict[str, Any]:
    from ml.dx.montecarlo import accuracy_curve

    n = [s["n_patches"] for s in samples] or [30, 90]
    grid = np.round(np.linspace(0.5, 1.0, 21), 3)
    res = accuracy_curve(grid, n_trials=int(trials), rng=np.random.default_rng(0),
                         n_patches=(int(min(n)), int(max(n))), threshold=threshold)
    return {"n_trials": int(trials), "n_patches_range": [int(min(n)), int(max(n))],
            "curve": [r.as_dict() for r in res], "observed_patch_accuracy": patch_acc,
            "observed_sample_accuracy": sample_sum["accuracy"]}


def _gradcam(out: Path, dx: LBNetDx, composite: NDArray, ps: Any, sid: str, fdx: Any) -> str:
    from ml.dx.gradcam import field_cam, overlay_png

    target = fdx.vote.label if fdx.vote is not None and fdx.vote.label is not None else \
        int(np.argmax(fdx.vote.probabilities)) if fdx.vote is not None else 1
    cam = field_cam(dx.model, composite, ps, target_class=int(target))
    rgb = np.moveaxis(composite, 0, -1)
    return str(overlay_png(out / f"gradcam_{sid}.png", rgb, cam))


def _eval_pngs(out: Path, report: Mapping[str, Any], curves: Mapping[str, tuple],
               cm_patch: NDArray, cm_sample: NDArray, names: tuple[str, ...]
               ) -> dict[str, str]:
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
