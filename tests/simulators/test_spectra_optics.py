"""Raman shift, spectra, unmixing matrix and PSFs against the closed forms of
docs/physics-notes.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from simulators.errors import OutOfRangeError, SettingsError
from simulators.optics import Objective, axial_fraction, blur, pixel_integrated_gaussian_kernel
from simulators.spectra import pump_nm_for_shift, raman_shift_cm1, response_matrix, species_spectrum


def test_paper_wavelengths_give_physical_shifts_15_cm1_above_labels():
    # 795.9 / 790.9 nm with 1031 nm Stokes are 2865.1 / 2944.5 cm^-1, not 2850 / 2930
    lip, pro = raman_shift_cm1([795.9, 790.9], 1031.0)
    assert lip == pytest.approx(2865.1, abs=0.05)
    assert pro == pytest.approx(2944.5, abs=0.05)
    assert 14 < lip - 2850 < 16 and 14 < pro - 2930 < 16
    # the Stokes wavelength that would make the labels exact is ~1029.4 nm
    s = 1.0 / (1.0 / 795.9 - 2850e-7)
    assert s == pytest.approx(1029.40, abs=0.01)
    assert pump_nm_for_shift(2850, 1031.0) == pytest.approx(796.86, abs=0.01)


@given(st.floats(700, 990), st.floats(1000, 1100))
def test_shift_wavelength_round_trip(pump, stokes):
    shift = float(raman_shift_cm1(pump, stokes))
    if shift < raman_shift_cm1(990, stokes) or shift > raman_shift_cm1(700, stokes):
        return
    assert pump_nm_for_shift(shift, stokes) == pytest.approx(pump, rel=1e-12)


@given(st.floats(1000, 1040), st.floats(1.0, 50.0))
def test_shift_sensitivity_matches_derivative(pump_shift, dl):
    # dOmega/dlambda_P = -1e7 / lambda_P^2 (cm^-1 per nm)
    lam = float(pump_nm_for_shift(2900, 1031.0))
    h = dl * 1e-4
    num = (raman_shift_cm1(lam + h) - raman_shift_cm1(lam - h)) / (2 * h)
    assert num == pytest.approx(-1e7 / lam**2, rel=1e-5)


def test_pump_out_of_range_message_says_what_is_allowed():
    with pytest.raises(OutOfRangeError, match="reachable shift"):
        pump_nm_for_shift(6000, 1031.0)


def test_response_matrix_matches_physics_reference():
    np.testing.assert_allclose(response_matrix([2850, 2930]), [[0.957, 0.081], [0.584, 0.338]],
                               atol=2e-3)
    np.testing.assert_allclose(response_matrix(raman_shift_cm1([795.9, 790.9])),
                               [[0.693, 0.121], [0.411, 0.301]], atol=2e-3)


@given(st.floats(2700, 3200))
def test_instrument_function_preserves_band_area(center):
    # convolution with a normalised IRF keeps the integral of every spectrum
    x = np.linspace(2000, 4000, 40001)
    bare = species_spectrum("protein", x, irf_fwhm_cm1=0)
    conv = species_spectrum("protein", x, irf_fwhm_cm1=10)
    assert np.trapezoid(conv, x) == pytest.approx(np.trapezoid(bare, x), rel=2e-3)
    assert conv.max() < bare.max()


def test_unknown_species_raises():
    with pytest.raises(SettingsError, match="known"):
        species_spectrum("gold", 2900)


def test_psf_widths_match_physics_table():
    o = Objective()
    lat, ax = o.srs_fwhm_um(795.9, 1031.0)
    assert lat == pytest.approx(0.289, abs=0.002)
    assert ax == pytest.approx(0.738, abs=0.003)
    assert o.shg_fwhm_um(796)[0] == pytest.approx(0.258, abs=0.002)
    assert o.shg_fwhm_um(1031)[0] == pytest.approx(0.335, abs=0.002)
    assert o.ipsf_fwhm_um(1031)[1] == pytest.approx(1.207, abs=0.005)


@pytest.mark.parametrize("na,n", [(1.4, 1.33), (1.33, 1.33), (0.0, 1.33)])
def test_impossible_objective_raises(na, n):
    with pytest.raises(SettingsError):
        Objective(na=na, immersion_index=n)


@given(st.floats(0.05, 2.0), st.floats(0.01, 1.0))
def test_pixel_integrated_kernel_is_normalised_with_right_variance(fwhm, pixel):
    k = pixel_integrated_gaussian_kernel(fwhm, pixel)
    assert k.sum() == pytest.approx(1.0, abs=1e-9)
    x = np.arange(k.size) - k.size // 2
    var = float((k * x * x).sum())
    # Gaussian variance plus the pixel box variance 1/12 (in px^2): Sheppard's correction,
    # valid once the Gaussian spans a pixel or more
    sigma_px = fwhm / (2 * math.sqrt(2 * math.log(2))) / pixel
    assume(sigma_px > 0.8)
    assert var == pytest.approx(sigma_px**2 + 1 / 12, rel=0.03, abs=2e-3)


@given(st.floats(0.1, 1.0))
def test_blur_conserves_mass(fwhm):
    img = np.zeros((64, 64), np.float64)
    img[32, 30] = 1.0
    assert blur(img, fwhm, 0.1).sum() == pytest.approx(1.0, rel=1e-9)


def test_axial_partial_volume_table():
    # docs/physics-notes.md, Optics: peak/bulk for a droplet of diameter d centred on focus
    # (axial part)
    fz = 0.738
    assert axial_fraction(2.0, fz) == pytest.approx(1.0, abs=0.01)
    assert axial_fraction(0.5, fz) < axial_fraction(1.0, fz) < axial_fraction(1.5, fz)
    assert 0.5 < float(axial_fraction(0.5, fz)) < 0.65
