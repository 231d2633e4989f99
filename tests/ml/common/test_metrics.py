"""Patch metrics, ROC / AUC and Youden's threshold (scikit-learn behind our checks): the
laws they must obey, whoever computes them."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from ml.common.metrics import (
    MetricsError,
    confusion_matrix,
    patch_metrics,
    roc_auc,
    roc_curve,
    youden_threshold,
)

seeds = st.integers(0, 2**32 - 1)


def _brute_youden(s, y):
    """Every observed score as threshold, J in exact fractions, highest threshold on ties."""
    best_t, best_j = None, Fraction(-2)
    npos, nneg = int((y == 1).sum()), int((y == 0).sum())
    for t in sorted(set(s.tolist()), reverse=True):
        pred = s >= t
        j = Fraction(int(pred[y == 1].sum()), npos) - Fraction(int(pred[y == 0].sum()), nneg)
        if j > best_j:
            best_t, best_j = t, j
    return best_t, max(float(best_j), 0.0)


@given(seeds, st.integers(2, 60), st.booleans())
def test_youden_matches_brute_force(seed, n, ties):
    r = np.random.default_rng(seed)
    y = r.integers(0, 2, n)
    y[0], y[1] = 0, 1
    s = r.random(n) + 0.4 * y
    if ties:
        s = np.round(s, 1)
    t, j = youden_threshold(s, y)
    bt, bj = _brute_youden(s, y)
    assert j == pytest.approx(bj)
    assert t == bt


def test_youden_known_cases():
    assert youden_threshold([0.1, 0.2, 0.7, 0.9], [0, 0, 1, 1]) == (0.7, 1.0)
    t, j = youden_threshold([0.1, 0.6, 0.4, 0.9], [0, 0, 1, 1])
    assert (t, j) == (0.9, pytest.approx(0.5))        # ties with 0.4 (J = 0.5): highest wins
    with pytest.raises(MetricsError, match="both classes"):
        youden_threshold([0.1, 0.2], [1, 1])


@given(seeds, st.integers(2, 80), st.booleans())
def test_auc_equals_mann_whitney_u(seed, n, ties):
    r = np.random.default_rng(seed)
    y = r.integers(0, 2, n)
    y[0], y[1] = 0, 1
    s = r.normal(size=n) + y
    if ties:
        s = np.round(s)
    u = mannwhitneyu(s[y == 1], s[y == 0], alternative="two-sided").statistic
    assert roc_auc(y, s) == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()))


def test_roc_curve_endpoints_and_monotone():
    fpr, tpr, thr = roc_curve([0, 1, 0, 1, 1], [0.1, 0.9, 0.4, 0.4, 0.8])
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.isinf(thr[0]) and np.all(np.diff(thr[1:]) < 0)


@given(seeds, st.integers(2, 60), st.booleans())
def test_roc_points_are_the_rates_at_each_distinct_score(seed, n, ties):
    r = np.random.default_rng(seed)
    y = r.integers(0, 2, n)
    y[0], y[1] = 0, 1
    s = r.random(n) + 0.3 * y
    if ties:
        s = np.round(s, 1)
    fpr, tpr, thr = roc_curve(y, s)
    np.testing.assert_array_equal(thr[1:], np.unique(s)[::-1])  # every distinct score
    for f, t, th in zip(fpr, tpr, thr):
        assert f == pytest.approx(np.mean(s[y == 0] >= th))
        assert t == pytest.approx(np.mean(s[y == 1] >= th))


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=60))
def test_confusion_matrix_counts_each_pair(pairs):
    y, p = np.array(pairs).T
    cm = confusion_matrix(y, p)
    assert cm.shape == (2, 2) and cm.dtype == np.int64
    for a in (0, 1):
        for b in (0, 1):
            assert cm[a, b] == int(((y == a) & (p == b)).sum())


def test_patch_metrics_known_case():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.2, 0.5, 0.6, 0.7, 0.8, 0.9])
    m = patch_metrics(y, s, 0.5)
    assert m.confusion == ((3, 1), (1, 5))
    assert m.accuracy == pytest.approx(0.8)
    assert m.recall == pytest.approx(5 / 6) and m.specificity == pytest.approx(0.75)
    assert m.precision == pytest.approx(5 / 6) and m.f1 == pytest.approx(5 / 6)
    assert m.roc_auc == pytest.approx(roc_auc(y, s))
    np.testing.assert_array_equal(confusion_matrix(y, (s >= 0.5).astype(int)), [[3, 1], [1, 5]])
    one = patch_metrics([1, 1], [0.1, 0.2], 0.5)           # no positives predicted
    assert one.precision == 0.0 and one.f1 == 0.0 and np.isnan(one.roc_auc)


@given(seeds, st.integers(1, 50), st.floats(0.0, 1.0))
def test_patch_metrics_are_consistent(seed, n, thr):
    r = np.random.default_rng(seed)
    y, s = r.integers(0, 2, n), r.random(n)
    m = patch_metrics(y, s, thr)
    (tn, fp), (fn, tp) = m.confusion
    assert tn + fp + fn + tp == n == m.n
    assert m.accuracy == pytest.approx(np.mean((s >= thr) == y))
    for v in (m.accuracy, m.recall, m.specificity, m.precision, m.f1):
        assert 0.0 <= v <= 1.0


def test_metrics_errors():
    with pytest.raises(MetricsError, match="0 \\(negative\\)"):
        patch_metrics([0, 2], [0.1, 0.2], 0.5)
    with pytest.raises(MetricsError, match="same length"):
        patch_metrics([0, 1], [0.1], 0.5)
    with pytest.raises(MetricsError, match="NaN"):
        roc_auc([0, 1], [0.1, np.nan])
    with pytest.raises(MetricsError, match="both classes"):
        roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(MetricsError, match="both classes"):
        roc_curve([0, 0], [0.1, 0.2])
    with pytest.raises(MetricsError, match="y_pred must hold only 0 and 1"):
        confusion_matrix([0, 1], [0, 2])
