"""How well one scalar feature separates two classes: ROC AUC, oriented on training data."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ml.common.metrics import roc_auc, roc_curve

__all__ = ["oriented_auc", "oriented_roc"]


def _orientation(y_train: ArrayLike, s_train: ArrayLike) -> float:
    """+1 when higher scores mean class 1 on the training data (AUC >= 0.5), else -1."""
    return 1.0 if roc_auc(y_train, s_train) >= 0.5 else -1.0


def oriented_auc(y_train: ArrayLike, s_train: ArrayLike, y_test: ArrayLike,
                 s_test: ArrayLike) -> tuple[float, float]:
    """ROC AUC of a single feature on test data, its direction fitted on training data.

    A one-feature classifier (e.g. logistic regression on the mean SHG of a patch) learns
    only which direction of the feature means class 1; its ROC on new data is that of the
    feature in that direction. So: ``sign = +1`` if the training AUC of ``s_train`` is
    ``>= 0.5``, else ``-1``; the result is the test AUC of ``sign * s_test``.

    Parameters
    ----------
    y_train, y_test : array_like
        ``(n,)`` labels in {0, 1}, both classes present.
    s_train, s_test : array_like
        ``(n,)`` feature values (any unit).

    Returns
    -------
    auc : float
        Test AUC in [0, 1], dimensionless: 1 perfect separation in the training
        direction, 0.5 chance (a constant feature gives exactly 0.5), < 0.5 when the
        direction flipped between training and test.
    sign : float
        The training direction, +1 or -1.
    """
    sign = _orientation(y_train, s_train)
    return roc_auc(y_test, sign * np.asarray(s_test, np.float64)), sign


def oriented_roc(y_train: ArrayLike, s_train: ArrayLike, y_test: ArrayLike,
                 s_test: ArrayLike) -> tuple[np.ndarray, np.ndarray, float]:
    """``(fpr, tpr, auc)`` of :func:`oriented_auc`'s test ROC (rates in [0, 1])."""
    auc, sign = oriented_auc(y_train, s_train, y_test, s_test)
    fpr, tpr, _ = roc_curve(y_test, sign * np.asarray(s_test, np.float64))
    return np.asarray(fpr), np.asarray(tpr), auc
