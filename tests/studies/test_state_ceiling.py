"""The state-ceiling oracle (studies/state_ceiling.py): its decisions follow the tubule
states it is shown, and the measured ceiling obeys the bounds of its definition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.specimens.testis.config import STATE_NAMES
from studies import state_ceiling as sc

PATCH_PX = sc.PATCH * sc.PATCH


def patch(tubules: list[tuple[str, int]]) -> dict:
    area = np.zeros(len(STATE_NAMES))
    tubs = [(STATE_NAMES.index(s), c) for s, c in tubules]
    for s, c in tubs:
        area[s] += c
    return {"area": area, "tubules": tubs, "weight": 1.0}


@pytest.mark.parametrize("task", sorted(sc.TASKS))
def test_class_likelihoods_are_distributions(task):
    for lik in sc.class_likelihoods(task):
        assert np.all(lik > 0) and abs(lik.sum() - 1.0) < 1e-12


@given(st.integers(1, PATCH_PX // 2), st.integers(1, PATCH_PX // 2))
def test_one_deciding_state_decides_both_oracles(a, b):
    lik = sc.class_likelihoods("spt-vs-spg")
    # only SPT tubules: class 0 (NOA-SPT) for both oracles, whatever their sizes
    assert sc.decide(patch([("arrest_spt", a), ("arrest_spt", b)]), "spt-vs-spg", lik,
                     0.0) == (0.0, 0.0)
    assert sc.decide(patch([("arrest_spg", a)]), "spt-vs-spg", lik, 0.0) == (1.0, 1.0)


@given(st.integers(1, PATCH_PX // 2))
def test_majority_follows_area_and_ties_score_half(a):
    lik = sc.class_likelihoods("spt-vs-spg")
    maj, _ = sc.decide(patch([("arrest_spt", a), ("arrest_spg", a)]), "spt-vs-spg", lik, 0.0)
    assert maj == 0.5
    maj, _ = sc.decide(patch([("arrest_spt", a), ("arrest_spg", a + 1)]), "spt-vs-spg",
                       lik, 0.0)
    assert maj == 1.0
    # neutral states only: no decision either way
    assert sc.decide(patch([("sco", a)]), "spt-vs-spg", lik, 0.0)[0] == 0.5
    assert sc.decide(patch([]), "spt-vs-spg", lik, 0.0) == (0.5, 0.5)


@given(st.floats(0.01, 0.5))
def test_tubules_below_the_fraction_are_ignored_by_the_ideal_observer(f):
    lik = sc.class_likelihoods("normal-vs-noa")
    small = int(f * PATCH_PX) - 1
    assert small >= 0
    assert sc.decide(patch([("sco", small)]), "normal-vs-noa", lik, f)[1] == 0.5


@given(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=1, max_size=30),
       st.lists(st.floats(0.1, 1.0), min_size=30, max_size=30))
def test_vote_is_unanimous_for_unanimous_patches_and_symmetric(p, w):
    p, w = np.array(p), np.array(w[:len(p)])
    v, v_flipped = sc.vote(p, w), sc.vote(1.0 - p, w)
    assert v_flipped == (None if v is None else 1 - v)
    if np.all(p == 1.0):
        assert v == 1


def test_ceiling_of_one_spt_patient_is_bounded_by_its_mixture():
    """On a real specimen: per-patch credits lie in [0, 1] and every valid patch sees some
    tissue; an NOA-SPT patient's majority-oracle accuracy on SPT vs SPG is above 1/2 (its
    dominant state is SPT) but below 1 (a mixture has other tubules)."""
    patches = sc.patient_patches(51000, "NOA-SPT")  # test-v1-NOA-SPT-000
    assert patches and all(p["weight"] >= 1 - sc.MAX_BACKGROUND for p in patches)
    lik = sc.class_likelihoods("spt-vs-spg")
    credit = np.array([1.0 - sc.decide(p, "spt-vs-spg", lik, 0.02)[0] for p in patches])
    assert 0.5 < credit.mean() < 1.0
