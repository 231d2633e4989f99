"""Procedural testis section: window consistency, determinism, anatomy, phenotype statistics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.errors import SettingsError
from simulators.specimens._raster import (
    ellipse_coverage,
    noise_layers,
    noise_point,
    value_noise,
)
from simulators.specimens.base import Label, Window
from simulators.specimens.testis import (
    PHENOTYPES,
    TestisConfig,
    TestisSection,
    noise_grid,
    noise_points,
    stamp_ellipses,
)
from simulators.specimens.testis.config import (
    DIAMETER_LIMITS_UM,
    MAX_DROPLET_DENSITY,
    PATIENT_LOGNORMALS,
    STATE_NAMES,
)
from simulators.specimens.testis.lipids import droplet_density

EPITHELIUM = (Label.CYTOPLASM, Label.NUCLEUS, Label.LIPID_DROPLET, Label.PROTEIN_DROPLET)
SEEDS = (0, 1, 2)


def _maps(comp):
    return {**comp.concentrations, "chi2": comp.chi2, "pigment": comp.pigment}


def _assert_same(a, b, sl_a=(slice(None),) * 2, sl_b=(slice(None),) * 2, atol=1e-5):
    for k, v in _maps(a).items():
        np.testing.assert_allclose(v[sl_a], _maps(b)[k][sl_b], atol=atol, rtol=1e-5,
                                   err_msg=k)
    np.testing.assert_array_equal(a.labels[sl_a], b.labels[sl_b])
    np.testing.assert_array_equal(a.instance[sl_a], b.instance[sl_b])


@pytest.fixture(scope="module")
def specimens():
    """One specimen per (phenotype, seed), shared so the caches are reused across tests."""
    return {(ph, s): TestisSection(s, ph) for ph in PHENOTYPES for s in SEEDS}


def _tubule_window(spec, pixel_um=0.4):
    """A window holding the whole tubule nearest the origin, and that tubule (among
    near-transverse profiles, so that the window stays small)."""
    tubs = [t for t in spec.tubules_in(-600, 600, -600, 600) if t.axis_ratio < 1.3]
    t = min(tubs, key=lambda t: math.hypot(t.cx_um, t.cy_um))
    fov = 2 * t.a_um + 20
    return Window.centered(t.cx_um, t.cy_um, fov, int(round(fov / pixel_um))), t


@pytest.fixture(scope="module")
def tubule_renders(specimens):
    """(phenotype, seed) -> (composition, tubule) for a window around one whole tubule."""
    out = {}
    for key, spec in specimens.items():
        w, t = _tubule_window(spec)
        out[key] = (spec.render(w), t)
    return out


#: where to look for a tubule of each state: a phenotype whose patients have many
_STATE_HOME = {"complete": "normal", "hypo": "normal", "arrest_spt": "NOA-SPT",
               "arrest_spg": "NOA-SPG", "sco": "NOA-SCO", "sclerotic": "NOA-SCO"}


def _state_window(spec, state, pixel_um=0.4):
    """A window around the tubule of ``state`` nearest the origin (or None)."""
    tubs = [t for t in spec.tubules_in(-1200, 1200, -1200, 1200) if t.state == state]
    tubs = [t for t in tubs if t.axis_ratio < 1.3] or tubs  # small windows when possible
    if not tubs:
        return None
    t = min(tubs, key=lambda t: math.hypot(t.cx_um, t.cy_um))
    fov = 2 * t.a_um + 20
    return Window.centered(t.cx_um, t.cy_um, fov, int(round(fov / pixel_um))), t


@pytest.fixture(scope="module")
def state_renders():
    """(state, k) -> (composition, tubule): a whole tubule of each state in three patients
    (tubules are mixtures of states; each state carries its histology)."""
    out = {}
    for state in STATE_NAMES:
        seed = 0
        for k in SEEDS:
            while True:
                spec = TestisSection(seed, _STATE_HOME[state])
                seed += 1
                found = _state_window(spec, state)
                if found is not None:
                    break
            w, t = found
            out[(state, k)] = (spec.render(w), t)
    return out


# ----------------------------------------------------------------------------- settings

def test_bad_phenotype_lists_allowed():
    with pytest.raises(SettingsError) as e:
        TestisSection(0, "NOA-XYZ")
    for ph in PHENOTYPES:
        assert ph in str(e.value)
    with pytest.raises(SettingsError):
        TestisConfig.draw("azoospermia", 1)
    with pytest.raises(SettingsError):
        TestisConfig(phenotype="SCO")


def test_config_mismatch_and_validation():
    cfg = TestisConfig.draw("NOA-SCO", 4)
    assert TestisSection(4, "NOA-SCO", cfg).config is cfg
    with pytest.raises(SettingsError, match="differs"):
        TestisSection(4, "normal", cfg)
    with pytest.raises(SettingsError):
        cfg.replace(wall_factor=-1.0)
    with pytest.raises(SettingsError, match="sum to 1"):
        cfg.replace(state_weights=(0.5, 0.1, 0.1, 0.1, 0.1, 0.0))
    with pytest.raises(SettingsError, match="weights"):
        cfg.replace(state_weights=(0.5, 0.5))
    with pytest.raises(SettingsError):
        TestisSection(0, threads=0)


def test_patient_draw_varies_and_describe_is_json():
    a, b = TestisConfig.draw("normal", 1), TestisConfig.draw("normal", 2)
    assert a != b
    assert a == TestisConfig.draw("normal", 1)
    assert a.tubule_diameter_um != b.tubule_diameter_um
    assert TestisConfig.from_dict(json.loads(a.to_json())) == a
    spec = TestisSection(1, "NOA-SPT")
    d = json.loads(json.dumps(spec.describe()))
    assert d["kind"] == "testis" and d["seed"] == 1
    assert d["config"]["phenotype"] == "NOA-SPT"
    assert TestisConfig.from_dict(json.loads(TestisSection(2, "NOA-SCO").config.to_json())) \
        == TestisConfig.draw("NOA-SCO", 2)


# ----------------------------------------------------------------------------- primitives

def test_noise_grid_matches_value_noise():
    w = Window(-37.3, 12.9, 70, 50, 0.7)
    for scale, octaves in ((3.5, 1), (30.0, 1), (900.0, 2)):
        np.testing.assert_allclose(noise_grid(w, 11, scale, octaves),
                                   value_noise(w, 11, scale, octaves=octaves), atol=2e-6)
    xs, ys = np.meshgrid(w.xs(), w.ys())
    np.testing.assert_allclose(noise_points(xs, ys, 11, 3.5), value_noise(w, 11, 3.5),
                               atol=2e-6)


def test_fast_noise_paths_are_bit_identical(specimens):
    """noise_layers (several fields in one call), noise_point (Python floats) and
    tissue_point give exactly the numbers of noise_points / tissue_at: the renderer's
    rejection tests use them, and its output must not depend on which path ran."""
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-4000, 4000, 3000), rng.uniform(-4000, 4000, 3000)
    x[:40] = np.round(x[:40] / 30.0) * 30.0  # on lattice lines
    layers = [(12, 900.0, 2), (5, 123.4, 1), (9, 3.5, 3)]
    for (seed, scale, octaves), got in zip(layers, noise_layers(x, y, layers)):
        ref = noise_points(x, y, seed, scale, octaves)
        assert got.tobytes() == ref.tobytes()
        one = np.array([noise_point(a, b, seed, scale, octaves) for a, b in zip(x[:500], y[:500])])
        assert one.tobytes() == ref[:500].tobytes()
    for spec in list(specimens.values())[:3]:
        g = spec.geometry
        x0, x1, y0, y1 = g.extent_um
        px, py = rng.uniform(x0, x1, 2000), rng.uniform(y0, y1, 2000)
        ref = g.tissue_at(px, py)
        assert 0 < ref.mean() < 1
        assert [g.tissue_point(a, b) for a, b in zip(px, py)] == ref.tolist()


def test_stamp_ellipses_matches_ellipse_coverage():
    w = Window(0.0, 0.0, 120, 100, 0.25)
    x, y, a, b, ang = 14.1, 12.3, 5.0, 3.0, 0.6
    res = stamp_ellipses(w, np.array([x]), np.array([y]), np.array([a]), np.array([b]),
                         np.array([ang]), [np.array([2.0])])
    assert res is not None
    sl, (m,) = res
    full = np.zeros(w.shape, np.float32)
    full[sl] = m
    ref = np.zeros(w.shape, np.float32)
    (rs, cs), cov = ellipse_coverage(w, x, y, a, b, ang)
    ref[rs, cs] = cov
    assert full.sum() * w.pixel_um**2 == pytest.approx(2 * math.pi * a * b, rel=0.01)
    assert np.abs(full / 2 - ref).max() < 0.35  # same shape, ramps differ slightly
    assert np.mean(np.abs(full / 2 - ref)) < 0.01
    assert stamp_ellipses(w, np.array([100.0]), np.array([0.0]), np.array([1.0]),
                          np.array([1.0]), np.array([0.0]), [np.ones(1)]) is None


# ----------------------------------------------------------------------------- windows

def test_rerender_after_other_windows_is_identical(specimens):
    """The renderer reuses scratch arrays across renders: a window rendered again after
    other windows of the same shape (other content, other patients) is the same bit for
    bit, on one thread and in bands."""
    spec = specimens[("normal", 0)]
    w = Window(-60.0, 35.0, 700, 420, 0.3)  # >= 250k pixels: two bands
    first = spec.render(w)
    for other, x in ((specimens[("NOA-SCO", 0)], 500.0), (spec, -900.0)):
        other.render(Window(x, -200.0, 700, 420, 0.3))
    again = spec.render(w)
    for k, v in first.concentrations.items():
        assert v.tobytes() == again.concentrations[k].tobytes(), k
    for k in ("chi2", "pigment", "labels", "instance", "heme", "fibre_angle"):
        assert getattr(first, k).tobytes() == getattr(again, k).tobytes(), k



@settings(max_examples=20)
@given(dx=st.integers(-120, 120), dy=st.integers(-120, 120),
       where=st.sampled_from(["centre", "edge", "off"]),
       pixel=st.sampled_from([0.3, 0.5, 1.0, 2.0]))
def test_overlapping_windows_agree(specimens, dx, dy, where, pixel):
    spec = specimens[("NOA-SPT", 1)] if where == "off" else specimens[("normal", 0)]
    ex = spec.extent_um
    x0 = {"centre": -40.0, "edge": ex[1] - 300.0, "off": 123.4}[where]
    n = 160
    a = Window(x0, 17.0, n, n, pixel)
    b = Window(x0 + dx * pixel, 17.0 + dy * pixel, n, n, pixel)
    ca, cb = spec.render(a), spec.render(b)
    ra = slice(max(0, dy), min(n, n + dy))
    rb = slice(max(0, -dy), min(n, n - dy))
    cola = slice(max(0, dx), min(n, n + dx))
    colb = slice(max(0, -dx), min(n, n - dx))
    if ra.start >= ra.stop or cola.start >= cola.stop:
        return
    _assert_same(ca, cb, (ra, cola), (rb, colb))


def test_banded_threaded_render_equals_single_thread():
    w = Window.centered(35.0, -20.0, 156.0, 520)  # >= 250k pixels: rendered in bands
    one = TestisSection(5, "normal", threads=1).render(w)
    two = TestisSection(5, "normal", threads=2).render(w)
    _assert_same(one, two)


def test_determinism_and_seed_dependence():
    w = Window.centered(10.0, 10.0, 120.0, 240)
    a = TestisSection(3, "NOA-SPG").render(w)
    b = TestisSection(3, "NOA-SPG").render(w)
    for k, v in _maps(a).items():
        np.testing.assert_array_equal(v, _maps(b)[k], err_msg=k)
    np.testing.assert_array_equal(a.labels, b.labels)
    c = TestisSection(4, "NOA-SPG").render(w)
    # (a small window may hold interstitium only: its collagen texture still differs)
    assert not all(np.allclose(v, _maps(c)[k]) for k, v in _maps(a).items())


def test_maps_are_float32_and_in_range(tubule_renders):
    for (ph, _), (comp, _) in tubule_renders.items():
        for k, v in _maps(comp).items():
            assert v.dtype == np.float32, k
            assert np.isfinite(v).all() and v.min() >= 0.0, (ph, k)
        assert comp.chi2.max() <= 1.0
        assert comp.concentrations["lipid"].max() <= 1.5
        assert comp.labels.dtype == np.uint8 and comp.instance.dtype == np.int32


def test_outside_section_is_background(specimens):
    spec = specimens[("normal", 0)]
    x0, x1, y0, y1 = spec.extent_um
    far = spec.render(Window(x1 + 100.0, 0.0, 64, 64, 1.0))
    assert not far.labels.any() and not far.instance.any()
    assert all(not v.any() for v in _maps(far).values())
    # a window across the outline's right end holds both tissue and background
    cy = spec.config.center_um[1]
    edge = spec.render(Window(x1 - 700.0, cy - 100.0, 350, 100, 2.0))
    bg = edge.label_fraction(Label.BACKGROUND)
    assert 0.02 < bg < 0.98
    assert not edge.concentrations["protein"][edge.labels == Label.BACKGROUND].any() or \
        edge.concentrations["protein"][edge.labels == Label.BACKGROUND].max() < 0.2


# ----------------------------------------------------------------------------- anatomy

@pytest.mark.parametrize("phenotype", PHENOTYPES)
def test_tubule_geometry(specimens, phenotype):
    spec = specimens[(phenotype, 0)]
    tubs = spec.tubules_in(-1200, 1200, -1200, 1200)
    assert len(tubs) > 30
    lo, hi = DIAMETER_LIMITS_UM
    d = np.array([t.diameter_um for t in tubs])
    assert d.min() >= lo and d.max() <= hi
    # Sertoli-cell-only and sclerotic tubules are smaller than the patient's others
    small = [t.diameter_um for t in tubs if t.state in ("sco", "sclerotic")]
    big = [t.diameter_um for t in tubs if t.state not in ("sco", "sclerotic")]
    if len(small) >= 5 and len(big) >= 5:
        assert np.median(small) < 0.85 * np.median(big)
    ratios = np.array([t.axis_ratio for t in tubs])
    assert ratios.min() >= 1.0 and ratios.max() <= spec.config.axis_ratio_max + 1e-9
    assert len({t.id for t in tubs}) == len(tubs)
    assert all(t.id > 0 for t in tubs)
    # the same records come back for a sub-box (lazy, cached, stable)
    sub = {t.id: t for t in spec.tubules_in(-300, 300, -300, 300)}
    assert all(sub[t.id] == t for t in tubs if t.id in sub)


def test_instance_ids_match_records(tubule_renders):
    for (ph, _), (comp, t) in tubule_renders.items():
        w = comp.window
        r = int((t.cy_um - w.y_um) / w.pixel_um)
        c = int((t.cx_um - w.x_um) / w.pixel_um)
        assert comp.instance[r, c] == t.id, ph  # lumen / epithelium at the centre
        ids = set(np.unique(comp.instance)) - {0}
        assert t.id in ids
        # every pixel of the instance lies inside the tubule's (wall-including) outline
        rr, cc = np.nonzero(comp.instance == t.id)
        x = w.x_um + (cc + 0.5) * w.pixel_um
        y = w.y_um + (rr + 0.5) * w.pixel_um
        assert (t.radius_at(x, y) <= t.b_um + w.pixel_um).all()
        # no wall/epithelium labels outside instances
        inside = np.isin(comp.labels, (Label.COLLAGEN, Label.LUMEN))
        assert not (inside & (comp.instance == 0)).any()


@pytest.mark.parametrize("phenotype", ["normal", "NOA-SPT"])
def test_flattened_faces_are_what_the_render_draws(specimens, phenotype):
    """Where a crowded tubule is flattened against a neighbour, the rendered instances
    follow Tubule.depth_at: pixels a pixel or more inside a flattened outline belong to
    that tubule, no instance pixel lies more than a pixel outside its flattened outline,
    and the band between the two faces is interstitium (no instance)."""
    spec = specimens[(phenotype, 0)]
    tubs = {t.id: t for t in spec.tubules_in(-800, 800, -800, 800)}
    t = next(t for t in tubs.values() if t.contacts and t.axis_ratio < 1.6)
    nx, ny, off = t.contacts[0]
    # the face's foot on the line from the centre, and a window across it
    fx, fy = t.cx_um + nx * off, t.cy_um + ny * off
    w = Window.centered(fx, fy, 80.0, 200)
    comp = spec.render(w)
    xs, ys = np.meshgrid(w.xs(), w.ys())
    p = w.pixel_um
    for u in spec.tubules_in(*w.extent_um):
        d = u.depth_at(xs, ys)
        assert (comp.instance[d > p] == u.id).all(), u.id
        assert (d[comp.instance == u.id] >= -p).all(), u.id
    outside = np.ones(xs.shape, bool)
    for u in spec.tubules_in(*w.extent_um):
        outside &= u.depth_at(xs, ys) < -p
    assert outside.any()  # the band between the faces
    assert (comp.instance[outside] == 0).all()
    assert np.isin(comp.labels[outside], list(EPITHELIUM) + [Label.LUMEN]).mean() < 0.05


def test_instance_ids_stable_across_windows(specimens):
    spec = specimens[("NOA-SCO", 2)]
    t = spec.tubules_in(-100, 100, -100, 100)[0]
    a = spec.render(Window.centered(t.cx_um - 30, t.cy_um, 100.0, 100))
    b = spec.render(Window.centered(t.cx_um + 20, t.cy_um + 10, 100.0, 100))
    assert t.id in set(np.unique(a.instance)) & set(np.unique(b.instance))


def _epithelium_stats(comp, t):
    inst = comp.instance == t.id
    epi = inst & np.isin(comp.labels, EPITHELIUM)
    n = max(int(epi.sum()), 1)
    return {
        "ld": float((epi & (comp.labels == Label.LIPID_DROPLET)).sum()) / n,
        "pd": float((epi & (comp.labels == Label.PROTEIN_DROPLET)).sum()) / n,
        "nuc": float((inst & (comp.labels == Label.NUCLEUS)).sum()) / max(int(inst.sum()), 1),
        # lamina propria area over its mid-line perimeter = mean thickness (um)
        "wall": float((inst & (comp.labels == Label.COLLAGEN)).sum())
        * comp.window.pixel_um**2 / t.perimeter_um(t.wall_um / 2),
        "lumen_dna": float(comp.concentrations["dna"][comp.labels == Label.LUMEN].sum()),
    }


def test_droplet_area_fraction_ordering(state_renders):
    st_ = {k: _epithelium_stats(*v) for k, v in state_renders.items()}
    for s in SEEDS:
        normal, spt, spg = (st_[(ph, s)]["ld"] for ph in ("complete", "arrest_spt",
                                                           "arrest_spg"))
        assert normal > 1.5 * spt > 0, (s, normal, spt)
        assert spt > 3 * spg, (s, spt, spg)
        assert 0.005 < normal < 0.04 and spg < 0.002
    mean = {ph: np.mean([st_[(ph, s)]["ld"] for s in SEEDS]) for ph in STATE_NAMES}
    assert mean["complete"] > mean["hypo"] > mean["arrest_spt"] > mean["arrest_spg"]


def test_droplet_density_follows_composition(state_renders):
    """A tubule's LD density is its drawn composition's CH2 density x the patient factor
    (no per-state brightness factor), and the rendered droplet pixels carry it."""
    for (state, s), (comp, t) in state_renders.items():
        assert math.isclose(sum(t.ld_composition), 1.0, abs_tol=1e-9)
        factor = t.droplet_density / droplet_density(t.ld_composition)
        lo, hi = PATIENT_LOGNORMALS["droplet_density"][2]  # the patient factor's limits
        assert lo - 1e-9 <= factor <= hi + 1e-9 or t.droplet_density == MAX_DROPLET_DENSITY
        m = (comp.labels == Label.LIPID_DROPLET) & (comp.instance == t.id)
        if m.sum() > 20:  # no droplet pixel holds more lipid than a fully in-focus one
            assert comp.concentrations["lipid"][m].max() <= 1.06 * t.droplet_density + 0.05


def test_protein_droplets_only_in_spt(state_renders):
    for (state, s), v in state_renders.items():
        pd = _epithelium_stats(*v)["pd"]
        if state == "arrest_spt":
            assert pd > 5e-4, s
        else:
            assert pd == 0.0, (state, s)
    comp, _ = state_renders[("arrest_spt", 0)]
    m = comp.labels == Label.PROTEIN_DROPLET
    assert comp.concentrations["protein"][m].mean() > 0.5
    assert comp.concentrations["lipid"][m].mean() < 0.1


def test_lamina_propria_thicker_in_impaired_tubules(state_renders):
    """Per tubule the walls overlap (each patient's thickening factor varies); per state
    the impaired tubules' walls are thicker on average."""
    wall = {k: _epithelium_stats(*v)["wall"] for k, v in state_renders.items()}
    normal = [wall[("complete", s)] for s in SEEDS]
    noa = [wall[(st_, s)] for st_ in ("arrest_spt", "arrest_spg", "sco") for s in SEEDS]
    # myoid nuclei and truncated (thin) segments take a little off the labelled area
    assert all(1.5 < w < 12.0 for w in normal), normal
    assert all(5.0 < w < 40.0 for w in noa), noa
    assert np.mean(noa) > 1.6 * np.mean(normal)
    scl = [wall[("sclerotic", s)] for s in SEEDS]
    assert np.mean(scl) > np.mean(noa)


def test_sco_has_no_germ_cells_and_empty_lumen(state_renders):
    nuc = {k: _epithelium_stats(*v)["nuc"] for k, v in state_renders.items()}
    for s in SEEDS:
        assert nuc[("sco", s)] < 0.6 * nuc[("complete", s)]
        assert nuc[("arrest_spg", s)] < nuc[("arrest_spt", s)] < nuc[("complete", s)]
        comp, t = state_renders[("sco", s)]
        lum = (comp.labels == Label.LUMEN) & (comp.instance == t.id)
        assert lum.any()
        # empty: only the anti-aliased rim of a neighbouring Sertoli nucleus may touch it
        assert (comp.concentrations["dna"][lum] > 0.1).sum() == 0
        assert comp.concentrations["water"][lum].mean() > 0.9
    # sperm heads (DNA-dense) sit in a lumen with complete spermatogenesis, never in SCO
    def lumen_dna(state):
        out = 0.0
        for s in SEEDS:
            comp, t = state_renders[(state, s)]
            m = (comp.labels == Label.LUMEN) & (comp.instance == t.id)
            out += float(comp.concentrations["dna"][m].sum())
        return out

    assert lumen_dna("complete") > 10 * lumen_dna("sco")


def test_leydig_cells_hold_pigment_and_droplets(tubule_renders):
    comp, _ = tubule_renders[("NOA-SCO", 0)]
    out = comp.instance == 0
    assert comp.pigment[out].max() > 0.02
    assert comp.pigment[~out].max() < 0.01
    assert (out & (comp.labels == Label.LIPID_DROPLET)).any()
    # interstitial SHG follows the patient's fibrosis (chi2 of the interstitium)
    n_comp, _ = tubule_renders[("normal", 0)]
    inter = lambda c: float(c.chi2[c.labels == Label.INTERSTITIUM].mean())  # noqa: E731
    ratio_cfg = (TestisConfig.draw("NOA-SCO", 0).interstitial_chi2
                 / TestisConfig.draw("normal", 0).interstitial_chi2)
    assert inter(comp) / inter(n_comp) == pytest.approx(ratio_cfg, rel=0.35)
