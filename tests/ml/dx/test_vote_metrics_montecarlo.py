"""Dx vote, patch metrics, Youden's threshold and the Monte-Carlo study (numpy only)."""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from ml.common.metrics import MetricsError, confusion_matrix, roc_auc, roc_curve
from ml.dx.montecarlo import MonteCarloError, accuracy_curve, simulate_votes
from ml.dx.vote import UNIDENTIFIABLE, Vote, VoteError, dx_vote, patch_metrics, youden_threshold

seeds = st.integers(0, 2**32 - 1)


def _probs(r: np.random.Generator, n: int, k: int) -> np.ndarray:
    p = r.random((n, k)) + 1e-3
    return p / p.sum(1, keepdims=True)


@given(seeds, st.integers(1, 60), st.integers(2, 4))
def test_vote_invariant_to_patch_order_and_weight_scale(seed, n, k):
    r = np.random.default_rng(seed)
    p, w = _probs(r, n, k), r.random(n) + 0.01
    v = dx_vote(p, w)
    perm = r.permutation(n)
    v2 = dx_vote(p[perm], w[perm])
    v3 = dx_vote(p, w * 1e6)
    v4 = dx_vote(p, w * 1e-9)
    for other in (v2, v3, v4):
        np.testing.assert_allclose(other.probabilities, v.probabilities, rtol=1e-12, atol=1e-15)
        assert other.label == v.label
    assert sum(v.probabilities) == pytest.approx(1.0)
    assert v.n_patches == n


@given(st.integers(1, 90), st.integers(2, 4), st.data())
def test_unanimous_certain_patches_give_that_class(n, k, data):
    c = data.draw(st.integers(0, k - 1))
    p = np.zeros((n, k))
    p[:, c] = 1.0
    v = dx_vote(p, np.linspace(0.1, 1.0, n), class_names=[f"c{i}" for i in range(k)])
    assert v.label == c and v.label_name == f"c{c}" and v.identified


@given(st.integers(1, 45), st.floats(0.05, 1.0))
def test_equal_mixture_is_unidentifiable(half, wt):
    p = np.array([[1.0, 0.0]] * half + [[0.0, 1.0]] * half)
    v = dx_vote(p, np.full(2 * half, wt))
    assert v.label is None and v.label_name == UNIDENTIFIABLE
    assert v.probabilities == pytest.approx((0.5, 0.5))


def test_threshold_is_strict_and_weights_matter():
    p = np.array([[0.8, 0.2]] * 5)
    assert dx_vote(p, np.ones(5)).label is None            # 0.8 is not > 0.8
    assert dx_vote(p, np.ones(5), threshold=0.79).label == 0
    # one heavy confident patch outweighs three light contrary ones
    p = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    v = dx_vote(p, [1.0, 0.05, 0.05, 0.05])
    assert v.label == 0 and v.probabilities[0] == pytest.approx(1 / 1.15)
    assert isinstance(v, Vote) and v.as_dict()["threshold"] == 0.8
    with pytest.raises(Exception):
        v.label = 1                                        # frozen


@pytest.mark.parametrize("p, w, match", [
    (np.ones((3, 2)) / 2, np.zeros(3), "zero"),
    (np.ones((0, 2)), np.ones(0), "no patches"),
    (np.ones((3, 2)) / 2, np.ones(2), "one per patch"),
    (np.ones((3, 1)), np.ones(3), "K >= 2"),
    (np.array([[np.nan, 1.0]]), np.ones(1), "finite"),
    (np.array([[-0.1, 1.1]]), np.ones(1), ">= 0"),
    (np.ones((1, 2)) / 2, np.array([-1.0]), ">= 0"),
])
def test_vote_errors(p, w, match):
    with pytest.raises(VoteError, match=match):
        dx_vote(p, w)
    assert issubclass(VoteError, ValueError)


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


def test_montecarlo_extremes():
    rng = np.random.default_rng(0)
    r1 = simulate_votes(1.0, n_trials=20_000, rng=rng)
    assert r1.accuracy == 1.0 and r1.wrong == 0.0
    r0 = simulate_votes(0.0, n_trials=20_000, rng=rng)
    assert r0.wrong == 1.0
    half = simulate_votes(0.5, n_trials=20_000, rng=rng)
    assert half.unidentifiable > 0.99
    assert half.accuracy == pytest.approx(half.wrong, abs=0.005)
    hard = simulate_votes(0.9, n_trials=20_000, rng=rng, confidence=(1e6, 1.0))
    assert hard.accuracy > 0.95                             # near-certain patches: majority


def test_montecarlo_monotone_in_patch_accuracy():
    ps = np.linspace(0.5, 1.0, 11)
    res = accuracy_curve(ps, n_trials=40_000, rng=np.random.default_rng(1))
    acc = np.array([r.accuracy for r in res])
    unid = np.array([r.unidentifiable for r in res])
    assert np.all(np.diff(acc) >= -0.003), acc
    assert acc[-1] == 1.0 and acc[0] < 0.01
    assert unid[0] > unid[-1]
    for r in res:
        assert r.accuracy + r.unidentifiable + r.wrong == pytest.approx(1.0)


def test_montecarlo_is_reproducible_and_chunking_invariant():
    a = simulate_votes(0.85, n_trials=5000, rng=np.random.default_rng(7))
    b = simulate_votes(0.85, n_trials=5000, rng=np.random.default_rng(7))
    assert a == b
    c = simulate_votes(0.85, n_trials=5000, rng=np.random.default_rng(7), chunk=777)
    assert abs(c.accuracy - a.accuracy) < 0.05             # same distribution, other stream
    assert c.n_trials == 5000


def test_montecarlo_million_trials_is_fast():
    t = time.perf_counter()
    r = simulate_votes(0.9, n_trials=1_000_000, rng=np.random.default_rng(2))
    assert time.perf_counter() - t < 10.0
    assert r.n_trials == 1_000_000


@pytest.mark.parametrize("kw", [dict(patch_accuracy=1.5), dict(n_trials=0),
                                dict(n_patches=(0, 5)), dict(confidence=(0, 1)),
                                dict(weight_range=(0.0, 1.0)), dict(threshold=0.3)])
def test_montecarlo_errors(kw):
    args = dict(patch_accuracy=0.9, n_trials=10, rng=np.random.default_rng(0)) | kw
    with pytest.raises(MonteCarloError):
        simulate_votes(args.pop("patch_accuracy"), **args)
