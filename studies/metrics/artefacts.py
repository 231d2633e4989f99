"""Overlap of two binary masks, e.g. the tissue-free (tear) pixels of one specimen seed
rendered in two phenotypes.

Two measures, both dimensionless in [0, 1], symmetric, 1 for identical masks and 0 for
disjoint ones:

* :func:`mask_iou` (Jaccard): ``|a & b| / |a | b|``; below 1 also when one mask merely
  grows (the same tears, wider).
* :func:`overlap_coefficient` (Szymkiewicz-Simpson): ``|a & b| / min(|a|, |b|)``; 1 whenever
  one mask lies inside the other, so it says "the same tears" even when their size differs.
  For independent masks it is about the area fraction of the larger one (chance level).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["mask_iou", "overlap_coefficient"]


def _masks(a: ArrayLike, b: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    x, y = np.asarray(a, bool), np.asarray(b, bool)
    if x.shape != y.shape:
        raise ValueError(f"masks of shapes {x.shape} and {y.shape}: expected the same shape")
    return x, y


def mask_iou(a: ArrayLike, b: ArrayLike) -> float:
    """Intersection over union ``|a & b| / |a | b|`` of two boolean masks of one shape;
    NaN when both are empty (nothing to compare). Raises ValueError for different shapes."""
    x, y = _masks(a, b)
    union = int(np.count_nonzero(x | y))
    if union == 0:
        return float("nan")
    return int(np.count_nonzero(x & y)) / union


def overlap_coefficient(a: ArrayLike, b: ArrayLike) -> float:
    """``|a & b| / min(|a|, |b|)`` of two boolean masks of one shape; NaN when either is
    empty. Raises ValueError for different shapes."""
    x, y = _masks(a, b)
    small = min(int(np.count_nonzero(x)), int(np.count_nonzero(y)))
    if small == 0:
        return float("nan")
    return int(np.count_nonzero(x & y)) / small
