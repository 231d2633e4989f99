"""Physical laws of the composed forward model, each against its formula
(docs/physics-notes.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.io.processed import process_field
from simulators.errors import SafetyLimitError
from simulators.instrument import AcquisitionConfig, SRASHSimulator, build_simulator
from simulators.parts.lasers import PumpLaserConfig, PumpLaserSim, StokesLaserConfig, StokesLaserSim
from simulators.parts.scanner import GalvoScannerSim, ScannerConfig
from simulators.spectra import species_spectrum
from tests.conftest import PointSpecimen, UniformSpecimen

NO_JITTER = ScannerConfig(registration_jitter_px=0.0)


def quiet_sim(specimen, *, pixels=96, fov_um=20.0, averages=1, **kw) -> SRASHSimulator:
    """Small field, no power drift or ripple, no vignetting over the small field."""
    return SRASHSimulator(
        specimen,
        pump=PumpLaserSim(PumpLaserConfig(drift=0.0, power_ripple=0.0)),
        stokes=StokesLaserSim(StokesLaserConfig(drift=0.0)),
        scanner=GalvoScannerSim(NO_JITTER, pixels=pixels, fov_um=fov_um, averages=averages),
        **kw)


def srs_signal(sim, rng, shift=2850.0) -> float:
    """Mean SRS signal above the lock-in offset (V)."""
    sim.tune_to(shift_cm1=shift)
    f = sim.frame(rng, with_shg=False)
    return float(f.srs.mean()) - sim.lockin.config.output_offset_v


@given(st.floats(5, 50), st.floats(5, 90))
def test_srs_scales_with_pump_times_stokes_power(pump_mw, stokes_mw):
    rng = np.random.default_rng(0)
    sim = quiet_sim(UniformSpecimen(lipid=0.6, protein=0.2), averages=4)
    sim.lockin.set_sensitivity(10e-3)  # keep 90 mW x 50 mW below the +-10 V output range
    ref = srs_signal(sim, rng)
    sim.pump.set_power(pump_mw)
    sim.stokes.set_power(stokes_mw)
    s = srs_signal(sim, rng)
    assert s / ref == pytest.approx(pump_mw * stokes_mw / 1600.0, rel=0.01, abs=2e-3)
    # and the analytic calibration agrees with the rendered frame (on-axis, uniform)
    expected = sim.srs_volts_per_unit(pump_mw, stokes_mw) * (
        0.6 * species_spectrum("lipid", 2850) + 0.2 * species_spectrum("protein", 2850))
    assert s == pytest.approx(float(expected), rel=0.01, abs=2e-3)


@given(st.floats(5, 100))
def test_shg_scales_with_square_of_exciting_power(pump_mw):
    rng = np.random.default_rng(1)
    sim = quiet_sim(UniformSpecimen(chi2=0.5), averages=8)
    sim.stokes.set_power(40.0)
    off = sim.pmt.config.offset_v
    ref = float(sim.frame(rng).shg.mean()) - off
    sim.pump.set_power(pump_mw)
    s = float(sim.frame(rng).shg.mean()) - off
    assert s / ref == pytest.approx((pump_mw / 40.0) ** 2, rel=0.03)


@given(st.integers(1, 16))
def test_white_noise_std_matches_formula_and_falls_as_inverse_sqrt_averages(averages):
    rng = np.random.default_rng(averages)
    sim = quiet_sim(UniformSpecimen(lipid=1.0), pixels=160, fov_um=5.0, averages=averages)
    sim.tune_to(shift_cm1=2850)
    f = sim.frame(rng, with_shg=False)
    li, pd = sim.lockin, sim.photodiode
    # sigma_X = (10 V / sens) Z i_n sqrt(ENBW) / sqrt(N)
    sigma = (10 / li.sensitivity_v * li.config.frontend_gain_v_per_a
             * pd.noise_density_a_per_rthz(40.0) * math.sqrt(li.enbw_hz) / math.sqrt(averages))
    # remove the (tiny) vignetting gradient with row/column means before measuring noise
    resid = f.srs - f.srs.mean(axis=0, keepdims=True) - f.srs.mean(axis=1, keepdims=True) \
        + f.srs.mean()
    assert resid.std() == pytest.approx(sigma, rel=0.05)


def test_relative_shot_noise_floor_matches_physics_numbers():
    # docs/physics-notes.md, SRS signal chain: 10 mA, tau = 3 us, 2nd order
    # -> sigma_rel ~ 1.2e-6 (shot noise only)
    sim = quiet_sim(UniformSpecimen(lipid=1.0))
    i = sim.photodiode.dc_current_a(40.0)
    assert i == pytest.approx(10e-3)
    sigma_rel = math.sqrt(2 * 1.602176634e-19 / i * sim.lockin.enbw_hz)
    assert sigma_rel == pytest.approx(1.2e-6, rel=0.05)


def _fwhm(profile: np.ndarray, dx: float) -> float:
    p = profile - profile.min()
    half = p.max() / 2
    above = np.nonzero(p >= half)[0]
    i0, i1 = above[0], above[-1]
    left = i0 - 1 + (half - p[i0 - 1]) / (p[i0] - p[i0 - 1])
    right = i1 + (p[i1] - half) / (p[i1] - p[i1 + 1])
    return (right - left) * dx


def test_psf_fwhm_on_rendered_bead_matches_0p29_um():
    sim = quiet_sim(PointSpecimen(0.04), pixels=128, fov_um=2.56, averages=64)
    sim.tune_to(shift_cm1=2850)
    win = sim.window()
    m = sim.margin_px(win.pixel_um)
    mod = sim.srs_modulation(win, 2850.0)[m:-m, m:-m]
    r, c = np.unravel_index(np.argmax(mod), mod.shape)
    expected = sim.objective.srs_fwhm_um(sim.pump.wavelength_nm, 1031.0)[0]
    assert _fwhm(mod[:, c], win.pixel_um) == pytest.approx(expected, rel=0.10)
    assert _fwhm(mod[r, :], win.pixel_um) == pytest.approx(expected, rel=0.10)
    assert expected == pytest.approx(0.29, rel=0.01)


def test_psf_fwhm_on_detected_frame_of_a_200nm_bead():
    """Through the whole chain (noise, lock-in): a 200 nm bead, Gaussian fit along y (the
    slow axis, free of the lock-in smear); the bead adds (2.355 d/4)^2 to the FWHM^2."""
    from scipy.optimize import curve_fit

    d = 0.2
    sim = quiet_sim(PointSpecimen(d), pixels=128, fov_um=2.56, averages=64)
    sim.tune_to(shift_cm1=2850)
    f = sim.frame(np.random.default_rng(0), with_shg=False)
    sm = f.srs - np.median(f.srs)
    r, c = np.unravel_index(np.argmax(sm), sm.shape)
    y = (np.arange(128) - r) * 0.02
    prof = sm[:, c].astype(float)

    def g(x, a, x0, s):
        return a * np.exp(-0.5 * ((x - x0) / s) ** 2)

    (a, x0, s), _ = curve_fit(g, y, prof, p0=(prof.max(), 0.0, 0.12))
    psf = sim.objective.srs_fwhm_um(sim.pump.wavelength_nm, 1031.0)[0]
    expected = math.hypot(psf, 2.3548 * d / 4)
    assert 2.3548 * abs(s) == pytest.approx(expected, rel=0.10)


def test_lockin_filter_smears_along_fast_axis_only():
    sim = quiet_sim(PointSpecimen(0.6), pixels=128, fov_um=12.8, averages=16)
    sim.lockin.set_time_constant(30e-6)  # 3 dwell times: a strong smear
    sim.tune_to(shift_cm1=2850)
    f = sim.frame(np.random.default_rng(0), with_shg=False)
    r, c = np.unravel_index(np.argmax(f.srs), f.srs.shape)
    fx = _fwhm(f.srs[r, :].astype(float), 0.1)
    fy = _fwhm(f.srs[:, c].astype(float), 0.1)
    assert fx > 1.5 * fy
    # causal filter: the image is shifted towards +x (later in time)
    assert c > 64 + 2


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_unmixing_recovers_uniform_concentrations(c_lipid, c_protein):
    rng = np.random.default_rng(3)
    # an exact calibration record (ideal acquisition): unmixing's own law, not the
    # record's measurement error (docs/physics-notes.md, calibration is a measurement)
    sim = quiet_sim(UniformSpecimen(lipid=c_lipid, protein=c_protein, chi2=0.3), pixels=64,
                    fov_um=5.0, averages=4, acquisition=AcquisitionConfig.ideal())
    field = sim.field(rng, pump_nm=[795.9, 790.9])
    proc = process_field(sim, field, rng)
    assert float(np.mean(proc.lipid)) == pytest.approx(c_lipid, abs=0.02)
    assert float(np.mean(proc.protein)) == pytest.approx(c_protein, abs=0.03)


def test_power_normalisation_removes_channel_power_differences():
    rng = np.random.default_rng(4)
    sim = quiet_sim(UniformSpecimen(lipid=0.5, protein=0.3, chi2=0.3), pixels=64, fov_um=5.0,
                    averages=4)
    sim.pump.config = PumpLaserConfig(drift=0.0, power_ripple=0.08)
    a = process_field(sim, sim.field(rng), rng).data
    sim.pump.set_power(20.0)
    sim.stokes.set_power(30.0)
    b = process_field(sim, sim.field(rng), rng).data
    for k in range(3):
        assert b[k].mean() == pytest.approx(a[k].mean(), rel=0.03)


def test_same_seeds_give_identical_frames_and_different_noise_seeds_do_not():
    spec = UniformSpecimen(lipid=0.4, chi2=0.2)
    f1 = build_simulator(spec, pixels=64, fov_um=10).field(np.random.default_rng(7))
    f2 = build_simulator(spec, pixels=64, fov_um=10).field(np.random.default_rng(7))
    f3 = build_simulator(spec, pixels=64, fov_um=10).field(np.random.default_rng(8))
    np.testing.assert_array_equal(f1.raw, f2.raw)
    assert not np.array_equal(f1.raw, f3.raw)


def test_instrument_time_is_pixels_dwell_averages_flyback_and_tuning():
    sim = build_simulator(UniformSpecimen(lipid=1), pixels=1200, fov_um=360, averages=3)
    f = sim.field(np.random.default_rng(0))
    sc = sim.scanner
    frame = 1200 * (1200 + 120) * 10e-6 + sc.config.frame_overhead_s
    assert f.time_s["scan"] == pytest.approx(2 * 3 * frame)
    assert f.time_s["tuning"] > 0  # pump tuned from its start wavelength and between channels
    assert 90 < f.instrument_time_s < 120


def test_total_power_above_safety_limit_is_refused():
    with pytest.raises(SafetyLimitError, match="150"):
        build_simulator(UniformSpecimen(lipid=1), pump_mw=100, stokes_mw=60)
    sim = build_simulator(UniformSpecimen(lipid=1), pixels=32, fov_um=5)
    sim.pump.set_power(120)
    with pytest.raises(SafetyLimitError):
        sim.field(np.random.default_rng(0))


def test_lockin_overload_is_flagged_not_silently_clipped():
    sim = quiet_sim(UniformSpecimen(lipid=1.0), pixels=32, fov_um=5)
    sim.lockin.set_sensitivity(1e-4)
    sim.tune_to(shift_cm1=2850)
    f = sim.frame(np.random.default_rng(0), with_shg=False)
    assert f.faults["lockin_overload_px"] == 32 * 32
    assert np.all(f.srs <= 10.0)


def test_photodiode_saturation_is_flagged():
    sim = quiet_sim(UniformSpecimen(lipid=1.0), pixels=32, fov_um=5)
    sim.pump.set_power(120)
    sim.stokes.set_power(20)
    f = sim.field(np.random.default_rng(0))
    assert f.faults["photodiode_saturated"] is True


def test_pmt_overlight_trips_and_latches_until_reset():
    sim = quiet_sim(UniformSpecimen(chi2=1.0), pixels=32, fov_um=5)
    sim.pmt.set_voltage(900)
    f = sim.frame(np.random.default_rng(0))
    assert f.faults["pmt_overlight_trip"] is True
    assert sim.pmt.tripped
    f2 = sim.frame(np.random.default_rng(1))
    assert f2.faults["pmt_overlight_trip"] is True  # still tripped
    sim.pmt.reset_trip()
    sim.pmt.set_voltage(600)
    f3 = sim.frame(np.random.default_rng(2))
    assert f3.faults["pmt_overlight_trip"] is False


def test_pmt_saturation_counted():
    sim = quiet_sim(UniformSpecimen(chi2=1.0), pixels=32, fov_um=5)
    sim.pmt.config = sim.pmt.config.replace(overlight_limit_ua=1e3)
    sim.pmt.set_voltage(850)
    sim.pump.set_power(70)
    f = sim.frame(np.random.default_rng(0))
    assert f.faults["pmt_saturated_px"] > 0


def test_modelock_loss_kills_nonlinear_signals_and_is_flagged():
    sim = quiet_sim(UniformSpecimen(lipid=1.0, chi2=0.5), pixels=32, fov_um=5)
    sim.pump.inject_modelock_loss()
    f = sim.field(np.random.default_rng(0))
    assert f.faults["modelock_lost"] is True
    off = sim.lockin.config.output_offset_v
    assert abs(float(f.raw[0].mean()) - off) < 0.01


def test_lockin_R_output_on_pure_noise_is_rayleigh_biased():
    """R = sqrt(X^2 + Y^2) of noise alone has mean sigma sqrt(pi/2): the positive
    'background' that background subtraction removes (docs/physics-notes.md, SRS signal chain)."""
    sim = quiet_sim(UniformSpecimen(), pixels=160, fov_um=5.0, averages=1)
    sim.lockin.set_output("R")
    sim.tune_to(shift_cm1=2850)
    f = sim.frame(np.random.default_rng(0), with_shg=False)
    li, pd = sim.lockin, sim.photodiode
    sigma_v = (10 / li.sensitivity_v * li.config.frontend_gain_v_per_a
               * pd.noise_density_a_per_rthz(40.0) * math.sqrt(li.enbw_hz))
    r = f.srs.astype(float) - li.config.output_offset_v
    assert r.mean() == pytest.approx(sigma_v * math.sqrt(math.pi / 2), rel=0.03)
    assert np.all(r > -1e-3)
    sim.lockin.set_output("X")
    x = sim.frame(np.random.default_rng(0), with_shg=False).srs - li.config.output_offset_v
    assert abs(float(x.mean())) < 5 * sigma_v / math.sqrt(x.size) * 10


@pytest.mark.parametrize("d,table", [(0.3, 0.14), (0.5, 0.41), (0.75, 0.70), (1.0, 0.86),
                                     (1.5, 0.98), (2.0, 1.0)])
def test_droplet_partial_volume_matches_physics_table(d, table):
    """Peak SRS of a lipid droplet relative to bulk lipid, after the 3-D PSF
    (docs/physics-notes.md, Optics)."""
    px = 0.02
    pt = quiet_sim(PointSpecimen(d), pixels=200, fov_um=200 * px)
    bulk = quiet_sim(UniformSpecimen(lipid=1.0), pixels=200, fov_um=200 * px)
    w = pt.window()
    peak = pt.srs_modulation(w, 2850.0).max()
    ref = bulk.srs_modulation(bulk.window(), 2850.0).mean()
    assert peak / ref == pytest.approx(table, abs=0.06)
