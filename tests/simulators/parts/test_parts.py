"""Instrument-part simulators: closed forms, limits and named errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.errors import HardwareFault, OutOfRangeError, SettingsError
from simulators.parts.eom import EOMSim
from simulators.parts.lasers import PumpLaserSim, StokesLaserSim
from simulators.parts.lockin import LockInSim, enbw_hz, f3db_hz
from simulators.parts.photodiode import ELEMENTARY_CHARGE_C, PhotodiodeSim
from simulators.parts.pmt import PMTSim
from simulators.parts.scanner import GalvoScannerSim
from simulators.parts.stage import XYZStageSim


@pytest.mark.parametrize("order,coeff", [(1, 1 / 4), (2, 1 / 8), (4, 5 / 64)])
def test_enbw_closed_forms(order, coeff):
    assert enbw_hz(3e-6, order) == pytest.approx(coeff / 3e-6)


@given(st.integers(1, 8), st.floats(1e-6, 1e-3))
def test_enbw_equals_integral_of_power_response(order, tau):
    f = np.linspace(0, 400 / tau, 400001)
    h2 = (1 + (2 * np.pi * f * tau) ** 2) ** (-order)
    assert np.trapezoid(h2, f) == pytest.approx(enbw_hz(tau, order), rel=2e-3)
    # -3 dB point
    f3 = f3db_hz(tau, order)
    assert (1 + (2 * np.pi * f3 * tau) ** 2) ** (-order) == pytest.approx(0.5, rel=1e-9)


@given(st.integers(1, 4), st.floats(0.3, 30.0))
def test_discrete_lockin_noise_has_exact_target_std(order, tau_over_dwell):
    li = LockInSim(tau_s=tau_over_dwell * 10e-6, order=order)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(400_000).astype(np.float64) / li.noise_gain(10e-6)
    y = li.filter_time_series(x, 10e-6)[2000:]
    assert y.std() == pytest.approx(1.0, rel=0.03)


def test_lockin_step_response_settles_like_cascaded_rc():
    li = LockInSim(tau_s=10e-6, order=1)
    y = li.filter_time_series(np.ones(100), 10e-6)
    # y[k] = 1 - exp(-(k+1) dwell / tau)
    np.testing.assert_allclose(y[:5], 1 - np.exp(-np.arange(1, 6)), rtol=1e-9)


@pytest.mark.parametrize("bad", [3e-3, 0.0, -1e-3, 2.0])
def test_lockin_sensitivity_must_be_in_1_2_5_sequence(bad):
    with pytest.raises(SettingsError, match="1, 2, 5"):
        LockInSim(sensitivity_v=bad)


def test_lockin_order_and_output_validated():
    with pytest.raises(SettingsError, match="1-8"):
        LockInSim(order=9)
    with pytest.raises(SettingsError, match="X"):
        LockInSim(output="Z")


@given(st.floats(1.0, 200.0), st.floats(1.05, 2.0))
def test_pmt_charge_statistics_show_excess_noise_factor(photons, F):
    """Compound Poisson-Gamma: mean = QE n G, var/mean^2 = F / (QE n)."""
    pmt = PMTSim()
    pmt.config = pmt.config.replace(excess_noise=F, dark_rate_hz=0.0, electronic_noise_v=1e-9,
                                    linear_limit_ua=1e6, overlight_limit_ua=1e6,
                                    output_range_v=1e6, offset_v=0.0)
    rng = np.random.default_rng(0)
    v, flags = pmt.detect(np.full((200, 200), photons, np.float32), 10e-6, 1, rng)
    v = v.astype(np.float64)
    n_pe = pmt.config.qe * photons
    mean_expected = (n_pe * pmt.gain * ELEMENTARY_CHARGE_C / 10e-6
                     * pmt.config.transimpedance_v_per_a)
    # relative standard error of the mean of N = 40 000 pixels: sqrt(F / (QE n N)); a fixed
    # 1 % is about one standard error at a few photons (photons=1.25, F=1.97 was off 1.02 %)
    rel = max(0.01, 4.0 * math.sqrt(F / (n_pe * v.size)))
    assert v.mean() == pytest.approx(mean_expected, rel=rel)
    assert v.var() / v.mean() ** 2 * n_pe == pytest.approx(F, rel=0.05)
    assert flags["pmt_saturated_px"] == 0


def test_pmt_gain_law_and_limits():
    pmt = PMTSim(voltage=700)
    assert pmt.gain == pytest.approx(1e6)
    pmt.set_voltage(800)
    assert pmt.gain == pytest.approx(1e6 * (8 / 7) ** 8)
    with pytest.raises(OutOfRangeError, match="300-900 V"):
        pmt.set_voltage(1000)
    pmt.tripped = True
    with pytest.raises(HardwareFault, match="reset"):
        pmt.require_ok()


def test_photodiode_shot_noise_density():
    pd = PhotodiodeSim()
    pd.config = pd.config.replace(rin_dbc_per_hz=-200.0, electronic_noise_pa_per_rthz=0.0)
    i = pd.dc_current_a(40)
    assert pd.noise_density_a_per_rthz(40) == pytest.approx(math.sqrt(2 * ELEMENTARY_CHARGE_C * i),
                                                            rel=1e-6)
    # -165 dB/Hz relative shot noise at 10 mA (docs/physics-notes.md, SRS signal chain)
    assert 10 * math.log10(2 * ELEMENTARY_CHARGE_C / i) == pytest.approx(-165, abs=0.5)
    assert not pd.saturated(40) and pd.saturated(120)
    assert pd.compression(40) > 0.99


@pytest.mark.parametrize("nm", [699.9, 990.1, 1200, float("nan")])
def test_pump_wavelength_out_of_range_raises_with_allowed_range(nm):
    pump = PumpLaserSim()
    with pytest.raises(OutOfRangeError, match="700-990 nm"):
        pump.tune(nm)
    assert pump.wavelength_nm == pytest.approx(796.856, abs=1e-3)  # unchanged


def test_pump_tuning_time_and_power_curve():
    pump = PumpLaserSim()
    start = pump.wavelength_nm
    t = pump.tune(790.0)
    assert t == pytest.approx(2.0 + (start - 790.0) / 5.0)
    assert pump.tune(790.0) == 0.0
    assert pump.available_power_mw(820) > pump.available_power_mw(980)
    pump.set_power(200)
    with pytest.raises(SettingsError, match="not available"):
        pump.tune(990.0)


def test_stokes_power_limits():
    with pytest.raises(OutOfRangeError):
        StokesLaserSim(power_mw=-1)


def test_eom_refuses_modulation_at_repetition_rate():
    with pytest.raises(SettingsError):
        EOMSim(frequency_hz=80e6)
    eom = EOMSim()
    assert eom.fundamental_rms_factor == pytest.approx(0.45, abs=0.001)
    assert eom.modulated_mean_square() == pytest.approx(2.0)  # 100 % square wave


@pytest.mark.parametrize("kw,match", [
    ({"dwell_s": -1e-6}, "dwell"), ({"dwell_s": 0.0}, "dwell"), ({"pixels": 0}, "pixels"),
    ({"averages": 0}, "averages"), ({"fov_um": 600}, "field of view")])
def test_scanner_bad_settings_raise(kw, match):
    with pytest.raises(SettingsError, match=match):
        GalvoScannerSim(**kw)


@given(st.booleans(), st.integers(8, 64))
def test_scanner_time_order_round_trips(bidir, n):
    sc = GalvoScannerSim(pixels=n, bidirectional=bidir)
    img = np.random.default_rng(0).random((n, n)).astype(np.float32)
    t = sc.to_time_order(img)
    assert t.shape == (n, n + sc.extra_samples)
    np.testing.assert_array_equal(sc.from_time_order(t), img)
    if bidir:
        np.testing.assert_array_equal(t[1, :n], img[1, ::-1])


def test_stage_limits_checked_before_any_axis_moves():
    st_ = XYZStageSim()
    st_.move(x=100, y=200)
    with pytest.raises(OutOfRangeError, match="stage y"):
        st_.move(x=500, y=1e6)
    assert st_.position["x"] == 100 and st_.position["y"] == 200


def test_stage_repeatability_and_following_error():
    st_ = XYZStageSim()
    rng = np.random.default_rng(0)
    errs = []
    for i in range(400):
        st_.move(rng, x=float(i % 2) * 1000)
        errs.append(st_.position["x"] - st_.target["x"])
    assert np.std(errs) == pytest.approx(st_.config.repeatability_um, rel=0.15)
    st_.inject_following_error()
    with pytest.raises(HardwareFault, match="following error"):
        st_.move(x=3000)
    assert st_.position["x"] != 3000
