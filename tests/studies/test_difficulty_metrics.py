"""Invariants of the difficulty study's metric functions (studies/metrics) on tiny inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.dx.classical import score_classical, vote_samples
from studies.metrics.artefacts import mask_iou, overlap_coefficient
from studies.metrics.morphology import (
    axis_ratio_fraction,
    harmonic_contrast,
    nn_distance_cv,
    nn_distances,
    sector_contrast,
    sector_means,
)
from studies.metrics.separability import oriented_auc
from studies.metrics.variation import coefficient_of_variation

seeds = st.integers(0, 2**32 - 1)
finite = st.floats(-1e3, 1e3, allow_nan=False)


# ----------------------------------------------------------------------------- variation
@given(st.floats(0.01, 1e3), st.integers(2, 20))
def test_cv_of_identical_values_is_zero(v, n):
    assert coefficient_of_variation(np.full(n, v)) == 0.0


@given(seeds, st.floats(1e-3, 1e3), st.sampled_from([-1.0, 1.0]))
def test_cv_is_scale_invariant(seed, scale, sign):
    v = np.random.default_rng(seed).uniform(1.0, 2.0, 7)
    assert math.isclose(coefficient_of_variation(sign * scale * v),
                        coefficient_of_variation(v), rel_tol=1e-9)


def test_cv_matches_its_definition_and_degenerate_cases():
    v = np.array([1.0, 2.0, 3.0])
    assert math.isclose(coefficient_of_variation(v), 0.5)  # std (ddof 1) = 1, mean 2
    assert math.isclose(coefficient_of_variation(v, ddof=0), math.sqrt(2 / 3) / 2)
    assert math.isnan(coefficient_of_variation([5.0]))
    assert math.isnan(coefficient_of_variation([-1.0, 1.0]))
    with pytest.raises(ValueError):
        coefficient_of_variation([1.0, math.inf])


# ----------------------------------------------------------------------------- separability
@given(seeds, st.sampled_from([-1.0, 1.0]))
def test_auc_of_a_separating_feature_is_one_in_either_direction(seed, sign):
    r = np.random.default_rng(seed)
    y = np.r_[np.zeros(5, int), np.ones(6, int)]
    s = sign * np.r_[r.uniform(0, 1, 5), r.uniform(2, 3, 6)]
    auc, direction = oriented_auc(y, s, y, s)
    assert auc == 1.0 and direction == sign


@given(finite)
def test_auc_of_a_constant_is_one_half(c):
    y = np.array([0, 0, 1, 1, 1])
    assert oriented_auc(y, np.full(5, c), y, np.full(5, c))[0] == 0.5


def test_direction_comes_from_training_only():
    y = np.array([0, 0, 1, 1])
    auc, sign = oriented_auc(y, [0.0, 1.0, 2.0, 3.0], y, [3.0, 2.0, 1.0, 0.0])
    assert sign == 1.0 and auc == 0.0  # flipped on the test data: worse than chance


# ----------------------------------------------------------------------------- morphology
def _hexagonal(n: int, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.meshgrid(np.arange(n), np.arange(n))
    x = (i + 0.5 * (j % 2)) * pitch
    y = j * pitch * math.sqrt(3) / 2
    p = np.stack([x.ravel(), y.ravel()], 1)
    inner = ((i > 0) & (i < n - 1) & (j > 0) & (j < n - 1)).ravel()
    return p, inner


@given(st.floats(1.0, 500.0), st.floats(0, 2 * math.pi))
def test_nn_cv_of_a_hexagonal_lattice_is_zero_at_any_scale_and_angle(pitch, angle):
    p, inner = _hexagonal(8, pitch)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    p = p @ rot.T
    np.testing.assert_allclose(nn_distances(p, evaluate=inner), pitch, rtol=1e-9)
    assert nn_distance_cv(p, evaluate=inner) < 1e-6


def test_nn_cv_of_random_points_is_the_poisson_value():
    """Independent uniform points: NN distances are Rayleigh, CV = sqrt(4/pi - 1)."""
    p = np.random.default_rng(1).uniform(0, 1, (20000, 2))
    inner = (np.abs(p - 0.5) < 0.4).all(axis=1)
    assert abs(nn_distance_cv(p, evaluate=inner) - math.sqrt(4 / math.pi - 1)) < 0.02


def test_axis_ratio_fraction():
    assert axis_ratio_fraction([1.0, 1.2, 1.5, 1.6, 3.0]) == 0.4  # strictly above 1.5
    assert math.isnan(axis_ratio_fraction([]))
    with pytest.raises(ValueError):
        axis_ratio_fraction([0.9])


@given(seeds, st.floats(1e-3, 1e3), st.integers(2, 24))
def test_sector_contrast_is_one_for_a_uniform_wall_and_scale_invariant(seed, v, n):
    a = np.random.default_rng(seed).uniform(-math.pi, math.pi, 5000)
    assert math.isclose(sector_contrast(np.full(a.size, v), a, n_sectors=n), 1.0)
    w = 1.0 + 0.5 * np.cos(2 * a)
    assert math.isclose(sector_contrast(v * w, a, n_sectors=n), sector_contrast(w, a,
                        n_sectors=n), rel_tol=1e-9)
    assert sector_contrast(w, a, n_sectors=n) >= 1.0


def test_sector_contrast_of_a_half_bright_wall_is_two():
    a = (np.arange(1200) + 0.5) * (2 * math.pi / 1200)
    v = np.where(a < math.pi, 2.0, 1.0)
    assert sector_contrast(v, a, n_sectors=12) == 2.0
    means, counts = sector_means(v, a, n_sectors=12)
    assert counts.sum() == 1200 and np.allclose(means, np.r_[np.full(6, 2.0), np.ones(6)])


@given(st.floats(0.0, 0.8), st.floats(0, 2 * math.pi), st.floats(1e-2, 1e2))
def test_harmonic_contrast_of_a_twofold_pattern_at_any_angle(m, t0, scale):
    """``1 + m cos(2 (t - t0))`` gives ``(1 + s m) / (1 - s m)``, s = sinc of 30 degrees."""
    a = (np.arange(3600) + 0.5) * (2 * math.pi / 3600)
    v = scale * (1.0 + m * np.cos(2 * (a - t0)))
    s = math.sin(math.pi / 6) / (math.pi / 6)
    assert math.isclose(harmonic_contrast(v, a, n_sectors=12), (1 + s * m) / (1 - s * m),
                        rel_tol=1e-3)


def test_harmonic_contrast_ignores_a_onefold_gradient():
    a = (np.arange(1200) + 0.5) * (2 * math.pi / 1200)
    v = 1.0 + 0.5 * np.cos(a)
    assert sector_contrast(v, a) > 2.5
    assert math.isclose(harmonic_contrast(v, a), 1.0, abs_tol=1e-9)
    with pytest.raises(ValueError):
        harmonic_contrast(v, a, n_sectors=4, order=2)


def test_sector_contrast_needs_the_wall_all_round():
    a = np.linspace(0, math.pi, 100)  # half a circle seen
    assert math.isnan(sector_contrast(np.ones(100), a, n_sectors=4))
    assert math.isnan(sector_contrast(np.ones(100), np.linspace(0, 6.28, 100), n_sectors=4,
                                      min_count=50))


# ----------------------------------------------------------------------------- artefacts
@given(seeds)
def test_mask_overlaps_are_symmetric_and_bounded(seed):
    r = np.random.default_rng(seed)
    a, b = r.random((20, 20)) < 0.3, r.random((20, 20)) < 0.3
    for fn in (mask_iou, overlap_coefficient):
        assert fn(a, b) == fn(b, a) and 0.0 <= fn(a, b) <= 1.0
        assert fn(a, a) == 1.0 or not a.any()
    assert overlap_coefficient(a, b) >= mask_iou(a, b)


def test_nested_masks_overlap_fully_but_not_by_iou():
    a = np.zeros((10, 10), bool)
    a[2:8, 2:8] = True
    b = np.zeros_like(a)
    b[4:6, 4:6] = True
    assert overlap_coefficient(a, b) == 1.0 and mask_iou(a, b) == 4 / 36
    assert mask_iou(a, ~a) == 0.0 and overlap_coefficient(a, ~a) == 0.0
    assert math.isnan(mask_iou(np.zeros(4, bool), np.zeros(4, bool)))
    with pytest.raises(ValueError):
        mask_iou(a, a[:5])


# ----------------------------------------------------------------------------- classical
def test_vote_counts_correct_wrong_and_unidentifiable():
    proba = np.array([0.9, 0.95, 0.1, 0.05, 0.5, 0.6])
    samples = np.array(["a", "a", "b", "b", "c", "c"])
    out = vote_samples(proba, np.ones(6), samples, {"a": 1, "b": 1, "c": 0})
    assert (out["correct"], out["wrong"], out["unidentifiable"]) == (1, 1, 1)
    assert out["accuracy"] == 1 / 3


def test_separable_patients_are_classified_perfectly():
    """Two well separated feature clouds, 6 patients each side: every model reaches patch
    and sample accuracy 1 at its own out-of-fold threshold."""
    r = np.random.default_rng(0)

    def cohort(k0: int) -> tuple[np.ndarray, ...]:
        g = np.repeat(np.arange(k0, k0 + 12), 15)
        y = (g - k0 >= 6).astype(int)
        x = r.normal(0, 0.1, (g.size, 3)) + 3.0 * y[:, None]
        return x, y, g

    xt, yt, gt = cohort(0)
    xs, ys, gs = cohort(100)
    res = score_classical(xt, yt, gt, xs, ys, gs, np.ones(len(ys)), names=("KNN",
                          "DecisionTree"), n_splits=3)
    for v in res.values():
        assert v["patch"]["accuracy"] == 1.0 and v["sample"]["correct"] == 12
