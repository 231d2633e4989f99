"""The classifier's composite and quantitative channels from raw volts (ml.io.composite)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    # the record the simulator's processing used (a measurement: not the true volts)
    cal = Calibration.from_dict(sim.calibration(np.random.default_rng(1)))
    assert cal.srs_dark_v == pf.background_v["srs_v"]
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
