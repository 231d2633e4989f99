"""Coefficient of variation (dimensionless)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["coefficient_of_variation"]


def coefficient_of_variation(values: ArrayLike, *, ddof: int = 1) -> float:
    """``CV = std(values, ddof) / |mean(values)|``, dimensionless.

    Invariant under a common positive or negative scale of the values, 0 when they are all
    equal. ``ddof=1`` (the default) is the sample estimate used between patients.

    Parameters
    ----------
    values : array_like
        1-D finite values in any unit (e.g. volts).
    ddof : int, keyword-only
        Delta degrees of freedom of the standard deviation (0 or 1).

    Returns
    -------
    float
        The CV; NaN when there are ``<= ddof`` values or the mean is 0.

    Raises
    ------
    ValueError
        Values not 1-D or not finite, ``ddof`` not 0 or 1.
    """
    v = np.asarray(values, np.float64)
    if v.ndim != 1:
        raise ValueError(f"values of shape {v.shape}: expected a 1-D array")
    if not np.isfinite(v).all():
        raise ValueError("values must be finite")
    if ddof not in (0, 1):
        raise ValueError(f"ddof {ddof!r}: expected 0 or 1")
    if v.size <= ddof:
        return float("nan")
    m = float(v.mean())
    if m == 0.0:
        return float("nan")
    if (v == v[0]).all():  # exactly 0 (the float mean of equal values may round)
        return 0.0
    return float(np.sqrt(np.sum((v - m) ** 2) / (v.size - ddof)) / abs(m))
