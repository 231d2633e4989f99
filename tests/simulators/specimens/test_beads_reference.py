"""Calibration beads and the uniform reference standard."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.errors import SettingsError
from simulators.optics import FWHM_TO_SIGMA
from simulators.specimens.base import Label, Window
from simulators.specimens.beads import Beads, BeadsConfig, sphere_pixel_average
from simulators.specimens.reference import ReferenceConfig, ReferenceStandard

BEADS = Beads(4)
LIPID = BEADS.nearest_bead(0.0, 0.0, "lipid")
SHG = BEADS.nearest_bead(0.0, 0.0, "shg")


def _field(bead, pixel: float, fov_um: float = 4.0, dx: float = 0.0, dy: float = 0.0) -> Window:
    n = max(8, int(round(fov_um / pixel)))
    return Window.centered(bead.x_um + dx, bead.y_um + dy, n * pixel, n)


# ----------------------------------------------------------------------------- beads
@settings(max_examples=40, deadline=None)
@given(pixel=st.floats(0.03, 0.3), dx=st.floats(-0.5, 0.5), dy=st.floats(-0.5, 0.5))
def test_bead_integrated_signal_is_right_at_any_pixel_size(pixel: float, dx: float,
                                                           dy: float) -> None:
    exact = BEADS.integrated_signal_um2()
    c = BEADS.render(_field(LIPID, pixel, dx=dx, dy=dy))
    lipid = float(c.concentrations["lipid"].sum(dtype=np.float64)) * pixel**2
    assert lipid == pytest.approx(exact, rel=0.02)
    # water is displaced by exactly the bead's partial volume
    water_deficit = float((1.0 - c.concentrations["water"]).sum(dtype=np.float64)) * pixel**2
    assert water_deficit == pytest.approx(exact, rel=0.02)
    assert np.all(c.chi2 == 0)
    s = BEADS.render(_field(SHG, pixel, dx=dx, dy=dy))
    assert float(s.chi2.sum(dtype=np.float64)) * pixel**2 == pytest.approx(exact, rel=0.02)
    assert np.all(s.concentrations["lipid"] == 0)


def test_bead_signal_is_cross_section_times_axial_factor() -> None:
    r = BEADS.config.diameter_um / 2
    sigma = BEADS.config.axial_fwhm_um * FWHM_TO_SIGMA
    # thin-bead law: pi r^2 x erf-slab fraction of the mean chord 4r/3
    expected = math.pi * r * r * (4 * r / 3) / (math.sqrt(2 * math.pi) * sigma)
    assert BEADS.thin_bead_signal_um2() == pytest.approx(expected)
    assert BEADS.integrated_signal_um2() == pytest.approx(expected, rel=0.01)
    sums = []
    for p in (0.03, 0.05, 0.1, 0.2, 0.3):
        c = BEADS.render(_field(LIPID, p))
        sums.append(float(c.concentrations["lipid"].sum(dtype=np.float64)) * p * p)
    assert max(sums) / min(sums) < 1.05
    assert np.mean(sums) == pytest.approx(expected, rel=0.05)
    # the map is a compact blob: everything within r + 1 pixel of the centre
    p = 0.03
    w = _field(LIPID, p)
    c = BEADS.render(w)
    ys, xs = np.nonzero(c.concentrations["lipid"])
    d = np.hypot(w.xs()[xs] - LIPID.x_um, w.ys()[ys] - LIPID.y_um)
    assert d.max() <= r + p


@pytest.mark.parametrize("diameter", [0.05, 0.2, 0.5, 1.0])
def test_larger_beads_keep_their_integral(diameter: float) -> None:
    spec = Beads(4, BeadsConfig(diameter_um=diameter))
    b = spec.nearest_bead(0, 0, "lipid")
    exact = spec.integrated_signal_um2()
    for p in (0.03, 0.1, 0.3):
        c = spec.render(_field(b, p, fov_um=3.0 + diameter))
        got = float(c.concentrations["lipid"].sum(dtype=np.float64)) * p * p
        assert got == pytest.approx(exact, rel=0.02), (diameter, p)
    # a bead as large as the axial PSF approaches full lipid at its centre
    if diameter >= 1.0:
        c = spec.render(_field(b, 0.03))
        assert c.concentrations["lipid"].max() > 0.8


def test_sphere_pixel_average_centre_is_the_axial_fraction_of_the_diameter() -> None:
    # before lateral blurring, the central pixel holds erf(d / (2 sqrt 2 sigma_z))
    sigma = BEADS.config.axial_fwhm_um * FWHM_TO_SIGMA
    for d in (0.5, 1.0, 2.0):
        _, _, pv, foot = sphere_pixel_average(0.0, 0.0, d / 2, pixel_um=0.005, qx=1 << 19,
                                              qy=1 << 19)
        want = math.erf(d / (2 * math.sqrt(2) * sigma))
        assert pv.max() == pytest.approx(want, rel=0.01)
        assert foot.sum() * 0.005**2 == pytest.approx(math.pi * d * d / 4, rel=0.01)


@settings(max_examples=25, deadline=None)
@given(dx=st.integers(-150, 150), dy=st.integers(-150, 150),
       pixel=st.sampled_from([0.03, 0.07, 0.1, 0.3]))
def test_bead_windows_agree_exactly(dx: int, dy: int, pixel: float) -> None:
    nx = ny = 200
    x0 = LIPID.x_um - nx * pixel / 2 + 0.31 * pixel
    y0 = LIPID.y_um - ny * pixel / 2
    a = BEADS.render(Window(x0, y0, nx, ny, pixel))
    b = BEADS.render(Window(x0 + dx * pixel, y0 + dy * pixel, nx, ny, pixel))
    ra, ca = slice(max(dy, 0), min(ny, ny + dy)), slice(max(dx, 0), min(nx, nx + dx))
    rb, cb = slice(max(-dy, 0), min(ny, ny - dy)), slice(max(-dx, 0), min(nx, nx - dx))
    for k in a.concentrations:
        np.testing.assert_array_equal(a.concentrations[k][ra, ca], b.concentrations[k][rb, cb])
    for k in ("chi2", "labels", "instance"):
        np.testing.assert_array_equal(getattr(a, k)[ra, ca], getattr(b, k)[rb, cb])


def test_every_bead_is_labelled_with_its_kind() -> None:
    for p in (0.03, 0.1, 0.3):
        w = Window.centered(0.0, 0.0, 240 * p, 240)
        c = BEADS.render(w)
        x0, x1, y0, y1 = w.extent_um
        beads = BEADS.beads_in(x0 + 1, x1 - 1, y0 + 1, y1 - 1)
        for b in beads:
            m = c.instance == b.bead_id
            assert m.any(), (p, b)
            want = Label.LIPID_DROPLET if b.kind == "lipid" else Label.COLLAGEN
            assert np.all(c.labels[m] == want)
        assert np.all(c.labels[c.instance == 0] == Label.BACKGROUND)
        assert set(np.unique(c.labels)) <= {Label.BACKGROUND, Label.LIPID_DROPLET,
                                            Label.COLLAGEN}
        # medium is water wherever no bead is
        blank = (c.concentrations["lipid"] == 0) & (c.chi2 == 0)
        assert np.all(c.concentrations["water"][blank] == 1.0)


def test_bead_spacing_density_and_kinds() -> None:
    cfg = BEADS.config
    beads = BEADS.beads_in(-300, 300, -300, 300)
    x = np.array([b.x_um for b in beads])
    y = np.array([b.y_um for b in beads])
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(d, np.inf)
    assert d.min() >= cfg.min_spacing_um
    density = len(beads) / (600 * 600 / 100)
    assert density == pytest.approx(cfg.density_per_100um2, rel=0.12)
    shg = np.mean([b.kind == "shg" for b in beads])
    assert shg == pytest.approx(cfg.fraction_shg, abs=0.08)
    assert len({b.bead_id for b in beads}) == len(beads) and min(b.bead_id for b in beads) > 0
    assert BEADS.beads_in(-300, 300, -300, 300, kind="shg") == [b for b in beads
                                                                  if b.kind == "shg"]


def test_nearest_bead() -> None:
    b = BEADS.nearest_bead(LIPID.x_um + 0.3, LIPID.y_um, kind="lipid")
    assert b == LIPID and b.kind == "lipid"
    assert BEADS.nearest_bead(0, 0, kind="shg").kind == "shg"
    anyb = BEADS.nearest_bead(0, 0, kind="any")
    assert math.hypot(*anyb.center_um) <= min(math.hypot(*LIPID.center_um),
                                              math.hypot(*SHG.center_um))
    with pytest.raises(SettingsError):
        BEADS.nearest_bead(0, 0, kind="gold")
    none_shg = Beads(1, BeadsConfig(fraction_shg=0.0, extent_um=100.0))
    with pytest.raises(SettingsError):
        none_shg.nearest_bead(0, 0, kind="shg")


def test_beads_deterministic_and_describe() -> None:
    w = _field(LIPID, 0.1, fov_um=40.0)
    a, b = Beads(4).render(w), BEADS.render(w)
    np.testing.assert_array_equal(a.concentrations["lipid"], b.concentrations["lipid"])
    np.testing.assert_array_equal(a.chi2, b.chi2)
    d = BEADS.describe()
    assert d["kind"] == "beads" and d["config"]["diameter_um"] == 0.1
    assert BeadsConfig.from_dict(d["config"]) == BEADS.config


@pytest.mark.parametrize("changes", [
    {"density_per_100um2": 0.0},
    {"density_per_100um2": 50.0},
    {"diameter_um": 0.0},
    {"diameter_um": 20.0},
    {"fraction_shg": 1.5},
    {"min_spacing_um": 0.1},
    {"min_spacing_um": 1.0, "diameter_um": 0.8},
    {"lipid": -0.1},
    {"axial_fwhm_um": 0.0},
])
def test_bad_bead_config_raises(changes) -> None:
    with pytest.raises(SettingsError):
        BeadsConfig(**changes)


# ----------------------------------------------------------------------------- reference
def test_reference_is_uniform_inside() -> None:
    ref = ReferenceStandard(0)
    for p in (0.05, 0.3, 2.0):
        c = ref.render(Window.centered(123.4, -56.7, 200 * p, 200))
        lip = c.concentrations["lipid"]
        assert lip.std() == 0 and lip[0, 0] == 1.0
        assert np.all(c.concentrations["water"] == 0.0)
        assert np.all(c.labels == Label.STANDARD) and np.all(c.instance == 1)
        for k in ("protein", "dna", "collagen"):
            assert np.all(c.concentrations[k] == 0)
        assert np.all(c.chi2 == 0) and np.all(c.pigment == 0)
    assert ref.extent_um == (-5000.0, 5000.0, -5000.0, 5000.0)
    assert ref.describe()["kind"] == "reference"


def test_reference_edge_and_outside() -> None:
    ref = ReferenceStandard(0, ReferenceConfig(lipid=0.8, water=0.2, width_um=100.0,
                                               height_um=50.0))
    w = Window(40.0, -10.0, 100, 10, 0.2)  # straddles the x = 50 edge
    c = ref.render(w)
    xs = w.xs()
    inside = xs < 50.0
    assert np.all(c.labels[:, inside] == Label.STANDARD)
    assert np.all(c.labels[:, ~inside] == Label.BACKGROUND)
    assert np.all(c.concentrations["lipid"][:, xs < 49.8] == np.float32(0.8))
    assert np.all(c.concentrations["water"][:, xs > 50.2] == 1.0)
    assert np.all(c.concentrations["lipid"][:, xs > 50.2] == 0.0)
    assert np.all(np.diff(c.concentrations["lipid"][0]) <= 0)
    # shifted window agrees exactly
    c2 = ref.render(Window(40.0 + 7 * 0.2, -10.0, 100, 10, 0.2))
    np.testing.assert_array_equal(c.concentrations["lipid"][:, 7:],
                                  c2.concentrations["lipid"][:, :-7])


@pytest.mark.parametrize("changes", [
    {"lipid": 1.5}, {"lipid": -0.1}, {"lipid": 0.7, "water": 0.5}, {"width_um": 0.0},
    {"height_um": float("inf")},
])
def test_bad_reference_config_raises(changes) -> None:
    with pytest.raises(SettingsError):
        ReferenceConfig(**changes)
    with pytest.raises(SettingsError):
        ReferenceStandard(0, {"lipid": 1.0})  # type: ignore[arg-type]
