"""Dx vote and the Monte-Carlo study (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.dx.montecarlo import MonteCarloError, accuracy_curve, simulate_votes
from ml.dx.vote import UNIDENTIFIABLE, Vote, VoteError, dx_vote

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


def test_montecarlo_million_trials_in_chunks():
    """A million trials run (in chunks, bounded memory) and the rates add up; how long it
    takes is a benchmark's business, not a test's."""
    r = simulate_votes(0.9, n_trials=1_000_000, rng=np.random.default_rng(2))
    assert r.n_trials == 1_000_000
    assert r.accuracy + r.unidentifiable + r.wrong == pytest.approx(1.0)


@pytest.mark.parametrize("kw", [dict(patch_accuracy=1.5), dict(n_trials=0),
                                dict(n_patches=(0, 5)), dict(confidence=(0, 1)),
                                dict(weight_range=(0.0, 1.0)), dict(threshold=0.3)])
def test_montecarlo_errors(kw):
    args = dict(patch_accuracy=0.9, n_trials=10, rng=np.random.default_rng(0)) | kw
    with pytest.raises(MonteCarloError):
        simulate_votes(args.pop("patch_accuracy"), **args)
