"""CH-stretch Raman spectra (2800-3100 cm^-1, plus the OH band) and the Raman shift.

Species spectra are sums of Lorentzian bands (peak-normalised, ``Gamma`` = FWHM in cm^-1),
scaled per unit mass relative to the lipid 2853 cm^-1 band (= 1), and convolved with the
Gaussian instrument function of the ps pump/Stokes cross-correlation (default 8 cm^-1 FWHM).
Band table: docs/physics-notes.md, Raman shift and channels (positions sourced,
widths/amplitudes estimates).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import voigt_profile

from simulators.errors import OutOfRangeError, SettingsError, check_positive

#: Species with a Raman spectrum in this module.
SPECIES: tuple[str, ...] = ("lipid", "protein", "collagen", "dna", "water")

PUMP_RANGE_NM = (700.0, 990.0)
STOKES_NM_DEFAULT = 1031.0
#: The SRASH paper's pump wavelengths and their nominal labels (cm^-1).
PAPER_PUMP_NM = {2850: 795.9, 2930: 790.9}
DEFAULT_IRF_FWHM_CM1 = 8.0
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclasses.dataclass(frozen=True)
class Band:
    """One vibrational band: centre and FWHM in cm^-1, peak amplitude (relative).

    ``shape`` is ``"lorentz"`` (Raman band) or ``"gauss"`` (broad OH stretch of water).
    """

    center_cm1: float
    fwhm_cm1: float
    amplitude: float
    shape: str = "lorentz"


#: species -> (per-mass scale vs lipid 2853 band, bands)
SPECIES_BANDS: Mapping[str, tuple[float, tuple[Band, ...]]] = {
    "lipid": (1.0, (Band(2853, 20, 1.00), Band(2873, 16, 0.25), Band(2897, 30, 0.55),
                    Band(2930, 30, 0.45), Band(2958, 22, 0.25), Band(3008, 20, 0.12))),
    "protein": (0.35, (Band(2852, 25, 0.12), Band(2875, 25, 0.35), Band(2935, 35, 1.00),
                       Band(2978, 30, 0.45), Band(3062, 30, 0.07))),
    "collagen": (0.30, (Band(2880, 30, 0.35), Band(2940, 40, 1.00), Band(2980, 30, 0.50),
                        Band(3060, 30, 0.05))),
    "dna": (0.12, (Band(2890, 40, 0.40), Band(2960, 40, 1.00), Band(3070, 40, 0.30))),
    "water": (0.10, (Band(3250, 250, 0.80, "gauss"), Band(3420, 230, 1.00, "gauss"))),
}


def raman_shift_cm1(pump_nm: ArrayLike, stokes_nm: ArrayLike = STOKES_NM_DEFAULT) -> NDArray:
    """Raman shift probed by a pump/Stokes pair.

    .. math::
        \\Omega = 10^7/\\lambda_P - 10^7/\\lambda_S
        \\quad [\\mathrm{cm^{-1}}, \\lambda\\ \\mathrm{in\\ nm}]

    With the paper's Stokes at 1031.0 nm, 795.9 / 790.9 nm give 2865.1 / 2944.5 cm^-1: the
    paper's labels 2850 / 2930 are ~15 cm^-1 below the physical shift
    (docs/physics-notes.md, Raman shift and channels).
    """
    p = np.asarray(pump_nm, dtype=float)
    s = np.asarray(stokes_nm, dtype=float)
    if np.any(p <= 0) or np.any(s <= 0):
        raise SettingsError("wavelengths must be > 0 nm")
    return 1e7 / p - 1e7 / s


def pump_nm_for_shift(shift_cm1: ArrayLike, stokes_nm: float = STOKES_NM_DEFAULT) -> NDArray:
    """Pump wavelength (nm) that probes ``shift_cm1`` with the given Stokes wavelength.

    .. math:: \\lambda_P = 10^7 / (\\Omega + 10^7/\\lambda_S)

    Raises :class:`OutOfRangeError` when the result leaves the pump range 700-990 nm.
    """
    shift = np.asarray(shift_cm1, dtype=float)
    pump = 1e7 / (shift + 1e7 / float(stokes_nm))
    lo, hi = PUMP_RANGE_NM
    bad = ~((pump >= lo) & (pump <= hi))
    if np.any(bad):
        s = float(np.atleast_1d(shift)[np.atleast_1d(bad)][0])
        p = float(np.atleast_1d(pump)[np.atleast_1d(bad)][0])
        smin = float(raman_shift_cm1(hi, stokes_nm))
        smax = float(raman_shift_cm1(lo, stokes_nm))
        raise OutOfRangeError(
            f"Raman shift {s:g} cm^-1 needs pump {p:.1f} nm; with Stokes {stokes_nm:g} nm the"
            " reachable shift", s, round(smin, 1), round(smax, 1), "cm^-1")
    return pump


def _band_profile(shift: NDArray, band: Band, irf_fwhm_cm1: float) -> NDArray:
    sigma = irf_fwhm_cm1 * _FWHM_TO_SIGMA
    x = shift - band.center_cm1
    if band.shape == "gauss":
        # Gaussian band convolved with the Gaussian IRF stays Gaussian; peak amplitude kept
        # by area conservation.
        sb = band.fwhm_cm1 * _FWHM_TO_SIGMA
        st = np.hypot(sb, sigma)
        return band.amplitude * (sb / st) * np.exp(-0.5 * (x / st) ** 2)
    gamma = band.fwhm_cm1 / 2.0
    # peak-1 Lorentzian has area pi*gamma; voigt_profile is area-normalised
    if sigma == 0:
        return band.amplitude * gamma**2 / (x**2 + gamma**2)
    return band.amplitude * np.pi * gamma * voigt_profile(x, sigma, gamma)


def species_spectrum(
    species: str,
    shift_cm1: ArrayLike,
    *,
    irf_fwhm_cm1: float = DEFAULT_IRF_FWHM_CM1,
) -> NDArray:
    """SRS response per unit mass of ``species`` at Raman shift(s) ``shift_cm1``.

    .. math:: \\tilde\\sigma_i(\\Omega) = s_i \\sum_j A_j\\,[L_j \\otimes \\mathrm{IRF}](\\Omega)

    Units: relative to the lipid 2853 cm^-1 band peak (= 1 without the IRF).
    ``irf_fwhm_cm1=0`` gives the bare spectrum. Returns an array shaped like ``shift_cm1``.
    """
    if species not in SPECIES_BANDS:
        raise SettingsError(f"unknown species {species!r}; known: {', '.join(SPECIES)}")
    check_positive("instrument line width", irf_fwhm_cm1, "cm^-1", allow_zero=True)
    shift = np.asarray(shift_cm1, dtype=float)
    scale, bands = SPECIES_BANDS[species]
    out = np.zeros_like(shift)
    for band in bands:
        out = out + _band_profile(shift, band, irf_fwhm_cm1)
    return scale * out


def response_matrix(
    shifts_cm1: ArrayLike,
    species: tuple[str, ...] = ("lipid", "protein"),
    *,
    irf_fwhm_cm1: float = DEFAULT_IRF_FWHM_CM1,
) -> NDArray:
    """Matrix ``M[k, j] = sigma_j(Omega_k)``: channel k's response to unit mass of species j.

    With the physical shifts 2865.1 / 2944.5 cm^-1 this is
    ``[[0.693, 0.121], [0.411, 0.301]]``; at the nominal 2850 / 2930,
    ``[[0.957, 0.081], [0.584, 0.338]]``.
    """
    shifts = np.atleast_1d(np.asarray(shifts_cm1, dtype=float))
    return np.stack(
        [species_spectrum(s, shifts, irf_fwhm_cm1=irf_fwhm_cm1) for s in species], axis=1
    )
