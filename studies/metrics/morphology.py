"""Tissue-architecture measures of a section: tubule spacing, profile elongation and how
much a tubule wall's signal varies around its circumference."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .variation import coefficient_of_variation

__all__ = ["nn_distances", "nn_distance_cv", "axis_ratio_fraction", "sector_means",
           "sector_contrast", "harmonic_contrast"]


def nn_distances(points_um: ArrayLike, *, evaluate: ArrayLike | None = None
                 ) -> NDArray[np.float64]:
    """Distance (um, the unit of the points) from each evaluated point to its nearest other
    point among *all* points.

    Parameters
    ----------
    points_um : array_like
        ``(n, 2)`` centres, n >= 2.
    evaluate : array_like of bool, optional
        ``(n,)`` which points to report (default all). Reporting only points far from the
        edge of the sampled region, while their neighbours are sought among all points, keeps
        edge points (whose true nearest neighbour may lie outside) from biasing the result.

    Returns
    -------
    numpy.ndarray
        ``(k,)`` float64 distances of the ``k`` evaluated points, in input order.
    """
    from scipy.spatial import cKDTree

    p = np.asarray(points_um, np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 2:
        raise ValueError(f"points of shape {p.shape}: expected (n >= 2, 2)")
    if not np.isfinite(p).all():
        raise ValueError("points must be finite")
    sel = np.ones(p.shape[0], bool) if evaluate is None else np.asarray(evaluate, bool)
    if sel.shape != (p.shape[0],):
        raise ValueError(f"evaluate of shape {sel.shape}: expected ({p.shape[0]},)")
    d, _ = cKDTree(p).query(p[sel], k=2)
    return np.asarray(d[:, 1], np.float64)


def nn_distance_cv(points_um: ArrayLike, *, evaluate: ArrayLike | None = None) -> float:
    """Coefficient of variation (sample, ``ddof=1``) of the nearest-neighbour distances of
    :func:`nn_distances`; dimensionless, scale- and rotation-invariant.

    About 0 for a perfect lattice (every point has its neighbour at the pitch), about
    ``sqrt(4/pi - 1) = 0.523`` for points placed independently at random (Poisson: the
    nearest-neighbour distance is Rayleigh distributed). NaN with fewer than 2 evaluated
    points.
    """
    d = nn_distances(points_um, evaluate=evaluate)
    return coefficient_of_variation(d, ddof=1)


def axis_ratio_fraction(ratios: ArrayLike, *, limit: float = 1.5) -> float:
    """Fraction (dimensionless, in [0, 1]) of profiles with axis ratio (major / minor
    axis, >= 1) strictly above ``limit``; NaN for no profiles."""
    r = np.asarray(ratios, np.float64)
    if r.ndim != 1:
        raise ValueError(f"ratios of shape {r.shape}: expected a 1-D array")
    if not np.isfinite(r).all() or (r < 1.0 - 1e-9).any():
        raise ValueError("axis ratios must be finite and >= 1")
    if r.size == 0:
        return float("nan")
    return float(np.count_nonzero(r > limit) / r.size)


def sector_means(values: ArrayLike, angles_rad: ArrayLike, *, n_sectors: int = 12
                 ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Mean value (unit of ``values``) and pixel count in each of ``n_sectors`` equal
    angular sectors; sector ``k`` holds angles in ``[2 pi k / n, 2 pi (k + 1) / n)``
    (angles taken modulo 2 pi). Empty sectors have mean NaN."""
    v = np.asarray(values, np.float64).ravel()
    a = np.asarray(angles_rad, np.float64).ravel()
    if v.shape != a.shape:
        raise ValueError(f"values ({v.size}) and angles ({a.size}) differ in length")
    if isinstance(n_sectors, bool) or int(n_sectors) != n_sectors or n_sectors < 2:
        raise ValueError(f"n_sectors {n_sectors!r}: expected an integer >= 2")
    n = int(n_sectors)
    k = np.floor(np.mod(a, 2.0 * math.pi) / (2.0 * math.pi / n)).astype(np.int64)
    k = np.minimum(k, n - 1)  # mod can return 2 pi itself through rounding
    counts = np.bincount(k, minlength=n)
    sums = np.bincount(k, weights=v, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return means, counts


def sector_contrast(values: ArrayLike, angles_rad: ArrayLike, *, n_sectors: int = 12,
                    min_count: int = 1) -> float:
    """Max / min of the :func:`sector_means` around a closed contour (e.g. the SHG of a
    tubule wall's pixels at their polar angle about the tubule centre); dimensionless, >= 1.

    Invariant under a positive scale of the values (detector gain). 1 for a wall that reads
    the same all round; 2 when the brightest sector reads twice the dimmest. NaN when a
    sector has fewer than ``min_count`` values (the contour is not seen all round) or the
    dimmest sector's mean is <= 0.
    """
    means, counts = sector_means(values, angles_rad, n_sectors=n_sectors)
    if (counts < max(int(min_count), 1)).any():
        return float("nan")
    lo = float(np.min(means))
    if lo <= 0.0:
        return float("nan")
    return float(np.max(means) / lo)


def harmonic_contrast(values: ArrayLike, angles_rad: ArrayLike, *, n_sectors: int = 12,
                      order: int = 2, min_count: int = 1) -> float:
    """Peak / trough of the ``order``-fold angular harmonic of the :func:`sector_means`;
    dimensionless, >= 1.

    With sector centres ``t_k`` and means ``m_k``: ``c0 = mean(m_k)``, ``A = |(2 / n) sum
    m_k exp(i order t_k)|``, result ``(c0 + A) / (c0 - A)``. Linear polarisation makes the
    SHG of a fibre go through ``order = 2`` cycles per turn, so this isolates the
    polarisation-like part of :func:`sector_contrast` from one-off dips (a gap in the wall)
    and from a one-sided gradient (``order = 1``). A wall reading ``1 + m cos(2 (t - t0))``
    gives ``(1 + s m) / (1 - s m)`` for any ``t0``, ``s = sinc`` of the sector width (0.955
    for 12 sectors). Invariant under a positive scale; 1 for a uniform wall. NaN when a sector
    has fewer than ``min_count`` values or ``A >= c0``.
    """
    if isinstance(order, bool) or int(order) != order or order < 1:
        raise ValueError(f"order {order!r}: expected an integer >= 1")
    means, counts = sector_means(values, angles_rad, n_sectors=n_sectors)
    n = means.size
    if 2 * order >= n:
        raise ValueError(f"order {order} needs more than {2 * order} sectors, got {n}")
    if (counts < max(int(min_count), 1)).any():
        return float("nan")
    t = (np.arange(n) + 0.5) * (2.0 * math.pi / n)
    c0 = float(means.mean())
    amp = float(abs(2.0 / n * np.sum(means * np.exp(1j * order * t))))
    if c0 <= 0.0 or amp >= c0:
        return float("nan")
    return (c0 + amp) / (c0 - amp)
