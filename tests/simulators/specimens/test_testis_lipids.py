"""Lipid-droplet composition: CH2 densities from chemistry, composition by tubule state,
the epithelial-cycle factor on LD area."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.specimens.testis.config import STATE_NAMES, STATES
from simulators.specimens.testis.lipids import (
    CLASS_NAMES,
    COMPOSITION_MEANS,
    CYCLE_AMPLITUDE,
    LIPID_CLASSES,
    cycle_factor,
    draw_composition,
    droplet_density,
    relative_ch2_density,
)


def test_ch2_density_from_formula():
    # triolein is the reference; CH2 density = CH2 per molecule x mass density / molar mass
    assert relative_ch2_density("tg_mono") == 1.0
    tp, to = LIPID_CLASSES["tg_sat"], LIPID_CLASSES["tg_mono"]
    assert relative_ch2_density("tg_sat") == (42 * tp.density_g_ml / tp.molar_mass) / (
        42 * to.density_g_ml / to.molar_mass)
    # polyunsaturated chains carry fewer CH2: dimmer per volume; saturated brighter
    assert (relative_ch2_density("tg_pufa") < relative_ch2_density("ce")
            < relative_ch2_density("tg_mono") < relative_ch2_density("tg_sat"))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4).filter(lambda v: sum(v) > 0.01))
def test_density_is_the_composition_average(w):
    f = np.asarray(w) / sum(w)
    d = droplet_density(f)
    ds = [relative_ch2_density(k) for k in CLASS_NAMES]
    assert min(ds) - 1e-12 <= d <= max(ds) + 1e-12
    # linear in the composition
    assert math.isclose(d, float(np.dot(f, ds)), rel_tol=1e-12)


def test_states_without_spermatids_have_less_pufa_and_denser_droplets():
    pufa = CLASS_NAMES.index("tg_pufa")
    with_sp = [s for s in STATE_NAMES if "elongated_spermatids" in STATES[s].germ]
    without = [s for s in STATE_NAMES if s not in with_sp]
    assert max(COMPOSITION_MEANS[s][pufa] for s in without) < min(
        COMPOSITION_MEANS[s][pufa] for s in with_sp)
    assert max(droplet_density(COMPOSITION_MEANS[s]) for s in with_sp) < min(
        droplet_density(COMPOSITION_MEANS[s]) for s in without)
    for s in STATE_NAMES:
        assert math.isclose(sum(COMPOSITION_MEANS[s]), 1.0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_drawn_composition_sums_to_one(seed):
    rng = np.random.default_rng(seed)
    for s in STATE_NAMES:
        f = draw_composition(s, rng)
        assert len(f) == len(CLASS_NAMES) and min(f) >= 0 and math.isclose(sum(f), 1.0)


def test_cycle_factor_bounds_and_mean():
    rng = np.random.default_rng(3)
    f = np.array([cycle_factor(True, rng) for _ in range(4000)])
    assert f.min() >= 1 - CYCLE_AMPLITUDE and f.max() <= 1 + CYCLE_AMPLITUDE
    assert abs(f.mean() - 1.0) < 0.02  # cos of a uniform phase averages out
    # a profile spanning part of the cycle averages it: never the full single-stage swing
    assert f.max() < 1 + CYCLE_AMPLITUDE * math.sin(math.pi / 3) / (math.pi / 3) + 1e-9
    assert all(cycle_factor(False, rng) == 1.0 for _ in range(10))
