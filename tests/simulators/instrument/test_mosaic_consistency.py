"""Overlapping fields of a mosaic show the same tissue: agreement up to detector noise."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.instrument import AcquisitionConfig, build_simulator
from simulators.parts.scanner import ScannerConfig
from simulators.specimens import make_specimen

SPEC = make_specimen("testis", 11, phenotype="normal")
X0, X1, Y0, Y1 = SPEC.extent_um
CX, CY = (X0 + X1) / 2, (Y0 + Y1) / 2


# one focus for every field: each field's own focus error and the slide tilt make
# overlapping fields differ where the focus nears a surface of the section (physics of
# tests/simulators/instrument/test_focus.py), which is not what this module checks
ONE_FOCUS = dataclasses.replace(AcquisitionConfig(), focus_offset_um=0.0, slide_tilt_deg=0.0)


def sim_at(x, y, pixels=160, fov=48.0):
    # the fields of one mosaic are imaged in one session (same beam overlap, SHG yield)
    return build_simulator(SPEC, pixels=pixels, fov_um=fov, averages=3, x_um=x, y_um=y,
                           scanner=ScannerConfig(registration_jitter_px=0.0), session_seed=0,
                           acquisition=ONE_FOCUS)


@settings(max_examples=8)
@given(st.integers(10, 80), st.integers(-60, 60))
def test_overlapping_fields_agree_up_to_noise(dc, dr):
    p = 48.0 / 160
    a = sim_at(CX, CY)
    b = sim_at(CX + dc * p, CY + dr * p)
    fa = a.field(np.random.default_rng(1), with_shg=False, shifts_cm1=[2850])
    fb = b.field(np.random.default_rng(2), with_shg=False, shifts_cm1=[2850])
    # flat-field (vignetting) and offset removed, as a stitcher would
    off = a.lockin.config.output_offset_v
    va = (fa.raw[0] - off) / a.scanner.vignetting()
    vb = (fb.raw[0] - off) / b.scanner.vignetting()
    # overlap: a[r, c] == b[r - dr, c - dc]; skip b's first 3 columns (lock-in state at line
    # start depends on the previous line, which differs between the fields)
    ra = slice(max(0, dr), 160 + min(0, dr))
    rb = slice(max(0, -dr), 160 - max(0, dr))
    ca = slice(dc + 3, 160)
    cb = slice(3, 160 - dc)
    diff = va[ra, ca] - vb[rb, cb]
    li, pd = a.lockin, a.photodiode
    sigma = (10 / li.sensitivity_v * li.config.frontend_gain_v_per_a
             * pd.noise_density_a_per_rthz(40.0) * math.sqrt(li.enbw_hz) / math.sqrt(3))
    # pump power drift differs between the two acquisitions (0.5 % per frame): allow a
    # proportional term; otherwise the difference is pure noise with std sqrt(2) sigma
    scale = float(np.mean(va[ra, ca])) + 1e-9
    # the lock-in filter correlates neighbouring pixels along x: count half as many
    # independent samples when bounding the mean difference (5 standard errors)
    n_eff = diff.size / 2
    assert abs(float(diff.mean())) < (4 * 0.005 * abs(scale)
                                      + 5 * float(diff.std()) / math.sqrt(n_eff))
    assert float(diff.std()) < 1.25 * math.sqrt(2) * sigma + 0.02 * float(np.std(va[ra, ca]))


def test_ground_truth_of_overlapping_windows_is_identical():
    a = sim_at(CX, CY)
    b = sim_at(CX + 30 * 0.3, CY - 12 * 0.3)
    ta = a.field(np.random.default_rng(0), shifts_cm1=[2850]).truth.labels
    tb = b.field(np.random.default_rng(0), shifts_cm1=[2850]).truth.labels
    np.testing.assert_array_equal(ta[:148, 30:], tb[12:, :130])


def test_same_specimen_and_noise_seeds_reproduce_a_testis_field_exactly():
    f1 = sim_at(CX, CY).field(np.random.default_rng(5))
    f2 = sim_at(CX, CY).field(np.random.default_rng(5))
    np.testing.assert_array_equal(f1.raw, f2.raw)
    other = make_specimen("testis", 12, phenotype="normal")
    f3 = build_simulator(other, pixels=160, fov_um=48.0, x_um=CX, y_um=CY).field(
        np.random.default_rng(5))
    assert not np.array_equal(f1.truth.labels, f3.truth.labels) or not np.array_equal(
        f1.raw, f3.raw)
