"""Binary patch-level metrics, ROC and Youden's threshold (scikit-learn's, behind our checks).

Conventions (used everywhere in :mod:`ml`):

* ``y_true`` holds 0 (negative, e.g. normal / SPT) and 1 (positive, e.g. NOA / SPG);
* ``y_score`` is the positive-class probability (or any score, higher = more positive);
* a patch is predicted positive when ``y_score >= threshold``.

:func:`youden_threshold` picks the threshold maximising ``J = TPR - FPR`` over the ROC of
training results (the paper found 0.393); the threshold returned is one of the observed
scores. :func:`roc_auc` is the trapezoidal area under that ROC, which equals the
Mann-Whitney ``U / (n_pos n_neg)`` with ties counted one half.

The curve, the area and the confusion matrix are :func:`sklearn.metrics.roc_curve`
(``drop_intermediate=False``: one point per distinct score), :func:`sklearn.metrics.roc_auc_score`
and :func:`sklearn.metrics.confusion_matrix`; this module adds the input checks
(:class:`MetricsError` says what is wrong) and the one-class convention of
:func:`patch_metrics` (AUC NaN, no exception).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn import metrics as _skm

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


def roc_curve(y_true: ArrayLike, y_score: ArrayLike,
              ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """ROC points for every distinct threshold (:func:`sklearn.metrics.roc_curve`).

    Returns
    -------
    fpr, tpr, thresholds : numpy.ndarray
        Rate of negatives / positives with ``score >= thresholds[i]``; ``thresholds`` are
        the distinct scores in decreasing order preceded by ``+inf`` (the (0, 0) point), so
        the curve runs from (0, 0) to (1, 1).

    Raises
    ------
    MetricsError
        Shapes, labels other than 0/1, non-finite scores, or only one class in ``y_true``.
    """
    y, s = _check(y_true, y_score)
    fpr, tpr, thr = _skm.roc_curve(y, s, drop_intermediate=False)
    return (np.asarray(fpr, np.float64), np.asarray(tpr, np.float64),
            np.asarray(thr, np.float64))


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (trapezoidal; ties count one half), dimensionless in [0, 1].

    :func:`sklearn.metrics.roc_auc_score`; raises :class:`MetricsError` where
    :func:`roc_curve` does (both classes are needed).
    """
    y, s = _check(y_true, y_score)
    return float(_skm.roc_auc_score(y, s))


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
    fpr, tpr, thr = _skm.roc_curve(y, s, drop_intermediate=False)
    p, n = int(y.sum()), int(y.size - y.sum())
    # back to integer counts (the rates are count / p and count / n), then J * p * n in
    # exact integers, so equal J ties exactly and the first (highest) threshold wins
    tps = np.rint(np.asarray(tpr) * p).astype(np.int64)[1:]
    fps = np.rint(np.asarray(fpr) * n).astype(np.int64)[1:]
    thr = np.asarray(thr, np.float64)[1:]
    jpn = tps * n - fps * p
    k = int(np.argmax(jpn))
    return float(thr[k]), max(float(jpn[k]) / (p * n), 0.0)


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike) -> NDArray[np.int64]:
    """2 x 2 counts: rows true (0, 1), columns predicted (0, 1): ``[[TN, FP], [FN, TP]]``.

    :func:`sklearn.metrics.confusion_matrix` with ``labels=[0, 1]`` (so a class absent from
    both inputs still has its row and column of zeros).
    """
    y, p = _check(y_true, y_pred, need_both=False)
    if not np.isin(p, (0, 1)).all():
        raise MetricsError("y_pred must hold only 0 and 1")
    p = p.astype(np.int64)
    return np.asarray(_skm.confusion_matrix(y, p, labels=[0, 1]), dtype=np.int64)


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
