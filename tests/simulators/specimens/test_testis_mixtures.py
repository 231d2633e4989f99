"""Testis patients as mixtures: state weights, overlapping patient distributions, artefacts
independent of the phenotype, per-state parameters within physical limits."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from simulators.specimens.base import Window
from simulators.specimens.testis import PHENOTYPES, TestisConfig, TestisSection
from simulators.specimens.testis.config import (
    DIAMETER_LIMITS_UM,
    DOMINANT_STATE,
    MAX_DROPLET_DENSITY,
    MIXTURE_MEANS,
    PATIENT_LOGNORMALS,
    STATE_NAMES,
    STATES,
    WALL_LIMITS_UM,
)

seeds = st.integers(0, 2**31 - 1)
phenotypes = st.sampled_from(PHENOTYPES)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, phenotype=phenotypes)
def test_weights_sum_to_one_reproducible_and_dominant(seed, phenotype):
    a = TestisConfig.draw(phenotype, seed)
    w = np.array(a.state_weights)
    assert w.shape == (len(STATE_NAMES),) and (w >= 0).all()
    assert abs(w.sum() - 1.0) < 1e-9
    assert TestisConfig.draw(phenotype, seed).state_weights == a.state_weights
    # the phenotype names the patient's dominant pattern
    assert np.argmax(w) == STATE_NAMES.index(DOMINANT_STATE[phenotype])


def test_mean_weights_follow_the_table_and_complete_foci_vary():
    for ph in PHENOTYPES:
        w = np.array([TestisConfig.draw(ph, s).state_weights for s in range(300)])
        # the swap that makes the dominant state largest shifts means a little
        assert np.abs(w.mean(axis=0) - np.array(MIXTURE_MEANS[ph])).max() < 0.08, ph
        if ph != "normal":
            # foci of complete spermatogenesis in some NOA patients, not in all
            frac = float(np.mean(w[:, 0] > 0.01))
            assert 0.2 < frac < 0.9, (ph, frac)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), phenotype=phenotypes)
def test_tubule_states_follow_the_patient_weights(seed, phenotype):
    spec = TestisSection(seed, phenotype)
    g = spec.geometry
    # state draws of 24 blocks of packing candidates (tissue or not: the draw comes first)
    st = np.concatenate([g._block(bi, bj)[:, 5] for bi in range(-3, 3) for bj in range(-2, 2)])
    n = st.size
    counts = np.bincount(st.astype(int), minlength=len(STATE_NAMES)).astype(float)
    w = np.array(spec.config.state_weights)
    ok = w > 0
    expected = w[ok] * n
    chi2 = stats.chisquare(counts[ok], expected * counts[ok].sum() / expected.sum())
    assert chi2.pvalue > 1e-4, (counts, w)
    assert counts[~ok].sum() == 0
    # and the tubules of the section carry those states
    tubs = spec.tubules_in(-1500, 1500, -1500, 1500)
    seen = {t.state for t in tubs}
    assert seen <= {s for s, v in zip(STATE_NAMES, w) if v > 0}


def test_patient_distributions_overlap_between_normal_and_noa():
    """200 patients per class: the ranges of every patient parameter of normal and NOA
    overlap (no class is a block of constants), while the medians keep their order."""
    pats = {ph: [TestisConfig.draw(ph, s) for s in range(200)] for ph in PHENOTYPES}
    names = [k for k in PATIENT_LOGNORMALS if k != "pitch_excess"] + ["pitch_factor"]
    for name in names:
        nv = np.array([getattr(c, name) for c in pats["normal"]])
        for ph in PHENOTYPES[1:]:
            av = np.array([getattr(c, name) for c in pats[ph]])
            assert max(nv.min(), av.min()) < min(nv.max(), av.max()), (name, ph)
    # tubule walls: the thickest normal walls reach into the NOA range
    def walls(ph):
        out = []
        for s in range(200):
            spec = TestisSection(s, ph)
            t = spec.geometry.tubule(0, 0) or spec.geometry.tubule(1, 0)
            if t is not None:
                out.append(t.wall_um)
        return np.array(out)

    wn, wa = walls("normal"), np.concatenate([walls(ph) for ph in PHENOTYPES[1:]])
    assert wn.max() > np.percentile(wa, 10)
    assert np.median(wa) > 1.5 * np.median(wn)
    fib = {ph: np.median([c.interstitial_chi2 for c in pats[ph]]) for ph in PHENOTYPES}
    assert fib["NOA-SCO"] > 1.5 * fib["normal"]


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 100_000))
def test_same_seed_in_two_phenotypes_gives_different_tears(seed):
    a, b = TestisConfig.draw("normal", seed), TestisConfig.draw("NOA-SPT", seed)
    assert a.artefact_seed != b.artefact_seed
    sa, sb = TestisSection(seed, "normal"), TestisSection(seed, "NOA-SPT")
    x, y = np.meshgrid(np.linspace(-2500, 2500, 60), np.linspace(-2200, 2200, 60))
    ta, tb = sa.tissue_at(x, y), sb.tissue_at(x, y)
    assert (ta != tb).mean() > 0.01
    # the artefacts do not depend on the histology: same artefact seed, same tears
    c = a.replace(artefact_seed=b.artefact_seed, hole_fraction=b.hole_fraction,
                  hole_scale_um=b.hole_scale_um, section_radii_um=b.section_radii_um,
                  boundary_roughness=b.boundary_roughness)
    np.testing.assert_array_equal(TestisSection(seed, "normal", c).tissue_at(x, y), tb)


def test_every_state_parameter_within_physical_limits():
    for name, s in STATES.items():
        for key, (lo, hi) in s.ranges().items():
            assert 0.0 <= lo <= hi, (name, key)
        for key in ("wall_variation", "wall_gap_fraction", "wall_collagen", "wall_chi2",
                    "lumen_irregularity", "droplet_area_fraction",
                    "protein_droplet_area_fraction"):
            assert getattr(s, key)[1] <= 1.0, (name, key)
        assert WALL_LIMITS_UM[0] <= s.wall_um[0] and s.wall_um[1] <= WALL_LIMITS_UM[1]
        assert 0.3 <= s.droplet_diameter_um[0] and s.droplet_diameter_um[1] <= 2.0
        assert 0.0 <= s.lumen_min_um <= s.lumen_max_um <= 100.0
        assert set(s.germ) <= set(STATES["complete"].germ)
    # drawn tubules of many patients stay within the physical limits
    for ph in PHENOTYPES:
        for seed in range(12):
            spec = TestisSection(seed, ph)
            for t in spec.tubules_in(-700, 700, -700, 700):
                assert WALL_LIMITS_UM[0] <= t.wall_um <= WALL_LIMITS_UM[1]
                assert t.wall_um < t.b_um
                assert DIAMETER_LIMITS_UM[0] - 1e-9 <= t.diameter_um <= DIAMETER_LIMITS_UM[1]
                assert 0 < t.droplet_density <= MAX_DROPLET_DENSITY
                assert 0.0 <= t.lumen_um < t.b_um - t.wall_um


def test_sclerotic_and_mixed_tubules_render_in_range():
    """A field holding several states renders finite maps within the lock-in's range."""
    spec = TestisSection(5, "NOA-SPG")
    comp = spec.render(Window.centered(0.0, 0.0, 600.0, 500))
    states = {t.state for t in spec.tubules_in(-300, 300, -300, 300)}
    assert len(states) >= 2
    for v in (*comp.concentrations.values(), comp.chi2):
        assert np.isfinite(v).all() and v.min() >= 0.0
    assert comp.chi2.max() <= 1.0 and comp.concentrations["lipid"].max() <= 1.5
