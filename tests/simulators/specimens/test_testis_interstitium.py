"""Testis interstitium: vessels with red blood cells (haemoglobin pump-probe), irregular
Leydig clusters and macrophages placed by rejection against the tubules, chromatin texture
of nuclei; locality and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.instrument import AcquisitionConfig, build_simulator
from simulators.instrument.contrast import srs_modulation
from simulators.instrument.response import ResponseConfig
from simulators.specimens.base import Composition, Label, Window
from simulators.specimens.testis import TestisSection
from simulators.specimens.testis.contents import NUC, TEX_ESPT, TEX_SPC
from simulators.specimens.testis.interstitium import (
    grid_cells,
    grid_um,
    reach_um,
)
from simulators.specimens.testis.stamp import stamp_nuclei
from tests.conftest import UniformSpecimen

PATIENTS = (("normal", 0), ("NOA-SCO", 1), ("NOA-SPG", 2))


@pytest.fixture(scope="module")
def specs():
    return {k: TestisSection(k[1], k[0]) for k in PATIENTS}


def _centre_cells(spec, n=3):
    c = spec.config
    s = grid_um(c)
    cx, cy = c.center_um
    return [(i, j) for i in range(-n, n) for j in range(-n, n)], s, (cx, cy)


def _objects(spec, i, j):
    return spec._vessels(i, j), spec._cells(i, j)


@pytest.mark.parametrize("key", PATIENTS)
def test_vessels_and_interstitial_cells_lie_outside_every_tubule(specs, key):
    spec = specs[key]
    g = spec.geometry
    cells, s, _ = _centre_cells(spec, 2)
    n_ves = n_cells = 0
    for i, j in cells:
        ves, cl = _objects(spec, i, j)
        v = ves["vessels"]
        # vessel outlines (24 points) and cell bounding discs outside every tubule outline
        for x, y, a, b, ang, *_ in v:
            ph = np.linspace(0, 2 * math.pi, 97)
            ox = x + a * np.cos(ph) * math.cos(ang) - b * np.sin(ph) * math.sin(ang)
            oy = y + a * np.cos(ph) * math.sin(ang) + b * np.sin(ph) * math.cos(ang)
            for t in g.tubules_in(x - a, x + a, y - a, y + a):
                assert np.all(t.radius_at(ox, oy) > t.b_um), (key, i, j)
        for x, y, a, *_ in cl["cells"]:
            for t in g.tubules_in(x - a, x + a, y - a, y + a):
                assert t.radius_at(x, y) > t.b_um + a, (key, i, j)
        n_ves += v.shape[0]
        n_cells += cl["cells"].shape[0]
        # everything of the grid cell lies within its square grown by the reach
        x0 = spec.config.center_um[0] + i * s
        y0 = spec.config.center_um[1] + j * s
        r = reach_um(spec.config)
        for arr in (v, cl["cells"]):
            if arr.shape[0]:
                ext = arr[:, 2]
                assert np.all(arr[:, 0] - ext >= x0 - r) and np.all(arr[:, 0] + ext <= x0 + s + r)
                assert np.all(arr[:, 1] - ext >= y0 - r) and np.all(arr[:, 1] + ext <= y0 + s + r)
    assert n_ves > 5 and n_cells > 10


@pytest.mark.parametrize("key", PATIENTS[:2])
def test_interstitial_cells_avoid_vessels(specs, key):
    spec = specs[key]
    cells, _, _ = _centre_cells(spec, 2)
    ves = np.concatenate([spec._vessels(i + di, j + dj)["vessels"] for i, j in cells
                          for di in (-1, 0, 1) for dj in (-1, 0, 1)])
    cl = np.concatenate([spec._cells(i, j)["cells"] for i, j in cells])
    for x, y, a, b, ang, *_ in ves:
        dx, dy = cl[:, 0] - x, cl[:, 1] - y
        u = (dx * math.cos(ang) + dy * math.sin(ang)) / (a + cl[:, 2])
        v = (-dx * math.sin(ang) + dy * math.cos(ang)) / (b + cl[:, 2])
        assert np.all(u * u + v * v > 1.0)


def _vessel_window(spec, kind=1, pixel_um=0.4, pad=15.0):
    """A window around a vessel of ``kind`` (with red cells) near the section centre."""
    cells, _, _ = _centre_cells(spec, 4)
    for i, j in cells:
        v = spec._vessels(i, j)
        for row in v["vessels"]:
            if row[6] == kind:
                fov = 2 * row[2] + 2 * pad
                return Window.centered(row[0], row[1], fov, int(round(fov / pixel_um))), row
    raise AssertionError("no vessel found")


def test_red_blood_cells_carry_heme_inside_vessels_only(specs):
    spec = specs[("normal", 0)]
    win, row = _vessel_window(spec)
    comp = spec.render(win)
    assert comp.heme.max() > 0.3  # red cells in the lumen
    assert np.all((comp.heme >= 0) & (comp.heme <= 1))
    # heme only in vessel pixels (or under a nucleus / LD of an overlapping object: none)
    hem = comp.heme > 0.05
    assert np.all(np.isin(comp.labels[hem], (Label.VESSEL,)))
    # red cells: protein ~ haemoglobin (0.33 of a pure protein reference) x in-focus part
    k = comp.heme > 0.9
    if k.any():
        assert np.allclose(comp.concentrations["protein"][k], 0.33, atol=0.03)
    # the vessel's profile (wall and lumen) is labelled VESSEL: pixels inside the ellipse
    # shrunk to half its semi-axes (no other object is placed there: rejection)
    x, y, a, b, ang = row[:5]
    xs, ys = np.meshgrid(win.xs() - x, win.ys() - y)
    u = xs * np.cos(ang) + ys * np.sin(ang)
    v = -xs * np.sin(ang) + ys * np.cos(ang)
    inner = (u / (0.5 * a)) ** 2 + (v / (0.5 * b)) ** 2 < 1.0
    assert inner.sum() > 10
    assert np.mean(comp.labels[inner] == Label.VESSEL) > 0.95


@settings(max_examples=4, deadline=None)
@given(st.integers(5, 120), st.integers(-90, 90))
def test_overlapping_windows_render_the_same_interstitium(dc, dr):
    spec = TestisSection(0, "normal")
    win, _ = _vessel_window(spec, pixel_um=0.5, pad=40.0)
    n, p = win.nx, win.pixel_um
    a = spec.render(win)
    b = spec.render(Window(win.x_um + dc * p, win.y_um + dr * p, n, n, p))
    ra, rb = slice(max(0, dr), n + min(0, dr)), slice(max(0, -dr), n - max(0, dr))
    ca, cb = slice(dc, n), slice(0, n - dc)
    for name in ("lipid", "protein", "dna", "water", "collagen"):
        np.testing.assert_allclose(a.concentrations[name][ra, ca],
                                   b.concentrations[name][rb, cb], atol=1e-5, err_msg=name)
    for name in ("heme", "pigment", "chi2"):
        np.testing.assert_allclose(getattr(a, name)[ra, ca], getattr(b, name)[rb, cb],
                                   atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(a.labels[ra, ca], b.labels[rb, cb])


def test_interstitium_is_deterministic_and_keyed_by_the_patient():
    a, b = TestisSection(4, "NOA-SPT"), TestisSection(4, "NOA-SPT")
    other = TestisSection(5, "NOA-SPT")
    for i, j in grid_cells(a.config, -100, 100, -100, 100):
        for f in ("vessels", "rbc", "nuc"):
            np.testing.assert_array_equal(a._vessels(i, j)[f], b._vessels(i, j)[f])
        for f in ("cells", "nuc", "ld", "lf"):
            np.testing.assert_array_equal(a._cells(i, j)[f], b._cells(i, j)[f])
    cells = grid_cells(a.config, -100, 100, -100, 100)
    va = np.concatenate([a._vessels(i, j)["vessels"] for i, j in cells])
    vo = np.concatenate([other._vessels(i, j)["vessels"] for i, j in cells])
    assert va.shape != vo.shape or not np.allclose(va, vo)


@given(st.floats(0.05, 1.0), st.floats(-180.0, 180.0))
@settings(max_examples=20, deadline=None)
def test_heme_pump_probe_has_its_own_phase_and_flips_sign(heme, phase):
    win = Window(0.0, 0.0, 8, 8, 0.5)
    comp = Composition.empty(win)
    comp.heme[:] = heme
    r = ResponseConfig()
    edges = np.zeros(win.shape, np.float32)

    def g(ph):
        return float(srs_modulation(comp, edges, 2850.0, r, lockin_phase_deg=ph,
                                    psf_fwhm_um=0.4, pixel_um=0.5).mean())

    expected = r.srs_k * r.heme_rel * heme * math.cos(math.radians(r.heme_phase_deg - phase))
    assert g(phase) == pytest.approx(expected, rel=1e-4, abs=1e-12)
    assert g(phase + 180.0) == pytest.approx(-g(phase), rel=1e-4, abs=1e-12)
    assert abs(g(r.heme_phase_deg + 90.0)) < 1e-6 * r.srs_k
    # independent of the Raman shift (electronic, not vibrational)
    assert float(srs_modulation(comp, edges, 2930.0, r, lockin_phase_deg=phase,
                                psf_fwhm_um=0.4, pixel_um=0.5).mean()) == pytest.approx(
        g(phase), rel=1e-4, abs=1e-12)


class _HemeSpecimen(UniformSpecimen):
    def render(self, window: Window) -> Composition:
        c = super().render(window)
        c.heme[:] = 0.8
        c.labels[:] = Label.VESSEL
        return c


def test_heme_gives_no_shg_autofluorescence():
    sim = build_simulator(_HemeSpecimen(lipid=0.2), pixels=16, fov_um=5.0,
                          acquisition=AcquisitionConfig(), session_seed=1)
    assert not sim.shg_photons(sim.window(), 40.0, 40.0).any()


def test_composition_heme_defaults_to_zeros_and_crops():
    win = Window(0.0, 0.0, 10, 6, 1.0)
    e = Composition.empty(win)
    c = Composition(win, e.concentrations, e.chi2, e.pigment, e.labels, e.instance)
    assert c.heme.shape == (6, 10) and not c.heme.any()
    c.heme[2:4, 3:7] = 1.0
    assert c.crop(2).heme.shape == (2, 6) and c.crop(2).heme.sum() == 8.0


def test_spermatocyte_chromatin_is_more_textured_than_elongated_spermatids():
    spec = TestisSection(0, "normal")
    g = spec.geometry
    win = Window(0.0, 0.0, 200, 100, 0.1)
    from simulators.specimens._raster import noise_grid
    from simulators.specimens.testis.geometry import N_TEX

    tex = noise_grid(win, g.noise_seed(N_TEX), 3.5)
    rows = np.array([[5.0, 5.0, 4.5, 4.5, 0.0, 1.0, 0.2, 0.2, TEX_SPC],
                     [15.0, 5.0, 4.5, 4.5, 0.0, 1.0, 0.2, 0.2, TEX_ESPT]])
    comp = Composition.empty(win)
    comp.concentrations["lipid"][:] = 0.04
    stamp_nuclei(win, comp, rows, NUC, tex)
    dna = comp.concentrations["dna"]
    xs = win.xs()[None, :]
    ys = win.ys()[:, None]
    cv = []
    for x0 in (5.0, 15.0):
        m = (xs - x0) ** 2 + (ys - 5.0) ** 2 < 3.5 ** 2
        cv.append(float(dna[m].std() / dna[m].mean()))
    assert cv[0] > 5 * cv[1]
    assert np.all(dna >= 0)
