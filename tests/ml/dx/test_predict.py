"""The patching / classification / running-vote wrapper (ml.dx.predict), and the patient
split, cohort seeds and resampling of the dx training data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.common.weights import save_weights
from ml.dx.lbnet import LiteBlendNet
from ml.dx.predict import LBNetDx, SampleVote, TaskError, field_patches, get_task
from ml.dx.vote import dx_vote


# ------------------------------------------------------------------------------ patching
def test_noise_only_field_has_no_valid_patch_and_tissue_has():
    rng = np.random.default_rng(0)
    noise = np.clip(rng.normal(0, 0.1, (3, 600, 600)), 0, 1).astype(np.float32)
    assert len(field_patches(noise)) == 0
    tissue = noise.copy()
    tissue[:, :, :300] = np.clip(tissue[:, :, :300] + 0.4, 0, 1)
    ps = field_patches(tissue)
    assert len(ps) > 0
    assert all(c < 300 for _, c in ps.origins)  # only windows over the tissue half
    for p, (r, c) in zip(ps.patches, ps.origins):  # the net sees the unsmoothed data
        assert np.array_equal(p, tissue[:, r:r + 300, c:c + 300])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), n_fields=st.integers(1, 4))
def test_running_vote_equals_one_vote_over_all_patches(seed, n_fields):
    from ml.dx.predict import FieldDx

    rng = np.random.default_rng(seed)
    sv = SampleVote(("normal", "NOA"))
    ps, ws = [], []
    for _ in range(n_fields):
        n = int(rng.integers(1, 20))
        p = rng.dirichlet([1, 1], size=n)
        w = rng.uniform(0.1, 1, n)
        ps.append(p)
        ws.append(w)
        sv.add(FieldDx(p, w, np.zeros((n, 2), np.int64), n, None))
    want = dx_vote(np.concatenate(ps), np.concatenate(ws), class_names=("normal", "NOA"))
    got = sv.vote()
    np.testing.assert_allclose(got.probabilities, want.probabilities, rtol=1e-12)
    assert got.label_name == want.label_name


def test_empty_running_vote_is_none():
    assert SampleVote(("a", "b")).vote() is None


def test_tasks_label_phenotypes():
    t = get_task("normal-vs-noa")
    assert [t.label(p) for p in ("normal", "NOA-SPT", "NOA-SPG", "NOA-SCO")] == [0, 1, 1, 1]
    s = get_task("spt-vs-spg")
    assert (s.label("NOA-SPT"), s.label("NOA-SPG"), s.label("normal")) == (0, 1, None)
    with pytest.raises(TaskError, match="choose from"):
        get_task("cancer")


def test_weights_round_trip_keeps_predictions_and_thresholds(tmp_path):
    torch.manual_seed(0)
    dx = LBNetDx(LiteBlendNet(2, width=4), task="spt-vs-spg", patch_threshold=0.41)
    save_weights(dx.model, tmp_path / "w.pt", meta={"model": {"num_classes": 2, "width": 4},
                                                    "dx": dx.dx_meta()})
    back = LBNetDx.load(tmp_path / "w.pt")
    assert back.task.name == "spt-vs-spg" and back.patch_threshold == 0.41
    x = np.random.default_rng(0).uniform(0, 1, (3, 3, 300, 300)).astype(np.float32)
    assert np.array_equal(dx.predict(x), back.predict(x))


def test_missing_weights_say_so(tmp_path):
    from ml.common.weights import WeightsError

    with pytest.raises(WeightsError, match="does not exist"):
        LBNetDx.load(tmp_path / "nope.pt")


# ------------------------------------------------------------------------ patient split
@settings(max_examples=30, deadline=None)
@given(n0=st.integers(2, 8), n1=st.integers(2, 8), frac=st.floats(0.05, 0.9),
       seed=st.integers(0, 100))
def test_patient_split_never_shares_a_patient_and_keeps_both_classes(n0, n1, frac, seed):
    from ml.dx.cv import split_patients

    groups, y = [], []
    for k, n in ((0, n0), (1, n1)):
        for i in range(n):
            groups += [f"p{k}-{i}"] * 3
            y += [k] * 3
    g, yy = np.array(groups, object), np.array(y)
    tr, va = split_patients(g, yy, frac, seed=seed)
    assert not set(g[tr]) & set(g[va])
    assert set(yy[tr]) == {0, 1} and set(yy[va]) == {0, 1}
    assert np.all(tr ^ va)


def test_patient_split_refuses_a_single_patient_class():
    from ml.dx.cv import split_patients

    with pytest.raises(ValueError, match="need >= 2"):
        split_patients(np.array(["a", "b", "b"], object), np.array([0, 1, 1]), 0.2, seed=0)


def test_cohort_seeds_are_unique_and_deterministic():
    from srash_ophyd.cli.cohort import cohort_plan, parse_counts

    c = parse_counts("normal=3,NOA-SPG=2")
    plan = cohort_plan("c1", c, 1000)
    assert len(plan) == 5 and len({p["seed"] for p in plan}) == 5
    assert plan == cohort_plan("c1", c, 1000)
    other = cohort_plan("c2", c, 50000)
    assert not {p["seed"] for p in plan} & {p["seed"] for p in other}
    for bad in ("normal", "cancer=3", "normal=0", "normal=1,normal=2"):
        with pytest.raises(ValueError):
            parse_counts(bad)


def test_resample_keeps_the_field_area():
    from ml.dx.data import resample

    a = np.random.default_rng(0).uniform(0, 1, (3, 100, 100)).astype(np.float32)
    assert resample(a, 0.3, 0.3) is a
    b = resample(a, 0.6, 0.3)
    assert b.shape == (3, 200, 200) and 0 <= b.min() and b.max() <= 1
    assert abs(float(b.mean()) - float(a.mean())) < 0.01
