"""Focus and section thickness (docs/physics-notes.md, Focus and section thickness): the
axial weight law, stage z, slide tilt and per-field focus error, and the testis section's
thickness map (wedge, knife chatter, folds)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.instrument import AcquisitionConfig, build_simulator, noise_generators
from simulators.instrument.acquisition import field_focus_offset
from simulators.instrument.focus import FocalPlane, apply_focus
from simulators.optics import FWHM_TO_SIGMA, SRS_AXIAL_FWHM_UM, axial_fraction, slab_fraction
from simulators.specimens._raster import noise_points
from simulators.specimens.base import Window
from simulators.specimens.testis import TestisConfig, TestisSection
from simulators.specimens.testis.preparation import SectionPreparation
from tests.conftest import UniformSpecimen

IDEAL = AcquisitionConfig.ideal()
FWHM = SRS_AXIAL_FWHM_UM
SIGMA = FWHM * FWHM_TO_SIGMA


class SlabSpecimen(UniformSpecimen):
    """A uniform section of constant thickness ``t_um`` on the glass."""

    def __init__(self, t_um: float, **conc: float) -> None:
        super().__init__(0, **conc)
        self.t_um = t_um

    def thickness_map(self, window):
        return np.full(window.shape, self.t_um, np.float32)

    @property
    def nominal_thickness_um(self):
        return self.t_um


# ----------------------------------------------------------------------------- the law
@given(z=st.floats(-30, 30), t=st.floats(0.0, 30.0), fwhm=st.floats(0.3, 3.0))
def test_slab_weight_is_a_fraction_and_symmetric_about_the_mid_plane(z, t, fwhm):
    w = float(slab_fraction(z, -t / 2, t / 2, fwhm))
    assert 0.0 <= w <= 1.0
    assert w == pytest.approx(float(slab_fraction(-z, -t / 2, t / 2, fwhm)), abs=1e-12)
    # centred on focus it is the partial-volume law of optics.axial_fraction
    assert float(slab_fraction(0.0, -t / 2, t / 2, fwhm)) == pytest.approx(
        float(axial_fraction(t, fwhm)), abs=1e-12)


@given(t=st.floats(10.0, 40.0), fwhm=st.floats(0.3, 1.0),
       d1=st.floats(0.0, 5.0), d2=st.floats(0.0, 5.0))
def test_slab_weight_is_half_at_a_surface_and_falls_outside(t, fwhm, d1, d2):
    assert float(slab_fraction(t / 2, -t / 2, t / 2, fwhm)) == pytest.approx(0.5, abs=1e-9)
    near, far = sorted((d1, d2))
    assert (float(slab_fraction(t / 2 + far, -t / 2, t / 2, fwhm))
            <= float(slab_fraction(t / 2 + near, -t / 2, t / 2, fwhm)) + 1e-15)


@given(z=st.floats(-3.0, 3.0), fwhm=st.floats(0.5, 2.0))
def test_thin_slab_weight_is_thickness_times_psf_density(z, fwhm):
    s = fwhm * FWHM_TO_SIGMA
    t = 1e-3 * s
    expected = t / (math.sqrt(2 * math.pi) * s) * math.exp(-z * z / (2 * s * s))
    assert float(slab_fraction(z, -t / 2, t / 2, fwhm)) == pytest.approx(expected, rel=1e-3,
                                                                          abs=1e-12)


def test_block_evaluation_matches_the_law():
    spec = SlabSpecimen(4.0, lipid=1.0)
    win = Window(0.0, 0.0, 400, 3, 0.3)
    comp = spec.render(win)
    plane = FocalPlane(z_um=1.5, slope_x=0.02, center_um=(60.0, 0.45))
    apply_focus(comp, spec, plane, fwhm_srs_z_um=FWHM, fwhm_shg_z_um=FWHM)
    z = 1.5 + 0.02 * (win.xs() - 60.0)
    w = slab_fraction(z, -2.0, 2.0, FWHM)
    got = comp.concentrations["lipid"][1]
    evaluated = np.abs(z - 2.0) < 3.72 * SIGMA
    np.testing.assert_allclose(got[evaluated], w[evaluated], atol=2e-6)
    assert np.all(np.abs(got - w) <= 1.1e-4)  # the rest is taken as 1 within the tolerance


# ----------------------------------------------------------------------------- instrument
def _slab_sim(t_um, acquisition=IDEAL, seed=0, **kw):
    return build_simulator(SlabSpecimen(t_um, lipid=0.8, protein=0.2, chi2=0.3), pixels=32,
                           fov_um=40.0, averages=1, acquisition=acquisition, session_seed=seed,
                           **kw)


def test_stage_z_zero_is_the_mid_plane_and_signal_falls_beyond_half_the_thickness():
    t = 6.0
    sim = _slab_sim(t)
    win = sim.window()
    means = {}
    for z in (-4.5, -3.5, -3.0, -2.0, 0.0, 2.0, 3.0, 3.5, 4.5):
        sim.stage.move(z=z)
        comp, _ = sim.composition(win)
        means[z] = float(comp.concentrations["lipid"].mean())
        mod = float(sim.srs_modulation(win, 2850.0).mean())
        means[("mod", z)] = mod
    assert means[0.0] == pytest.approx(0.8, rel=1e-6)  # in the middle: the whole PSF
    for z in (2.0, -2.0):
        assert means[z] == pytest.approx(0.8, rel=1e-3)  # 1 um = 3.2 sigma from a surface
    assert means[3.0] == pytest.approx(0.4, rel=1e-3)  # at a surface: half
    assert means[3.0] == pytest.approx(means[-3.0], rel=1e-6)
    assert means[4.5] < means[3.5] < means[3.0] < means[2.0]
    assert means[4.5] < 1e-3
    assert means[("mod", 4.5)] < means[("mod", 3.0)] < means[("mod", 0.0)]


def test_shg_falls_with_focus_above_the_section_too():
    sim = _slab_sim(4.0)
    win = sim.window()
    shg = []
    for z in (0.0, 2.0, 3.0):
        sim.stage.move(z=z)
        shg.append(float(sim.shg_photons(win, 40.0, 40.0).mean()))
    # amplitude weight w (one-photon axial PSF) -> photons w^2: 1/4 at the surface
    assert shg[1] == pytest.approx(0.25 * shg[0], rel=2e-3)
    assert shg[2] < 0.01 * shg[0]


def test_ideal_acquisition_has_no_focus_error_nor_tilt():
    sim = _slab_sim(5.0, seed=123)
    plane = sim.focal_plane(sim.window())
    assert (plane.z_um, plane.slope_x, plane.slope_y) == (0.0, 0.0, 0.0)
    assert IDEAL.focus_offset_um == 0 and IDEAL.slide_tilt_deg == 0


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_tilted_slide_gives_a_gradient_in_the_right_direction(seed):
    acq = dataclasses.replace(IDEAL, slide_tilt_deg=2.0)
    sim = build_simulator(SlabSpecimen(4.0, lipid=1.0), pixels=64, fov_um=60.0, averages=1,
                          acquisition=acq, session_seed=seed)
    sim.stage.move(z=2.0)  # focus on the top surface at the field's centre
    sx, sy = sim.session.tilt
    comp, _ = sim.composition(sim.window())
    lip = comp.concentrations["lipid"]
    gx = float(lip[:, -1].mean() - lip[:, 0].mean())
    gy = float(lip[-1, :].mean() - lip[0, :].mean())
    # focus rises above the surface where the slope is positive: less tissue there
    assert np.sign(gx) == -np.sign(sx) and np.sign(gy) == -np.sign(sy)
    assert abs(gx) > 0.05 and abs(gy) > 0.05


def test_field_focus_error_is_deterministic_per_field_and_has_its_sd():
    sim = _slab_sim(10.0, acquisition=AcquisitionConfig(), seed=77)
    ses = sim.session
    offs = np.array([field_focus_offset(ses, (100.0 * i, -50.0 * i)) for i in range(600)])
    assert field_focus_offset(ses, (100.0, -50.0)) == offs[1]
    assert np.std(offs) == pytest.approx(AcquisitionConfig().focus_offset_um, rel=0.15)
    win = sim.window()
    assert sim.focal_plane(win) == sim.focal_plane(win)
    other = _slab_sim(10.0, acquisition=AcquisitionConfig(), seed=78).session
    assert field_focus_offset(other, (100.0, -50.0)) != offs[1]


# ----------------------------------------------------------------------------- thickness map
def _prep(seed: int, phenotype: str = "normal") -> TestisSection:
    return TestisSection(seed, phenotype)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.floats(-2000, 2000), st.floats(-2000, 2000))
def test_thickness_map_is_window_local_and_follows_its_definition(seed, x, y):
    prep = _prep(seed).preparation
    a = Window(x, y, 120, 90, 0.5)
    b = Window(x + 20 * 0.5, y + 30 * 0.5, 150, 100, 0.5)  # overlaps a by 100 x 60 px
    ta, tb = prep.thickness(a), prep.thickness(b)
    np.testing.assert_allclose(ta[30:, 20:], tb[:60, :100], rtol=2e-5)
    ref = prep.thickness_at(a.xs()[None, :], a.ys()[:, None])
    np.testing.assert_allclose(ta, ref, rtol=2e-5)
    assert prep.floor_um(a) <= float(ta.min()) + 1e-4


@given(st.integers(0, 2**20))
@settings(max_examples=10, deadline=None)
def test_thickness_map_depends_on_the_preparation_only_never_the_phenotype(seed):
    normal = TestisConfig.draw("normal", seed)
    sco = dataclasses.replace(
        TestisConfig.draw("NOA-SCO", seed), section_thickness_um=normal.section_thickness_um,
        artefact_seed=normal.artefact_seed, center_um=normal.center_um,
        section_radii_um=normal.section_radii_um)
    win = Window(-500.0, 200.0, 64, 64, 4.0)
    a = TestisSection(seed, "normal", normal).thickness_map(win)
    b = TestisSection(seed, "NOA-SCO", sco).thickness_map(win)
    np.testing.assert_array_equal(a, b)
    assert TestisSection(seed, "normal", normal).nominal_thickness_um == \
        normal.section_thickness_um


def test_chatter_period_is_the_peak_of_the_maps_spectrum():
    prep = dataclasses.replace(
        SectionPreparation.draw(10.0, 4321, (0.0, 0.0), (2700.0, 2500.0)),
        wedge=0.0, folds=(), chatter_period_um=37.0, cut_angle_deg=30.0)
    # a place where the chatter patch is fully on
    pts = np.linspace(-2000, 2000, 81)
    n = noise_points(pts[None, :], pts[:, None], prep.noise_seed, prep.chatter_patch_um)
    i, j = np.unravel_index(np.argmax(n), n.shape)
    assert n[i, j] > 0.8
    win = Window.centered(float(pts[j]), float(pts[i]), 512.0, 512)
    t = prep.thickness(win).astype(np.float64)
    spec = np.abs(np.fft.rfft2(t - t.mean()))
    ky, kx = np.unravel_index(np.argmax(spec), spec.shape)
    fy = np.fft.fftfreq(512, 1.0)[ky]
    fx = np.fft.rfftfreq(512, 1.0)[kx]
    assert 1.0 / math.hypot(fx, fy) == pytest.approx(37.0, rel=0.06)
    assert math.degrees(math.atan2(abs(fy), abs(fx))) == pytest.approx(30.0, abs=4.0)
    # amplitude: 10-30 % of the nominal thickness
    assert 0.1 * 10.0 <= 0.5 * (t.max() - t.min()) <= 0.3 * 10.0 * 1.001


def test_a_fold_doubles_the_thickness():
    fold = (100.0, -40.0, 20.0, 600.0, 30.0)
    prep = SectionPreparation(thickness_um=8.0, folds=(fold,))
    assert float(prep.thickness_at(100.0, -40.0)) == pytest.approx(16.0)
    c, s = math.cos(math.radians(20.0)), math.sin(math.radians(20.0))
    assert float(prep.thickness_at(100.0 - 30.0 * s, -40.0 + 30.0 * c)) == pytest.approx(8.0)
    win = Window.centered(100.0, -40.0, 200.0, 200)
    t = prep.thickness(win)
    assert t.max() == pytest.approx(16.0) and t.min() == pytest.approx(8.0)


def test_testis_signal_is_all_there_at_the_mid_plane_and_gone_above_the_section():
    spec = TestisSection(7, "normal")
    x, y = spec.default_center_um()
    sim = build_simulator(spec, pixels=48, fov_um=48.0, averages=1, x_um=x, y_um=y,
                          acquisition=IDEAL, session_seed=0)
    win = sim.window()
    bare = spec.render(win.padded(sim.margin_px(win.pixel_um)))
    t0 = spec.nominal_thickness_um
    protein = float(bare.concentrations["protein"].mean())
    assert protein > 0.01
    comp, _ = sim.composition(win)
    assert float(comp.concentrations["protein"].mean()) == pytest.approx(protein, rel=1e-3)
    t = spec.thickness_map(win)
    assert float(t.min()) > 0.5 * t0 and float(t.max()) < 2.0 * t0  # no fold here
    sim.stage.move(z=float(t.max()) - 0.5 * t0 + 1.5)  # 1.5 um above the highest point
    comp, _ = sim.composition(win)
    assert float(comp.concentrations["protein"].mean()) < 0.01 * protein


def test_reading_the_composition_does_not_fix_the_session():
    sim = build_simulator(SlabSpecimen(5.0, lipid=1.0), pixels=16, fov_um=10.0, averages=1)
    sim.composition(sim.window())  # before anything is acquired: focus at the stage's z
    rng, _ = noise_generators(5)
    sim.field(rng, shifts_cm1=[2850], with_shg=False)
    assert sim.session.seed == 5
