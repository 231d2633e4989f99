"""SHG of aligned collagen against the laser polarisation (docs/physics-notes.md, SHG
polarisation): the C_inf(v) law, its normalisation, a tubule-like ring of circumferential
fibres through the simulator, circular polarisation, the setting's validation, and the
testis phantom's fibre directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.errors import SettingsError
from simulators.instrument import AcquisitionConfig, build_simulator
from simulators.instrument.contrast import (
    circular_factor,
    orientation_factor,
    orientation_mean,
    polarisation_amplitude,
)
from simulators.instrument.response import ResponseConfig
from simulators.specimens.base import Composition, Label, Specimen, Window
from simulators.specimens.testis import TestisSection
from simulators.specimens.testis.config import SHG_RHO_LOGNORMAL, TestisConfig
from tests.conftest import UniformSpecimen

RHO = st.floats(1.1, 3.0)


def _jones_intensity(alpha: float, rho: float, e: tuple[complex, complex]) -> float:
    """|P|^2 of a C_inf(v) fibre along x' (Kleinman) for the field ``e`` given in the lab
    frame, fibre at ``alpha`` to x: the tensor contracted directly."""
    ca, sa = math.cos(alpha), math.sin(alpha)
    ez = ca * e[0] + sa * e[1]  # along the fibre
    ex = -sa * e[0] + ca * e[1]  # across it, in plane
    pz = rho * ez * ez + ex * ex
    px = 2.0 * ez * ex
    return abs(pz) ** 2 + abs(px) ** 2


@given(rho=RHO, alpha=st.floats(-math.pi, math.pi))
def test_law_matches_the_tensor_and_its_limits(rho, alpha):
    assert orientation_factor(0.0, rho) == pytest.approx(rho * rho)
    assert orientation_factor(math.pi / 2, rho) == pytest.approx(1.0)
    lin = _jones_intensity(alpha, rho, (1.0, 0.0))
    assert float(orientation_factor(alpha, rho)) == pytest.approx(lin, rel=1e-9)
    circ = _jones_intensity(alpha, rho, (1 / math.sqrt(2), 1j / math.sqrt(2)))
    assert circ / orientation_mean(rho) == pytest.approx(circular_factor(rho), rel=1e-9)


@given(rho=RHO, pol=st.floats(-360.0, 360.0))
def test_normalised_factor_averages_to_one(rho, pol):
    a = np.linspace(-math.pi / 2, math.pi / 2, 4096, endpoint=False).astype(np.float32)
    assert float(orientation_factor(a, rho).mean()) == pytest.approx(orientation_mean(rho),
                                                                      rel=1e-6)
    amp = polarisation_amplitude(a, rho, "linear", pol).astype(np.float64)
    assert float((amp * amp).mean()) == pytest.approx(1.0, rel=1e-4)
    assert np.isfinite(amp).all()


def test_unaligned_pixels_read_as_before():
    a = np.array([np.nan, 0.3], np.float32)
    for pol in ("linear", "circular"):
        amp = polarisation_amplitude(a, 2.0, pol, 30.0)
        assert amp.dtype == np.float32 and amp[0] == 1.0 and amp[1] != 1.0


class RingSpecimen(Specimen):
    """A ring (radius 20 um, 3 um wide) of aligned collagen, fibres round it."""

    kind = "ring-test"

    def __init__(self, rho: float) -> None:
        super().__init__(0)
        self.rho = rho

    @property
    def extent_um(self):
        return (-30.0, 30.0, -30.0, 30.0)

    def render(self, window: Window) -> Composition:
        c = Composition.empty(window)
        x, y = np.meshgrid(window.xs(), window.ys())
        r = np.hypot(x, y)
        ring = (r > 18.5) & (r < 21.5)
        c.chi2[ring] = 0.5
        c.labels[ring] = Label.COLLAGEN
        c.fibre_angle = (np.arctan2(y, x) + math.pi / 2).astype(np.float32)
        c.shg_rho = self.rho
        return c


def _ring_shg(rho: float, **response) -> tuple[np.ndarray, np.ndarray]:
    """Mean SHG photons of the ring's middle pixels and their polar angles."""
    sim = build_simulator(RingSpecimen(rho), pixels=200, fov_um=60.0,
                          acquisition=AcquisitionConfig.ideal(),
                          response=ResponseConfig(**response))
    win = sim.window()
    m = sim.margin_px(win.pixel_um)
    shg = sim.shg_photons(win, 40.0, 40.0)[m:-m, m:-m]
    x, y = np.meshgrid(win.xs(), win.ys())
    r = np.hypot(x, y)
    sel = (r > 19.0) & (r < 21.0)
    return shg[sel].astype(np.float64), np.arctan2(y[sel], x[sel])


