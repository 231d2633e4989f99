"""Binary patch-level metrics, ROC and Youden's threshold, in numpy (no scikit-learn).

Conventions (used everywhere in :mod:`ml`):

* ``y_true`` holds 0 (negative, e.g. normal / SPT) and 1 (positive, e.g. NOA / SPG);
* ``y_score`` is the positive-class probability (or any score, higher = more positive);
* a patch is predicted positive when ``y_score >= threshold``.

:func:`youden_threshold` picks the threshold maximising ``J = TPR - FPR`` over the ROC of
training results (the paper found 0.393); the threshold returned is one of the observed
scores. :func:`roc_auc` is the trapezoidal area under that ROC, which equals the
Mann-Whitney ``U / (n_pos n_neg)`` with ties counted one half.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.common.errors import MLError

__all__ = ["MetricsError", "PatchMetrics", "roc_curve", "roc_auc", "youden_threshold",
           "confusion_matrix", "patch_metrics"]


class MetricsError(MLError):
    """Labels or scores unusable for a metric (shape, non-binary labels, one class only)."""


def _check(y_true: ArrayLike, y_score: ArrayLike, *, need_both: bool = True,
           ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or y.shape != s.shape:
        raise MetricsError(f"y_true {y.shape} and y_score {s.shape}: expected two 1-D "
                           "arrays of the same length")
    if y.size == 0:
        raise MetricsError("no samples")
    if not np.isin(y, (0, 1)).all():
        raise MetricsError("y_true must hold only 0 (negative) and 1 (positive)")
    if not np.isfinite(s).all():
        raise MetricsError("y_score contains NaN or inf")
    y = y.astype(np.int64)
    if need_both and (y.min() == y.max()):
        raise MetricsError("ROC needs both classes in y_true")
    return y, s


def _roc_counts(y: NDArray[np.int64], s: NDArray[np.float64],
                ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Cumulative true/false positive counts at each distinct score, decreasing."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # last index of each run of equal scores
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    return tps, fps, s_sorted[last]


def roc_curve(y_true: ArrayLike, y_score: ArrayLike,
              ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """ROC points for every distinct threshold.

    Returns
    -------
    fpr, tpr, thresholds : numpy.ndarray
        Rate of negatives / positives with ``score >= thresholds[i]``; ``thresholds`` are
        the distinct scores in decreasing order preceded by ``+inf`` (the (0, 0) point), so
        the curve runs from (0, 0) to (1, 1).
    """
    y, s = _check(y_true, y_score)
    tps, fps, thr = _roc_counts(y, s)
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]], np.r_[np.inf, thr]


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (trapezoidal; ties count one half)."""
    fpr, tpr, _ = roc_curve(y_true, y_score)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def youden_threshold(y_score: ArrayLike, y_true: ArrayLike) -> tuple[float, float]:
    """Threshold maximising Youden's ``J = sensitivity + specificity - 1``.

    Parameters
    ----------
    y_score : array_like
        ``(n,)`` positive-class scores of training patches.
    y_true : array_like
        ``(n,)`` labels in {0, 1}; both classes must occur.

    Returns
    -------
    threshold : float
        An observed score; predicting positive for ``score >= threshold`` attains ``J``.
        Among equal ``J`` the highest threshold is returned (as ``argmax`` over
        scikit-learn's ROC would).
    J : float
        The maximum, in [0, 1] (0 when no threshold beats chance).
    """
    y, s = _check(y_true, y_score)
    tps, fps, thr = _roc_counts(y, s)
    p, n = int(tps[-1]), int(fps[-1])
    # J * p * n in exact integers, so equal J ties exactly and the first (highest) wins
    jpn = tps * n - fps * p
    k = int(np.argmax(jpn))
    return float(thr[k]), max(float(jpn[k]) / (p * n), 0.0)


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike) -> NDArray[np.int64]:
    """2 x 2 counts: rows true (0, 1), columns predicted (0, 1): ``[[TN, FP], [FN, TP]]``."""
    y, p = _check(y_true, y_pred, need_both=False)
    if not np.isin(p, (0, 1)).all():
        raise MetricsError("y_pred must hold only 0 and 1")
    p = p.astype(np.int64)
    return np.bincount(2 * y + p, minlength=4).reshape(2, 2).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class PatchMetrics:
    """Patch-level results at one threshold (all rates in [0, 1]).

    Undefined ratios (e.g. precision with no positive prediction) are 0.0, like
    scikit-learn's ``zero_division=0``. ``roc_auc`` is NaN when only one class occurs.
    ``confusion`` is ``((TN, FP), (FN, TP))``.
    """

    accuracy: float
    recall: float
    specificity: float
    precision: float
    f1: float
    roc_auc: float
    confusion: tuple[tuple[int, int], tuple[int, int]]
    threshold: float
    n: int

    def as_dict(self) -> dict:
        """Plain dict (JSON-ready apart from a NaN AUC)."""
        return dataclasses.asdict(self)


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else 0.0


def patch_metrics(y_true: ArrayLike, y_score: ArrayLike, threshold: float) -> PatchMetrics:
    """Accuracy, recall (sensitivity), specificity, precision, F1, ROC AUC, confusion matrix.

    Parameters
    ----------
    y_true : array_like
        ``(n,)`` labels in {0, 1}.
    y_score : array_like
        ``(n,)`` positive-class scores.
    threshold : float
        Predict positive when ``y_score >= threshold`` (e.g. from :func:`youden_threshold`).
    """
    y, s = _check(y_true, y_score, need_both=False)
    if not np.isfinite(threshold):
        raise MetricsError(f"threshold {threshold!r}: expected a finite number")
    pred = (s >= threshold).astype(np.int64)
    cm = confusion_matrix(y, pred)
    (tn, fp), (fn, tp) = cm.tolist()
    recall = _ratio(tp, tp + fn)
    precision = _ratio(tp, tp + fp)
    auc = roc_auc(y, s) if y.min() != y.max() else float("nan")
    return PatchMetrics(
        accuracy=_ratio(tp + tn, y.size), recall=recall, specificity=_ratio(tn, tn + fp),
        precision=precision, f1=_ratio(2 * precision * recall, precision + recall),
        roc_auc=auc, confusion=((tn, fp), (fn, tp)), threshold=float(threshold),
        n=int(y.size))
