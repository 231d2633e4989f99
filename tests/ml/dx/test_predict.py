"""The classifier's composite (ml.io.composite), patching/vote wrapper (ml.dx.predict), patient split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.dx.lbnet import LiteBlendNet
from ml.dx.predict import LBNetDx, SampleVote, TaskError, field_patches, get_task
from ml.dx.train import save_weights
from ml.dx.vote import dx_vote
from ml.io.composite import Calibration, CalibrationError, field_channels, field_composite

CAL = Calibration(srs_dark_v=0.02, shg_dark_v=0.005, srs_volts_per_unit=6.75,
                  shg_volts_per_unit=0.19)
SHIFTS = (2850.0, 2930.0)


def _raw(rng, shape=(40, 40)):
    return [rng.uniform(0.0, 1.0, shape).astype(np.float32) for _ in range(3)]


def test_dark_frames_give_a_black_composite():
    z = np.zeros((16, 16), np.float32)
    c = field_composite(z + CAL.srs_dark_v, z + CAL.srs_dark_v, z + CAL.shg_dark_v,
                        calibration=CAL, shifts_cm1=SHIFTS, pump_mw=(40, 40),
                        stokes_mw=(40, 40))
    assert c.shape == (3, 16, 16) and c.dtype == np.float32
    assert np.all(c == 0)


@settings(max_examples=25, deadline=None)
@given(pump=st.floats(10, 80), stokes=st.floats(10, 80), seed=st.integers(0, 2**16))
def test_power_normalisation_undoes_the_power_law(pump, stokes, seed):
    """SRS ~ P_P P_S and SHG ~ P_P^2 above the dark level: scaling the signal by the power
    law and passing the powers gives the reference-power composite."""
    rng = np.random.default_rng(seed)
    s_l, s_p, s_b = (rng.uniform(0, 0.5, (12, 12)) for _ in range(3))
    ref = field_composite(s_l + CAL.srs_dark_v, s_p + CAL.srs_dark_v, s_b + CAL.shg_dark_v,
                          calibration=CAL, shifts_cm1=SHIFTS, pump_mw=(40, 40),
                          stokes_mw=(40, 40))
    k = pump * stokes / 1600.0
    got = field_composite(s_l * k + CAL.srs_dark_v, s_p * k + CAL.srs_dark_v,
                          s_b * (pump / 40.0) ** 2 + CAL.shg_dark_v, calibration=CAL,
                          shifts_cm1=SHIFTS, pump_mw=(pump, pump), stokes_mw=(stokes, stokes))
    np.testing.assert_allclose(got, ref, atol=2e-4)


def test_channel_order_is_protein_lipid_shg():
    z = np.zeros((8, 8), np.float32)
    lipid = z + CAL.srs_dark_v + 1.0
    c = field_composite(lipid, z + CAL.srs_dark_v, z + CAL.shg_dark_v, calibration=CAL,
                        shifts_cm1=SHIFTS, pump_mw=(40, 40), stokes_mw=(40, 40))
    assert c[1].min() > 0 and c[0].max() == 0 and c[2].max() == 0


def test_matches_the_simulators_processing():
    from ml.io.processed import process_field
    from simulators.instrument import build_simulator
    from simulators.specimens import make_specimen

    sim = build_simulator(make_specimen("testis", 3, phenotype="normal"), pixels=128,
                          fov_um=60.0)
    f = sim.field(np.random.default_rng(0))
    pf = process_field(sim, f, np.random.default_rng(1))
    cal = Calibration(srs_dark_v=pf.background_v["srs_v"], shg_dark_v=pf.background_v["shg_v"],
                      srs_volts_per_unit=sim.srs_volts_per_unit(),
                      shg_volts_per_unit=sim.shg_volts_per_unit())
    c = field_composite(f.raw[0], f.raw[1], f.raw[2], calibration=cal,
                        shifts_cm1=f.raman_shifts_cm1, pump_mw=f.pump_mw[:2],
                        stokes_mw=f.stokes_mw[:2])
    np.testing.assert_allclose(c, np.moveaxis(pf.composite, -1, 0), atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), pump=st.floats(10, 80), stokes=st.floats(10, 80))
def test_channels_are_the_unclipped_composite(seed, pump, stokes):
    """The composite is the quantitative channels scaled to full scale, clipped, gamma'd;
    pure lipid at reference power reads exactly 1 in the lipid channel."""
    from ml.common.processing import CompositeConfig

    rng = np.random.default_rng(seed)
    raw = _raw(rng, (10, 10))
    kw = dict(calibration=CAL, shifts_cm1=SHIFTS, pump_mw=(pump, pump),
              stokes_mw=(stokes, stokes))
    q = field_channels(*raw, **kw)
    cfg = CompositeConfig()
    fs = np.array([cfg.protein_full_scale, cfg.lipid_full_scale, cfg.shg_full_scale])
    expect = np.clip(q[[1, 0, 2]] / fs[:, None, None], 0, 1) ** cfg.gamma
    np.testing.assert_allclose(field_composite(*raw, **kw), expect, atol=1e-5)
    pure = np.full((2, 2), CAL.srs_dark_v + CAL.lipid_ref_v(SHIFTS[0]), np.float32)
    z = np.full((2, 2), CAL.shg_dark_v, np.float32)
    one = field_channels(pure, pure, z, calibration=CAL, shifts_cm1=SHIFTS,
                         pump_mw=(CAL.ref_pump_mw,) * 2, stokes_mw=(CAL.ref_stokes_mw,) * 2)
    np.testing.assert_allclose(one[0], 1.0, rtol=1e-6)
    assert np.all(one[2] == 0)


@pytest.mark.parametrize("bad", [None, {}, {"srs_dark_v": 0.0}, {
    "srs_dark_v": 0.0, "shg_dark_v": 0.0, "srs_volts_per_unit": -1.0, "shg_volts_per_unit": 1.0}])
def test_bad_calibration_is_refused(bad):
    with pytest.raises(CalibrationError):
        Calibration.from_dict(bad)


def test_calibration_round_trips():
    assert Calibration.from_dict(CAL.to_dict()) == CAL


def test_mismatched_frames_are_refused():
    with pytest.raises(CalibrationError, match="equal"):
        field_composite(np.zeros((4, 4)), np.zeros((4, 5)), np.zeros((4, 4)), calibration=CAL,
                        shifts_cm1=SHIFTS, pump_mw=(40, 40), stokes_mw=(40, 40))


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
    from ml.dx.train import WeightsError

    with pytest.raises(WeightsError, match="does not exist"):
        LBNetDx.load(tmp_path / "nope.pt")


# ------------------------------------------------------------------------ patient split
@settings(max_examples=30, deadline=None)
@given(n0=st.integers(2, 8), n1=st.integers(2, 8), frac=st.floats(0.05, 0.9),
       seed=st.integers(0, 100))
def test_patient_split_never_shares_a_patient_and_keeps_both_classes(n0, n1, frac, seed):
    from srash_ophyd.cli.train import split_patients

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
    from srash_ophyd.cli.train import split_patients

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
    from srash_ophyd.dxdata import resample

    a = np.random.default_rng(0).uniform(0, 1, (3, 100, 100)).astype(np.float32)
    assert resample(a, 0.3, 0.3) is a
    b = resample(a, 0.6, 0.3)
    assert b.shape == (3, 200, 200) and 0 <= b.min() and b.max() <= 1
    assert abs(float(b.mean()) - float(a.mean())) < 0.01
