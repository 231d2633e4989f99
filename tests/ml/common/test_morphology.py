"""Morphology helpers on scikit-image (ml.common.morphology): the laws each must obey,
checked against direct definitions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from skimage.morphology import disk as sk_disk

from ml.common.morphology import (
    MorphologyError,
    convex_fill,
    disk,
    otsu_threshold,
    remove_small_objects,
)

seeds = st.integers(0, 2**32 - 1)


# ----------------------------------------------------------------------------- Otsu
@given(seeds, st.floats(0.01, 1.0), st.floats(2.0, 50.0), st.integers(20, 2000),
       st.integers(20, 2000))
def test_otsu_splits_two_separated_populations_exactly(seed, sd, gap, n0, n1):
    r = np.random.default_rng(seed)
    lo = r.uniform(0.0, sd, n0)
    hi = lo.max() + gap * sd + r.uniform(0.0, sd, n1)
    t = otsu_threshold(np.concatenate([lo, hi]))
    assert lo.max() <= t < hi.min()


@given(seeds, st.floats(1e-3, 1e3), st.floats(-1e3, 1e3))
def test_otsu_follows_an_affine_change_of_unit(seed, a, b):
    r = np.random.default_rng(seed)
    v = np.concatenate([r.normal(0, 1, 500), r.normal(4, 1.5, 300)])
    assert otsu_threshold(a * v + b) == pytest.approx(a * otsu_threshold(v) + b,
                                                      rel=1e-9, abs=1e-9 * (abs(b) + a))


def test_otsu_clip_ignores_nan_and_bright_outliers():
    r = np.random.default_rng(0)
    v = np.concatenate([r.normal(1, 0.1, 900), r.normal(2, 0.1, 900)])
    t = otsu_threshold(v, clip_percentile=99.0)
    # moving the values above the 99th percentile further up does not change the threshold
    w = v.copy()
    w[np.argsort(w)[-10:]] *= 50.0
    assert otsu_threshold(np.r_[w, np.nan, np.inf], clip_percentile=99.0) == t
    assert 1.2 < t < 1.8
    assert otsu_threshold(np.full(7, 2.5)) == 2.5
    with pytest.raises(MorphologyError, match="no finite values"):
        otsu_threshold([np.nan])
    with pytest.raises(MorphologyError, match="clip_percentile"):
        otsu_threshold([1.0, 2.0], clip_percentile=101)
    with pytest.raises(MorphologyError, match="bins"):
        otsu_threshold([1.0, 2.0], bins=1)


# ----------------------------------------------------------------------------- disk
@given(st.floats(0.0, 15.0))
def test_disk_is_the_euclidean_rule(radius):
    d = disk(radius)
    n = int(np.floor(radius))
    assert d.shape == (2 * n + 1, 2 * n + 1) and d.dtype == np.bool_
    y, x = np.mgrid[-n:n + 1, -n:n + 1]
    np.testing.assert_array_equal(d, x * x + y * y <= radius * radius)


@pytest.mark.parametrize("radius", range(0, 9))
def test_integer_disk_is_skimage_disk(radius):
    np.testing.assert_array_equal(disk(radius), sk_disk(radius).astype(bool))
    np.testing.assert_array_equal(disk(float(radius)), disk(radius))


def test_disk_rejects_bad_radius():
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(MorphologyError, match="radius"):
            disk(bad)


# ----------------------------------------------------------------------------- small objects
@given(seeds, st.integers(2, 30), st.integers(2, 30), st.floats(0.05, 0.7),
       st.integers(0, 12), st.sampled_from([1, 2]))
def test_remove_small_objects_keeps_exactly_the_big_components(seed, h, w, p, min_px, conn):
    m = np.random.default_rng(seed).random((h, w)) < p
    out = remove_small_objects(m, min_px, connectivity=conn)
    lab, _ = ndimage.label(m, ndimage.generate_binary_structure(2, conn))
    sizes = np.bincount(lab.ravel())
    keep = sizes >= min_px
    keep[0] = False
    np.testing.assert_array_equal(out, keep[lab])
    assert out.dtype == np.bool_ and not (out & ~m).any()


# ----------------------------------------------------------------------------- convex hull
def _hull_by_half_planes(m: np.ndarray) -> np.ndarray:
    """Pixels whose centres satisfy every facet inequality of the hull of the centres."""
    ys, xs = np.nonzero(m)
    out = m.copy()
    try:
        hull = ConvexHull(np.column_stack([ys, xs]).astype(float))
    except (QhullError, ValueError):
        return out
    yy, xx = np.mgrid[:m.shape[0], :m.shape[1]]
    inside = np.ones(m.shape, bool)
    for a, b, c in hull.equations:
        inside &= a * yy + b * xx + c <= 1e-9
    return out | inside


@given(seeds, st.integers(1, 25), st.integers(1, 25), st.sampled_from([0.01, 0.05, 0.3]),
       st.integers(0, 6))
def test_convex_fill_is_the_hull_of_pixel_centres(seed, h, w, p, n_points):
    r = np.random.default_rng(seed)
    m = r.random((h, w)) < p
    if n_points:      # a few isolated pixels: collinear and tiny cases
        m = np.zeros((h, w), bool)
        m[r.integers(0, h, n_points), r.integers(0, w, n_points)] = True
    f = convex_fill(m)
    np.testing.assert_array_equal(f, _hull_by_half_planes(m))
    np.testing.assert_array_equal(convex_fill(f), f)          # idempotent
    assert not (m & ~f).any()


def test_convex_fill_collinear_and_errors():
    m = np.zeros((9, 9), bool)
    m[[1, 3, 5, 7], [2, 4, 6, 8]] = True            # a diagonal line: its own hull
    np.testing.assert_array_equal(convex_fill(m), m)
    ring = np.zeros((9, 9), bool)
    ring[2, 2:7] = ring[6, 2:7] = ring[2:7, 2] = ring[2:7, 6] = True
    assert convex_fill(ring)[2:7, 2:7].all() and convex_fill(ring).sum() == 25
    with pytest.raises(MorphologyError, match="2-D"):
        convex_fill(np.ones((2, 2, 2), bool))