def _harmonic2(v: np.ndarray, t: np.ndarray) -> complex:
    """Two-fold Fourier coefficient over the mean of ``v`` at polar angles ``t``, from 5-deg
    sector means (the pixel grid samples the ring unevenly in angle)."""
    k = np.floor(np.mod(t, 2 * math.pi) / math.radians(5.0)).astype(int)
    m = np.bincount(k, v, 72) / np.bincount(k, None, 72)
    tc = (np.arange(72) + 0.5) * math.radians(5.0)
    return complex(2.0 * np.mean(m * np.exp(-2j * tc)) / np.mean(m))


@settings(max_examples=8)
@given(rho=RHO, pol=st.floats(-90.0, 90.0))
def test_ring_has_the_twofold_modulation_of_rho(rho, pol):
    """Circumferential fibres under linear polarisation: the ring's SHG has the two-fold
    harmonic ``4 (rho^2 - 1) / (3 rho^2 + 2 rho + 7)`` of its mean, brightest where the
    fibres run along the polarisation (polar angle pol + 90 deg), and reads rho^2 times
    brighter there than where they run across it."""
    v, t = _ring_shg(rho, polarization="linear", polarization_deg=pol)
    c2 = _harmonic2(v, t)
    assert abs(c2) == pytest.approx(4 * (rho * rho - 1) / (3 * rho * rho + 2 * rho + 7),
                                    abs=0.02)
    phase = np.angle(c2 * np.exp(2j * math.radians(pol + 90.0)))  # c2 ~ exp(-2i t_max)
    assert abs(phase) < 0.05
    d = np.angle(np.exp(1j * (t - math.radians(pol))))  # polar angle from the polarisation
    along = np.abs(np.abs(d) - math.pi / 2) < math.radians(4)
    across = (np.abs(d) < math.radians(4)) | (np.abs(d) > math.radians(176))
    assert v[along].mean() / v[across].mean() == pytest.approx(rho * rho, rel=0.04)


def test_rotating_the_polarisation_swaps_bright_and_dim_sectors():
    v0, t = _ring_shg(2.0, polarization_deg=0.0)
    v90, _ = _ring_shg(2.0, polarization_deg=90.0)
    top = np.abs(np.abs(t) - math.pi / 2) < 0.2
    side = np.abs(np.sin(t)) < 0.2
    assert v0[top].mean() > 2 * v0[side].mean()
    assert v90[side].mean() > 2 * v90[top].mean()
    assert v0[top].mean() == pytest.approx(v90[side].mean(), rel=0.02)
    assert v0.mean() == pytest.approx(v90.mean(), rel=0.02)


@pytest.mark.parametrize("rho", [1.3, 2.6])
def test_circular_polarisation_has_no_twofold_part(rho):
    v, t = _ring_shg(rho, polarization="circular", polarization_deg=37.0)
    assert abs(_harmonic2(v, t)) < 0.01
    lin, _ = _ring_shg(rho)
    assert v.mean() / lin.mean() == pytest.approx(circular_factor(rho), rel=0.02)


def test_specimens_without_fibre_directions_ignore_the_polarisation():
    spec = UniformSpecimen(lipid=0.3, chi2=0.4)
    out = []
    for kw in ({}, {"polarization_deg": 45.0}, {"polarization": "circular"}):
        sim = build_simulator(spec, pixels=48, fov_um=30.0, response=ResponseConfig(**kw),
                              acquisition=AcquisitionConfig.ideal())
        out.append(sim.shg_photons(sim.window(), 40.0, 40.0))
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])


