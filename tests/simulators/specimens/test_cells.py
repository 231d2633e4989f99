"""Exfoliated-cells specimen: window agreement, determinism, geometry and truth labels."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.errors import SettingsError
from simulators.specimens.base import Label, Window
from simulators.specimens.cells import CellsConfig, ExfoliatedCells, lattice_of

#: Isolated, in-focus cells on clean water (issue 15's clumps, focus spread, bacteria, debris
#: and mucus off): the geometric invariants of the placement and the label rules.
ISOLATED = CellsConfig(clump_probability=0.0, focus_sd_um=0.0, bacteria_per_mm2=0.0,
                       debris_per_mm2=0.0, mucus_fraction=0.0)
SPEC = ExfoliatedCells(11, ISOLATED)
X0, Y0 = SPEC.first_cell_center()


def _assert_same(a, b) -> None:
    for k in a.concentrations:
        np.testing.assert_array_equal(a.concentrations[k], b.concentrations[k], err_msg=k)
    for k in ("chi2", "pigment", "labels", "instance"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)


def _overlap(a, b, dx: int, dy: int):
    """Crop two compositions (b's origin = a's + (dx, dy) pixels) to their shared pixels."""
    ny, nx = a.labels.shape
    ra = slice(max(dy, 0), min(ny, ny + dy))
    ca = slice(max(dx, 0), min(nx, nx + dx))
    rb = slice(max(-dy, 0), min(ny, ny - dy))
    cb = slice(max(-dx, 0), min(nx, nx - dx))

    class View:
        pass

    va, vb = View(), View()
    va.concentrations = {k: v[ra, ca] for k, v in a.concentrations.items()}
    vb.concentrations = {k: v[rb, cb] for k, v in b.concentrations.items()}
    for k in ("chi2", "pigment", "labels", "instance"):
        setattr(va, k, getattr(a, k)[ra, ca])
        setattr(vb, k, getattr(b, k)[rb, cb])
    return va, vb


@settings(max_examples=25, deadline=None)
@given(dx=st.integers(-90, 90), dy=st.integers(-70, 70),
       pixel=st.sampled_from([0.1, 0.2, 0.25, 0.3, 0.45]),
       phase=st.floats(0.0, 0.999))
def test_overlapping_windows_agree_exactly(dx: int, dy: int, pixel: float, phase: float) -> None:
    nx, ny = 96, 80
    x0 = X0 - nx * pixel / 2 + phase * pixel
    y0 = Y0 - ny * pixel / 2 + 0.37 * pixel
    wa = Window(x0, y0, nx, ny, pixel)
    wb = Window(x0 + dx * pixel, y0 + dy * pixel, nx, ny, pixel)
    assert lattice_of(wa)[2:] == lattice_of(wb)[2:]
    a, b = SPEC.render(wa), SPEC.render(wb)
    _assert_same(*_overlap(a, b, dx, dy))


def test_large_window_agrees_with_its_tiles() -> None:
    p = 0.25
    big = SPEC.render(Window.centered(X0, Y0, 300 * p, 300))
    x0, y0 = big.window.x_um, big.window.y_um
    for r0, c0 in ((0, 0), (37, 211), (150, 3)):
        sub = SPEC.render(Window(x0 + c0 * p, y0 + r0 * p, 89, 89, p))
        np.testing.assert_array_equal(sub.concentrations["lipid"],
                                      big.concentrations["lipid"][r0:r0 + 89, c0:c0 + 89])
        np.testing.assert_array_equal(sub.labels, big.labels[r0:r0 + 89, c0:c0 + 89])


def test_deterministic_in_seed() -> None:
    w = Window.centered(X0, Y0, 60.0, 200)
    _assert_same(ExfoliatedCells(11, ISOLATED).render(w), SPEC.render(w))
    other = ExfoliatedCells(12, ISOLATED).render(w)
    assert not np.array_equal(other.concentrations["lipid"], SPEC.render(w).concentrations["lipid"])


def test_rendering_outputs_are_consistent() -> None:
    c = SPEC.render(Window.centered(X0, Y0, 120.0, 480))
    conc = c.concentrations
    assert all(v.dtype == np.float32 and v.shape == (480, 480) for v in conc.values())
    assert c.labels.dtype == np.uint8 and c.instance.dtype == np.int32
    assert np.all(c.chi2 == 0) and np.all(conc["collagen"] == 0)
    total = conc["lipid"] + conc["protein"] + conc["dna"] + conc["water"]
    assert np.all(total <= 1.0 + 1e-5) and np.all(total >= 0.98)
    bg = c.instance == 0
    # medium between cells: pure water (anti-aliased rims excepted)
    far = bg & (np.abs(np.diff(c.instance, axis=0, prepend=0)) == 0)
    assert np.median(conc["water"][far]) == 1.0
    assert np.all(c.labels[bg] == Label.BACKGROUND)
    assert np.all(c.labels[~bg] != Label.BACKGROUND)
    # truth classes present and clear
    for lab in (Label.CYTOPLASM, Label.NUCLEUS, Label.LIPID_DROPLET):
        assert c.label_fraction(lab) > 0, lab
    drop = c.labels == Label.LIPID_DROPLET
    nuc = c.labels == Label.NUCLEUS
    cyto = c.labels == Label.CYTOPLASM
    assert conc["lipid"][drop].mean() > 0.5 > np.percentile(conc["lipid"][cyto], 99)
    assert conc["lipid"][cyto].max() < 0.5 + conc["lipid"][drop].min()
    # (nucleus rims are anti-aliased: a few cytoplasm pixels carry a little DNA)
    # DNA mass fraction = genome content / nucleus volume (issue 15): a few per cent
    dna_nuc = conc["dna"][nuc].mean()
    assert dna_nuc > 0.02 and dna_nuc > conc["dna"][cyto].max() / 1.5
    assert np.percentile(conc["dna"][cyto], 95) < 0.01
    # nucleus mix differs from cytoplasm: less lipid
    assert np.median(conc["lipid"][nuc]) < np.median(conc["lipid"][cyto])
    # cytoplasm is textured, not flat
    assert conc["protein"][cyto].std() > 0.01


def test_labels_follow_the_partial_volume_rule() -> None:
    c = SPEC.render(Window.centered(X0, Y0, 100.0, 400))
    drop = c.labels == Label.LIPID_DROPLET
    # droplet pixels are lipid-dominated (pv >= 0.5 times the least droplet lipid density)
    lo = 0.5 * SPEC.config.droplet_lipid[0]
    assert drop.any() and np.all(c.concentrations["lipid"][drop] >= lo - 1e-6)


def test_instance_ids_match_cell_records() -> None:
    w = Window.centered(X0, Y0, 100.0, 400)
    c = SPEC.render(w)
    ids = set(np.unique(c.instance)) - {0}
    recs = {r.cell_id: r for r in SPEC.cells_in(*w.extent_um)}
    assert ids and ids <= set(recs)
    for cid in ids:
        ys, xs = np.nonzero(c.instance == cid)
        wx, wy = w.xs()[xs], w.ys()[ys]
        r = recs[cid]
        assert np.all(np.hypot(wx - r.x_um, wy - r.y_um) <= r.radius_um + w.pixel_um)


def test_nucleus_inside_its_cell() -> None:
    w = Window.centered(X0, Y0, 200.0, 400)
    c = SPEC.render(w)
    nuc = c.labels == Label.NUCLEUS
    assert np.all(c.instance[nuc] > 0)
    recs = SPEC.cells_in(-300, 300, -300, 300)
    assert len(recs) > 20
    t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
    for r in recs:
        a, b = r.nucleus_ab_um
        ca, sa = math.cos(r.nucleus_angle_rad), math.sin(r.nucleus_angle_rad)
        u, v = a * np.cos(t), b * np.sin(t)
        px = r.nucleus_xy_um[0] + u * ca - v * sa
        py = r.nucleus_xy_um[1] + u * sa + v * ca
        assert np.all(r.contains(px, py, 0.5)), r.cell_id
        assert 1.0 <= 2 * a <= 14.0
        # droplets sit in the cytoplasm, inside the cell and outside the nucleus
        if r.n_droplets:
            assert np.all(r.contains(r.droplet_x_um, r.droplet_y_um, 0.0))
            assert not np.any(r.in_nucleus(r.droplet_x_um, r.droplet_y_um))
    # each nucleus pixel belongs to the cell whose nucleus it is
    byid = {r.cell_id: r for r in SPEC.cells_in(*w.extent_um)}
    ys, xs = np.nonzero(nuc)
    for cid in np.unique(c.instance[nuc]):
        sel = c.instance[ys, xs] == cid
        r = byid[int(cid)]
        assert np.all(r.in_nucleus(w.xs()[xs[sel]], w.ys()[ys[sel]], w.pixel_um))


def test_cells_do_not_overlap_and_keep_their_size_range() -> None:
    cfg = SPEC.config
    recs = SPEC.cells_in(-400, 400, -400, 400)
    x = np.array([r.x_um for r in recs])
    y = np.array([r.y_um for r in recs])
    rad = np.array([r.radius_um for r in recs])
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    need = rad[:, None] + rad[None, :] + cfg.gap_um - 1e-9
    np.fill_diagonal(d, np.inf)
    assert np.all(d >= need)
    assert np.all(2 * rad >= cfg.diameter_um[0] - 1e-9)
    assert np.all(2 * rad <= cfg.diameter_um[1] + 1e-9)
    n = np.array([r.n_droplets for r in recs])
    assert n.max() <= cfg.droplets_per_cell[1] and np.median(n) >= cfg.droplets_per_cell[0]
    assert len({r.cell_id for r in recs}) == len(recs) and min(r.cell_id for r in recs) > 0


@pytest.mark.parametrize("density", [200.0, 500.0, 800.0])
def test_cell_density_matches_config(density: float) -> None:
    spec = ExfoliatedCells(5, CellsConfig(density_per_mm2=density))  # founders counted
    n = spec.count_in(-1000, 1000, -1000, 1000)
    assert abs(n / 4.0 - density) < 0.1 * density
    assert len(spec.cells_in(-100, 100, -100, 100, centres_only=True)) == spec.count_in(
        -100, 100, -100, 100)
    # a 100 um field holds a handful of cells at the default density
    if density == 500.0:
        per_field = n / 400.0
        assert 4 <= per_field <= 10


def test_no_cells_outside_the_slide() -> None:
    spec = ExfoliatedCells(2, dataclasses.replace(ISOLATED, extent_um=400.0))
    assert spec.extent_um == (-200.0, 200.0, -200.0, 200.0)
    assert spec.cells_in(250, 600, -600, 600, centres_only=True) == []
    c = spec.render(Window.centered(1000.0, 0.0, 50.0, 64))
    assert np.all(c.concentrations["water"] == 1.0) and np.all(c.labels == Label.BACKGROUND)


def test_first_cell_center_shows_a_cell() -> None:
    x, y = SPEC.first_cell_center()
    c = SPEC.render(Window.centered(x, y, 50.0, 100))
    assert c.instance[50, 50] > 0
    assert SPEC.nearest_cell(x + 1.0, y).x_um == x


def test_coarse_and_fine_pixels_render() -> None:
    for p in (0.05, 2.0):
        c = SPEC.render(Window.centered(X0, Y0, 60 * p, 60))
        assert np.isfinite(c.concentrations["lipid"]).all()
        assert (c.instance > 0).any()


def test_describe_and_config_round_trip() -> None:
    d = SPEC.describe()
    assert d["kind"] == "cells" and d["seed"] == 11
    cfg = CellsConfig.from_dict(d["config"])
    assert cfg == SPEC.config and isinstance(cfg.diameter_um, tuple)
    assert cfg.replace(gap_um=3.0).gap_um == 3.0


@pytest.mark.parametrize("changes", [
    {"density_per_mm2": 0.0},
    {"density_per_mm2": -5.0},
    {"density_per_mm2": 5000.0},  # cannot fit without overlap
    {"diameter_um": (40.0, 15.0)},
    {"diameter_um": (1.0, 15.0)},
    {"diameter_um": 20.0},
    {"droplets_per_cell": (-1, 5)},
    {"droplets_per_cell": (2.5, 5)},
    {"droplet_diameter_um": (0.0, 1.0)},
    {"cytoplasm_protein": 0.9, "cytoplasm_lipid": 0.3},
    {"nucleus_dna": 1.5},
    {"gap_um": -1.0},
    {"extent_um": float("nan")},
    {"texture_scale_um": 0.0},
])
def test_bad_config_raises_settings_error(changes) -> None:
    with pytest.raises(SettingsError):
        CellsConfig(**changes)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(SettingsError):
        ExfoliatedCells(-1)
    with pytest.raises(SettingsError):
        ExfoliatedCells(1, config={"density_per_mm2": 10})  # type: ignore[arg-type]
    with pytest.raises(SettingsError):
        CellsConfig.from_dict({"bogus": 1})
