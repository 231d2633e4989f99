"""Image morphology shared by the ml applications, on top of scikit-image.

* :func:`otsu_threshold` -- Otsu's threshold (:func:`skimage.filters.threshold_otsu`) of
  the finite values, optionally clipped at a percentile first;
* :func:`disk` -- a disk structuring element (:func:`skimage.morphology.disk` for integer
  radii);
* :func:`remove_small_objects` -- drop connected objects below a pixel count
  (:func:`skimage.morphology.remove_small_objects`);
* :func:`convex_fill` -- the digital convex hull of a mask
  (:func:`skimage.morphology.convex_hull_image` on pixel centres).

Used by :mod:`ml.seg.phasor` and :mod:`ml.ldquant`, which do not import each other.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from skimage import filters as _filters
from skimage import morphology as _morph

from ml.common.errors import MLError

__all__ = ["MorphologyError", "otsu_threshold", "disk", "remove_small_objects",
           "convex_fill"]


class MorphologyError(MLError):
    """Input a morphology helper cannot use (no finite values, bad percentile, radius)."""


def otsu_threshold(values: ArrayLike, /, *, bins: int = 256,
                   clip_percentile: float | None = None) -> float:
    """Otsu's threshold of the finite ``values`` (unit of ``values``).

    Parameters
    ----------
    values : array_like
        Any shape; NaN / inf are ignored.
    bins : int, keyword-only
        Histogram bins (>= 2) spanning ``[min, max]`` of the (clipped) values.
    clip_percentile : float, keyword-only
        In (0, 100]: values above that percentile are clipped to it first, so that a few
        very bright objects (e.g. lipid droplets) cannot pull the threshold above the
        dimmer tissue. None: no clipping.

    Returns
    -------
    float
        The between-class variance maximum of :func:`skimage.filters.threshold_otsu` on the
        ``bins``-bin histogram, reported as the *upper edge* of the last bin of the lower
        class: every value of the lower class's bins is ``<= threshold`` and values
        ``> threshold`` are the upper class (skimage reports that bin's centre, half a bin
        lower; the maximum is the same, since shifting every bin value by half a bin leaves
        the between-class variance unchanged). Among tied maxima (an empty gap between the
        classes) the first is taken, i.e. the threshold sits at the top of the lower
        class. Constant input returns that constant.

    Raises
    ------
    MorphologyError
        No finite value, ``bins`` < 2, ``clip_percentile`` outside (0, 100].
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise MorphologyError("no finite values to threshold")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise MorphologyError(f"bins {bins!r}: expected an integer >= 2")
    if clip_percentile is not None:
        if not 0 < clip_percentile <= 100:
            raise MorphologyError(f"clip_percentile {clip_percentile!r}: expected a "
                                  "percentile in (0, 100]")
        v = np.minimum(v, np.percentile(v, clip_percentile))
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return lo
    counts, edges = np.histogram(v, bins=int(bins), range=(lo, hi))
    return float(_filters.threshold_otsu(hist=(counts, edges[1:])))


def disk(radius: float) -> NDArray[np.bool_]:
    """Disk structuring element: offsets ``(dy, dx)`` with ``dy^2 + dx^2 <= radius^2``.

    ``(2 floor(radius) + 1)`` pixels square. An integer radius is
    :func:`skimage.morphology.disk`; a non-integer one keeps the same rule on the integer
    grid (skimage's ``disk`` centres its grid on ``-radius``, which is off the pixel grid
    for a non-integer radius). Radius in pixels, >= 0.
    """
    r = float(radius)
    if not (math.isfinite(r) and r >= 0):
        raise MorphologyError(f"radius {radius!r}: expected a finite number of pixels >= 0")
    if r == int(r):
        return _morph.disk(int(r), dtype=bool)
    n = int(math.floor(r))
    y, x = np.ogrid[-n:n + 1, -n:n + 1]
    return x * x + y * y <= r * r


def remove_small_objects(mask: ArrayLike, min_px: int, *, connectivity: int = 1
                         ) -> NDArray[np.bool_]:
    """``mask`` without its connected objects of fewer than ``min_px`` pixels.

    :func:`skimage.morphology.remove_small_objects` (``max_size = min_px - 1``);
    ``connectivity`` 1 joins edge neighbours (4-connectivity in 2-D), 2 also corners (8).
    ``min_px <= 1`` returns the mask unchanged (a copy).
    """
    m = np.asarray(mask, dtype=bool)
    if min_px <= 1 or not m.any():
        return m.copy()
    return np.asarray(_morph.remove_small_objects(m, max_size=int(min_px) - 1,
                                                  connectivity=connectivity), dtype=bool)


def convex_fill(mask: ArrayLike) -> NDArray[np.bool_]:
    """``mask`` plus every pixel whose centre lies in the convex hull of its pixel centres.

    The digital convex hull with no outward bias
    (:func:`skimage.morphology.convex_hull_image` with ``offset_coordinates=False``, hull
    edges included), computed on the mask's bounding box. Fewer than 3 pixels, or pixels
    on one line, are their own hull: the mask is returned (a copy).
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise MorphologyError(f"mask of shape {m.shape}: expected a 2-D mask")
    ys, xs = np.nonzero(m)
    out = m.copy()
    if ys.size < 3:
        return out
    dy, dx = ys - ys[0], xs - xs[0]
    if not (dy * dx[1] - dx * dy[1]).any():  # exact integer test: all on one line
        return out
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    out[y0:y1, x0:x1] |= _morph.convex_hull_image(m[y0:y1, x0:x1], offset_coordinates=False,
                                                  include_borders=True)
    return out
