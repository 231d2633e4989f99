"""Acquisition variability (docs/physics-notes.md, Acquisition variability): the session's
SRS gain and SHG yield, slow drifts, vignetting of the excitation, pigment
autofluorescence in the SHG channel, and the "ideal" setting that switches them off."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.instrument import AcquisitionConfig, build_simulator, noise_generators
from simulators.instrument.acquisition import SlowDrift, noise_seed_of
from simulators.parts.lasers import PumpLaserConfig, PumpLaserSim, StokesLaserConfig, StokesLaserSim
from simulators.parts.scanner import GalvoScannerSim, ScannerConfig, _vignetting
from simulators.specimens.base import Composition, Label, Window
from tests.conftest import UniformSpecimen

IDEAL = AcquisitionConfig.ideal()
FLAT = ScannerConfig(vignetting_r0_um=1e12)
# Frames of this module's field, computed with the simulator before acquisition variability
# existed (commit 05c7662): UniformSpecimen(lipid=0.6, protein=0.2, chi2=0.4), 48 px,
# 300 um, 2 averages, default_rng(11), 2850 + 2930 cm^-1 + SHG.
BEFORE = {
    "default": {"sum": [9252.012023925781, 6006.643981933594],
                "sumsq": [37207.58210970089, 15690.957295987755],
                "px": [[3.26568603515625, 4.13238525390625, 3.82843017578125],
                       [2.33856201171875, 2.71484375, 2.6336669921875]],
                "pump_mw": [41.99180590254056, 38.64033089196836],
                "stokes_mw": [40.1631697048372, 39.899170101509284]},
    "flat": {"sum": [9727.923278808594, 6314.653625488281, 89.79482384957373],
             "sumsq": [41090.43310331181, 17321.7432144098, 3.582544025373113],
             "px": [[3.7896728515625, 4.1558837890625, 4.29534912109375],
                    [2.67791748046875, 2.7301025390625, 2.935791015625],
                    [0.039191197603940964, 0.044263340532779694, 0.03324291855096817]]},
}


def _stats(raw: np.ndarray) -> dict:
    r = raw.astype(np.float64)
    return {"sum": [float(v) for v in r.sum(axis=(1, 2))],
            "sumsq": [float(v) for v in (r * r).sum(axis=(1, 2))],
            "px": [[float(raw[c, i, j]) for (i, j) in ((0, 0), (23, 30), (47, 5))]
                   for c in range(raw.shape[0])]}


def _golden_field(scanner=None):
    sim = build_simulator(UniformSpecimen(lipid=0.6, protein=0.2, chi2=0.4), pixels=48,
                          fov_um=300.0, averages=2, scanner=scanner, acquisition=IDEAL)
    return sim.field(np.random.default_rng(11))


def test_ideal_setting_reproduces_the_frames_from_before():
    f = _golden_field(FLAT)  # flat field: every channel as before, bit for bit
    assert _stats(f.raw) == BEFORE["flat"]
    f = _golden_field()  # vignetted: SRS as before; SHG now vignetted too (it was not)
    s = _stats(f.raw[:2])
    assert s == {k: BEFORE["default"][k] for k in ("sum", "sumsq", "px")}
    assert f.pump_mw == BEFORE["default"]["pump_mw"]
    assert f.stokes_mw == BEFORE["default"]["stokes_mw"]
    assert float(f.raw[2].sum()) < BEFORE["flat"]["sum"][2]


def _session_sim(seed, config=None, **kw):
    return build_simulator(UniformSpecimen(lipid=1.0), pixels=32, fov_um=5.0, averages=4,
                           acquisition=config, session_seed=seed, **kw)


@given(st.integers(0, 2**31))
def test_session_gain_is_reproducible_per_seed_and_at_most_one(seed):
    a, b = _session_sim(seed), _session_sim(seed)
    assert a.session == b.session
    assert 0 < a.session.srs_gain <= 1.0 and a.session.shg_yield > 0
    # the same session whether started explicitly or adopted from the frame generator
    c = build_simulator(UniformSpecimen(lipid=1.0), pixels=16, fov_um=5.0)
    rng, _ = noise_generators(seed)
    assert noise_seed_of(rng) == seed
    c.frame(rng, with_shg=False)
    assert c.session == a.session
    assert _session_sim(seed, IDEAL).session.srs_gain == 1.0


def test_sessions_differ_between_seeds_with_tens_of_percent_spread():
    sims = [_session_sim(s) for s in range(200)]
    g = np.array([s.session.srs_gain for s in sims])
    y = np.array([s.session.shg_yield for s in sims])
    assert len(set(g.tolist())) == 200
    assert 0.05 < g.std() / g.mean() < 0.5 and 0.05 < y.std() / y.mean() < 0.5


@settings(max_examples=10)
@given(st.integers(0, 10_000))
def test_session_gain_multiplies_srs_linearly(seed):
    drift_free = AcquisitionConfig(pump_drift_rms=0.0, stokes_drift_rms=0.0,
                                   overlap_drift_rms=0.0)
    real, ideal = _session_sim(seed, drift_free), _session_sim(seed, IDEAL)
    g = real.session.srs_gain
    assert real.srs_volts_per_unit() == pytest.approx(g * ideal.srs_volts_per_unit(), rel=1e-12)
    off = real.lockin.config.output_offset_v
    s_real = real.frame(np.random.default_rng(seed), with_shg=False).srs.mean() - off
    s_ideal = ideal.frame(np.random.default_rng(seed), with_shg=False).srs.mean() - off
    assert s_real == pytest.approx(g * s_ideal, rel=2e-3)
    # the calibration record of the session sees the gain (and the SHG yield)
    assert real.shg_volts_per_unit() == pytest.approx(
        real.session.shg_yield * ideal.shg_volts_per_unit(), rel=1e-12)


@given(st.integers(0, 2**31), st.floats(0.0, 0.1), st.floats(60.0, 3600.0))
def test_drift_is_slow_with_bounded_rate(seed, rms, shortest_s):
    d = SlowDrift.draw(rms, (shortest_s, 2 * shortest_s), 4, np.random.default_rng(seed))
    t = np.linspace(0.0, 4 * 3600.0, 20001)
    f = np.array([d(v) for v in t])
    rate = np.abs(np.diff(f)) / np.diff(t)
    assert rate.max() <= d.max_rate_per_s * (1 + 1e-9) + 1e-15
    assert f[0] == 1.0 and np.abs(f - 1).max() <= d.max_excursion + 1e-12
    # the rate bound: rms sqrt(2K) 2 pi / shortest period
    assert d.max_rate_per_s <= rms * math.sqrt(8) * 2 * math.pi / shortest_s + 1e-15


def test_default_drift_is_a_few_percent_over_tens_of_minutes():
    c = AcquisitionConfig()
    for seed in range(20):
        s = _session_sim(seed).session
        for d in (s.pump_drift, s.stokes_drift, s.overlap_drift):
            assert d.max_rate_per_s < 1e-3  # < 6 % per minute at most
            assert d.max_excursion <= 2 * 0.03 * math.sqrt(8) + 1e-12
            assert d(0.0) == 1.0  # powers set and beams aligned at the start
        assert c.pump_drift_rms == 0.02


def _drift_sim(seed):
    """White frame-to-frame drift and ripple off: the recorded power is the slow drift."""
    from simulators.instrument import SRASHSimulator

    return SRASHSimulator(
        UniformSpecimen(lipid=1.0),
        pump=PumpLaserSim(PumpLaserConfig(drift=0.0, power_ripple=0.0)),
        stokes=StokesLaserSim(StokesLaserConfig(drift=0.0)),
        scanner=GalvoScannerSim(ScannerConfig(registration_jitter_px=0.0), pixels=32,
                                fov_um=5.0, averages=8), session_seed=seed)


@settings(max_examples=8)
@given(st.integers(0, 10_000))
def test_recorded_powers_follow_the_measured_drift_and_overlap_drift_remains(seed):
    sim = _drift_sim(seed)
    ses, rng = sim.session, np.random.default_rng(seed)
    off = sim.lockin.config.output_offset_v
    norm = []
    for _ in range(4):
        t_mid = sim.clock_s + 0.5 * sim.scanner.acquisition_time_s
        f = sim.frame(rng, with_shg=False)
        assert f.pump_mw == pytest.approx(40.0 * ses.pump_drift(t_mid), rel=1e-12)
        assert f.stokes_mw == pytest.approx(40.0 * ses.stokes_drift(t_mid), rel=1e-12)
        # power normalisation (what processing does with the recorded powers) leaves the
        # unmeasured overlap drift
        s = (f.srs.mean() - off) / (f.pump_mw * f.stokes_mw / 1600.0)
        norm.append(s / ses.srs_factor(t_mid))
        sim.wait(900.0)
    # what is left is frame noise (~1e-3 of the mean at 32 x 32 px, 8 averages; up to 2.2e-3
    # peak to peak over 4 frames seen); the overlap drift (3 % rms) would be several 1e-2
    assert np.ptp(norm) / np.mean(norm) < 5e-3


@given(st.integers(8, 200), st.floats(5.0, 441.0), st.floats(50.0, 2000.0))
def test_vignetting_is_one_at_centre_symmetric_and_monotone(pixels, fov, r0):
    g = _vignetting(pixels, fov, r0).astype(np.float64)
    p = fov / pixels
    r_c = p / math.sqrt(2) if pixels % 2 == 0 else 0.0  # centre pixel(s) off axis by this
    assert g.max() <= 1.0
    assert g.max() >= (1 + (r_c / r0) ** 2) ** -2 - 1e-6
    np.testing.assert_array_equal(g, g[::-1])
    np.testing.assert_array_equal(g, g[:, ::-1])
    np.testing.assert_array_equal(g, g.T)
    half = g[pixels // 2, pixels // 2:]
    assert np.all(np.diff(half) <= 1e-7)
    diag = np.diagonal(g)[pixels // 2:]
    assert np.all(np.diff(diag) <= 1e-7)


def test_default_vignetting_is_about_20_percent_at_the_corners():
    g = GalvoScannerSim().vignetting()
    assert 0.7 <= float(g[0, 0]) <= 0.9


def test_srs_and_shg_follow_the_excitation_vignetting_squared():
    spec = UniformSpecimen(lipid=0.8, chi2=0.5)
    kw = dict(pixels=64, fov_um=440.0, averages=16, acquisition=IDEAL)
    vig = build_simulator(spec, **kw)
    flat = build_simulator(spec, scanner=FLAT, **kw)
    fv, ff = vig.field(np.random.default_rng(3)), flat.field(np.random.default_rng(3))
    c = (np.arange(64) + 0.5 - 32) * (440.0 / 64)
    v = 1.0 / (1.0 + (c[None, :] ** 2 + c[:, None] ** 2) / 760.0 ** 2)  # one beam
    offs = (vig.lockin.config.output_offset_v, vig.lockin.config.output_offset_v,
            vig.pmt.config.offset_v)
    for ch, off in enumerate(offs):
        for blk in (np.s_[:12, :12], np.s_[26:38, 26:38], np.s_[-12:, :12], np.s_[:12, 26:38]):
            ratio = (fv.raw[ch][blk].mean() - off) / (ff.raw[ch][blk].mean() - off)
            # SRS ~ I_P I_S = v^2; SHG ~ I_P^2 = v^2 (not v)
            assert ratio == pytest.approx(float((v[blk] ** 2).mean()), rel=0.02), (ch, blk)


class _PigmentSpecimen(UniformSpecimen):
    def __init__(self, pigment: float) -> None:
        super().__init__(lipid=0.5)
        self.pigment = pigment

    def render(self, window: Window) -> Composition:
        c = super().render(window)
        c.pigment[:] = self.pigment
        c.labels[:] = Label.STANDARD
        return c


@given(st.floats(0.01, 0.5), st.floats(10.0, 80.0))
def test_pigment_autofluorescence_leaks_into_shg_as_pump_power_squared(pigment, pump_mw):
    cfg = AcquisitionConfig()
    sim = build_simulator(_PigmentSpecimen(pigment), pixels=16, fov_um=5.0, acquisition=cfg,
                          session_seed=1, pump_mw=pump_mw)
    win = sim.window()
    photons = sim.shg_photons(win, pump_mw, 40.0)
    expected = cfg.af_photons_per_pigment * pigment * (pump_mw / 40.0) ** 2
    assert float(photons.mean()) == pytest.approx(expected, rel=1e-4)
    ideal = build_simulator(_PigmentSpecimen(pigment), pixels=16, fov_um=5.0, acquisition=IDEAL)
    assert not ideal.shg_photons(win, pump_mw, 40.0).any()


def test_calibration_record_is_exact_only_when_ideal():
    sim = _session_sim(7, IDEAL)
    rec = sim.calibration(np.random.default_rng(0))
    assert rec["srs_volts_per_unit"] == sim.srs_volts_per_unit()
    assert rec["shg_volts_per_unit"] == sim.shg_volts_per_unit()
    assert rec["measured"] == "this session"


@settings(max_examples=20)
@given(st.integers(0, 2**31))
def test_calibration_record_is_the_truth_times_the_sessions_ratios(seed):
    sim = _session_sim(seed)
    ses = sim.session
    rec = sim.calibration(np.random.default_rng(seed))
    assert rec["srs_volts_per_unit"] == pytest.approx(
        sim.srs_volts_per_unit() * ses.calibration_srs_ratio, rel=1e-12)
    assert rec["shg_volts_per_unit"] == pytest.approx(
        sim.shg_volts_per_unit() * ses.calibration_shg_ratio, rel=1e-12)
    assert rec["measured"] == ("earlier alignment" if ses.calibration_stale
                               else "this session")
    # the calibration draw leaves the session's own draws as they were
    bare = AcquisitionConfig(calibration_stale_probability=0.0, calibration_srs_error=0.0,
                             calibration_shg_error=0.0)
    other = _session_sim(seed, bare).session
    assert (other.srs_gain, other.shg_yield, other.pump_drift) == (
        ses.srs_gain, ses.shg_yield, ses.pump_drift)
    assert other.calibration_srs_ratio == other.calibration_shg_ratio == 1.0


def test_calibration_staleness_and_error_have_their_distributions():
    cfg = AcquisitionConfig()
    sims = [_session_sim(s).session for s in range(400)]
    stale = np.array([s.calibration_stale for s in sims])
    # binomial: 400 draws at p = 0.5 stay within 5 sd
    p = cfg.calibration_stale_probability
    assert abs(stale.mean() - p) < 5 * math.sqrt(p * (1 - p) / 400)
    # fresh records: only the measurement error (lognormal sigma), unbiased in log
    fresh_srs = np.log([s.calibration_srs_ratio for s, st_ in zip(sims, stale) if not st_])
    fresh_shg = np.log([s.calibration_shg_ratio for s, st_ in zip(sims, stale) if not st_])
    n = fresh_srs.size
    assert abs(fresh_srs.std(ddof=1) / cfg.calibration_srs_error - 1) < 5 / math.sqrt(2 * n)
    assert abs(fresh_shg.std(ddof=1) / cfg.calibration_shg_error - 1) < 5 / math.sqrt(2 * n)
    assert abs(fresh_srs.mean()) < 5 * cfg.calibration_srs_error / math.sqrt(n)
    # stale records carry another alignment's gain: a wider spread than the error alone
    stale_srs = np.log([s.calibration_srs_ratio for s, st_ in zip(sims, stale) if st_])
    assert stale_srs.std(ddof=1) > 2 * cfg.calibration_srs_error


def test_settings_record_the_session_and_the_config_round_trips():
    sim = _session_sim(4)
    sim.frame(np.random.default_rng(0), with_shg=False)
    acq = json.loads(json.dumps(sim.settings()))["acquisition"]
    assert AcquisitionConfig.from_dict(acq["config"]) == sim.acquisition
    assert acq["session"]["srs_gain"] == sim.session.srs_gain
    assert acq["clock_s"] == pytest.approx(sim.scanner.acquisition_time_s)


def test_bad_settings_are_refused():
    from simulators.errors import SettingsError

    with pytest.raises(SettingsError):
        AcquisitionConfig(pump_drift_rms=0.5)
    with pytest.raises(SettingsError):
        AcquisitionConfig(drift_periods_s=(600.0, 60.0))
    with pytest.raises(SettingsError):
        AcquisitionConfig(calibration_stale_probability=1.5)
    with pytest.raises(SettingsError):
        _session_sim(0).wait(-1.0)