@pytest.mark.parametrize("kw", [{"polarization": "elliptical"}, {"polarization": None},
                                {"polarization_deg": 400.0}, {"polarization_deg": math.nan},
                                {"polarization_deg": "ten"}, {"polarization_deg": True}])
def test_bad_polarisation_settings_raise(kw):
    with pytest.raises(SettingsError):
        ResponseConfig(**kw)


def test_default_is_linear_at_zero_and_round_trips():
    r = ResponseConfig()
    assert (r.polarization, r.polarization_deg) == ("linear", 0.0)
    c = ResponseConfig(polarization="circular")
    assert ResponseConfig.from_dict(c.to_dict()) == c


# ---------------------------------------------------------------- testis phantom
def test_patient_rho_is_drawn_within_limits_and_old_configs_load():
    lo, hi = SHG_RHO_LOGNORMAL[2]
    rhos = [TestisConfig.draw(ph, s).shg_rho for ph in ("normal", "NOA-SCO") for s in range(40)]
    assert all(lo <= r <= hi for r in rhos)
    assert 1.5 < float(np.median(rhos)) < 2.2 and np.std(rhos) > 0.1
    d = TestisConfig().to_dict()
    del d["shg_rho"]
    assert TestisConfig.from_dict(d).shg_rho == SHG_RHO_LOGNORMAL[0]
    with pytest.raises(SettingsError):
        TestisConfig(shg_rho=0.5)


def test_lamina_propria_fibres_run_round_the_tubule_and_tiles_agree():
    spec = TestisSection(3, "normal", threads=1)
    cx, cy = spec.default_center_um()
    t = min(spec.tubules_in(cx - 200, cx + 200, cy - 200, cy + 200),
            key=lambda u: math.hypot(u.cx_um - cx, u.cy_um - cy))
    win = Window(t.cx_um - t.a_um - 10, t.cy_um - t.a_um - 10, int(2 * t.a_um + 20),
                 int(2 * t.a_um + 20), 1.0)
    comp = spec.render(win)
    assert comp.fibre_angle is not None and comp.fibre_angle.dtype == np.float32
    assert comp.shg_rho == spec.config.shg_rho
    wall = (comp.instance == t.id) & (comp.labels == Label.COLLAGEN)
    x, y = np.meshgrid(win.xs(), win.ys())
    tangent = np.arctan2(y - t.cy_um, x - t.cx_um) + math.pi / 2
    align = np.cos(2.0 * (comp.fibre_angle[wall] - tangent[wall]))
    assert align.mean() > 0.9  # circumferential, wavy
    # another window over the same world points gives the same directions
    sub = Window(win.x_um + 17.0, win.y_um + 23.0, 60, 50, 1.0)
    other = spec.render(sub).fibre_angle
    assert other is not None
    part = comp.fibre_angle[23:73, 17:77]
    np.testing.assert_allclose(np.cos(2 * other), np.cos(2 * part), atol=2e-3)
    np.testing.assert_allclose(np.sin(2 * other), np.sin(2 * part), atol=2e-3)
    assert np.isfinite(comp.fibre_angle).all()


@given(m=st.floats(0.0, 0.9), shift=st.floats(0.0, 1.0))
def test_lamellae_keep_the_wall_mean_and_have_the_period(m, shift):
    from simulators.specimens.testis.collagen import LAMELLA_PERIOD_UM, lamellae

    n = 4000
    depth = (np.arange(n, dtype=np.float32) + 0.5) * np.float32(4 * LAMELLA_PERIOD_UM / n)
    tex = np.full(n, shift, np.float32)
    prof = lamellae(depth, tex, np.full(n, m, np.float32)).astype(np.float64)
    assert prof.mean() == pytest.approx(1.0, abs=1e-4)  # four whole lamellae
    assert prof.min() == pytest.approx(1.0 - m, abs=1e-3)
    assert prof.max() == pytest.approx(1.0 + m, abs=1e-3)
    k = n // 4  # one period later: the same
    np.testing.assert_allclose(prof[:k], prof[k:2 * k], atol=2e-3)
