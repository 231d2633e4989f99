"""Classical classifiers (:mod:`ml.dx.baselines`) scored as LBNet-Dx is: each at its own
Youden threshold for patches, the weighted vote for samples.

Threshold: Youden's J maximiser (:func:`ml.common.metrics.youden_threshold`) over
*out-of-fold* scores of the training patches, folds grouped by patient
(``StratifiedGroupKFold``: no patient's patches on both sides of a fold). Training-set
scores would not do: boosting and a 1-nearest-neighbour-like KNN score their own training
patches near 0 / 1, so a threshold fitted on them says nothing about new patients. The model
that scores the test patches is refitted on all training patches.

Sample vote: :func:`ml.dx.vote.dx_vote` over the patient's valid patches with probability
vectors ``(1 - p, p)`` and LBNet's patch weights; a class is reported only above 0.8, as for
LBNet (the vote uses the probabilities, not the patch threshold).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.common.metrics import patch_metrics, youden_threshold
from ml.dx.baselines import BASELINES, BaselineError, make_baseline
from ml.dx.vote import DEFAULT_THRESHOLD, dx_vote

__all__ = ["grouped_oof_scores", "fit_predict", "vote_samples", "score_classical"]


def _proba(model: Any, x: NDArray) -> NDArray[np.float64]:
    return model.predict_proba(x)[:, list(model.classes_).index(1)].astype(np.float64)


def fit_predict(name: str, x_train: ArrayLike, y_train: ArrayLike, x_test: ArrayLike, *,
                seed: int = 0) -> NDArray[np.float64]:
    """Fit baseline ``name`` (:func:`ml.dx.baselines.make_baseline`) on the training rows and
    return the class-1 probability of each test row (one OpenMP thread, as
    :func:`ml.dx.baselines.fit_baselines_features`)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        model = make_baseline(name, seed=seed).fit(np.asarray(x_train), np.asarray(y_train))
        return _proba(model, np.asarray(x_test))


def grouped_oof_scores(name: str, x: ArrayLike, y: ArrayLike, groups: ArrayLike, *,
                       n_splits: int = 5, seed: int = 0) -> NDArray[np.float64]:
    """Out-of-fold class-1 probabilities of every training row, folds grouped by
    ``groups`` (patients) and stratified by class (``StratifiedGroupKFold``, shuffled with
    ``seed``)."""
    from sklearn.model_selection import StratifiedGroupKFold

    xa, ya, ga = np.asarray(x), np.asarray(y), np.asarray(groups)
    n_groups = np.unique(ga).size
    if n_groups < n_splits:
        raise BaselineError(f"{n_groups} training patients: the grouped out-of-fold "
                            f"threshold needs at least n_splits = {n_splits}")
    out = np.full(ya.shape[0], np.nan)
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for tr, va in cv.split(xa, ya, ga):
        out[va] = fit_predict(name, xa[tr], ya[tr], xa[va], seed=seed)
    return out


def vote_samples(proba: ArrayLike, weights: ArrayLike, samples: ArrayLike,
                 sample_labels: dict[Any, int], *, threshold: float = DEFAULT_THRESHOLD
                 ) -> dict[str, Any]:
    """Weighted vote per sample; counts of correct, wrong and unidentifiable samples.

    Parameters
    ----------
    proba : array_like
        ``(n,)`` class-1 probabilities of the patches.
    weights : array_like
        ``(n,)`` vote weights (:mod:`ml.dx.patches`).
    samples : array_like
        ``(n,)`` the sample (patient) of each patch.
    sample_labels : dict
        True class (0 / 1) of each sample.
    threshold : float, keyword-only
        Vote reporting threshold (0.8).

    Returns
    -------
    dict
        ``{"n", "correct", "wrong", "unidentifiable", "accuracy" (correct / n),
        "per_sample": {sample: {"label": int or None, "truth": int, "p1": float}}}``.
    """
    p = np.asarray(proba, np.float64)
    w = np.asarray(weights, np.float64)
    s = np.asarray(samples)
    per: dict[str, Any] = {}
    correct = wrong = unident = 0
    for sid in sorted(sample_labels, key=str):
        m = s == sid
        if not m.any():
            continue
        v = dx_vote(np.stack([1.0 - p[m], p[m]], axis=1), w[m], threshold=threshold)
        truth = int(sample_labels[sid])
        per[str(sid)] = {"label": v.label, "truth": truth, "p1": v.probabilities[1]}
        if v.label is None:
            unident += 1
        elif v.label == truth:
            correct += 1
        else:
            wrong += 1
    n = correct + wrong + unident
    return {"n": n, "correct": correct, "wrong": wrong, "unidentifiable": unident,
            "accuracy": correct / n if n else float("nan"), "per_sample": per}


def score_classical(x_train: ArrayLike, y_train: ArrayLike, g_train: ArrayLike,
                    x_test: ArrayLike, y_test: ArrayLike, g_test: ArrayLike,
                    w_test: ArrayLike, *, names: Sequence[str] = BASELINES, seed: int = 0,
                    n_splits: int = 5, vote_threshold: float = DEFAULT_THRESHOLD
                    ) -> dict[str, dict[str, Any]]:
    """Each baseline on held-out patients, at its own threshold (module docstring).

    Parameters
    ----------
    x_train, x_test : array_like
        ``(n, F)`` patch features.
    y_train, y_test : array_like
        ``(n,)`` patch labels (the patient's class).
    g_train, g_test : array_like
        ``(n,)`` patient of each patch.
    w_test : array_like
        ``(n,)`` vote weights of the test patches.

    Returns
    -------
    dict
        ``{name: {"threshold", "youden_j_oof", "oof_auc", "patch": patch_metrics at the
        threshold (accuracy, recall, specificity, ..., roc_auc), "balanced_accuracy",
        "accuracy_at_0.5", "sample": vote_samples(...), "proba": test probabilities,
        "seconds": fitting and scoring time}}``;
        rates dimensionless in [0, 1].
    """
    yt, ys = np.asarray(y_train), np.asarray(y_test)
    labels = {g: int(ys[np.asarray(g_test) == g][0]) for g in np.unique(g_test)}
    # as many grouped folds as there are training patients of the rarer class, up to n_splits
    per_class = [np.unique(np.asarray(g_train)[yt == k]).size for k in (0, 1)]
    n_splits = min(n_splits, *per_class)
    if n_splits < 2:
        raise BaselineError(f"training patients per class {per_class}: a threshold fitted "
                            "out of fold needs at least 2 patients of each class")
    out: dict[str, dict[str, Any]] = {}
    for nm in names:
        t0 = time.perf_counter()
        oof = grouped_oof_scores(nm, x_train, yt, g_train, n_splits=n_splits, seed=seed)
        thr, j = youden_threshold(oof, yt)
        proba = fit_predict(nm, x_train, yt, x_test, seed=seed)
        pm = patch_metrics(ys, proba, thr).as_dict()
        out[nm] = {"threshold": thr, "youden_j_oof": j,
                   "oof_auc": patch_metrics(yt, oof, thr).roc_auc, "patch": pm,
                   "balanced_accuracy": 0.5 * (pm["recall"] + pm["specificity"]),
                   "accuracy_at_0.5": patch_metrics(ys, proba, 0.5).accuracy,
                   "sample": vote_samples(proba, w_test, g_test, labels,
                                          threshold=vote_threshold),
                   "proba": proba, "seconds": time.perf_counter() - t0}
    return out
