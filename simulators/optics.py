"""Excitation PSFs of the objective for SRS and SHG, and their application to images.

Gaussian approximation of the squared illumination PSF (Zipfel-Williams-Webb;
docs/physics-notes.md, Optics). Lengths in micrometres, wavelengths in nanometres:

.. math::
    \\mathrm{FWHM}_{xy}(\\mathrm{IPSF}^2) = 0.383\\,\\lambda / \\mathrm{NA}^{0.91}, \\qquad
    \\mathrm{FWHM}_{z}(\\mathrm{IPSF}^2) = 0.626\\,\\lambda / (n - \\sqrt{n^2 - \\mathrm{NA}^2})

A one-photon IPSF is sqrt(2) wider; SRS (IPSF_P x IPSF_S) has
``1/FWHM^2 = 1/FWHM_P^2 + 1/FWHM_S^2`` (0.289 um lateral, 0.738 um axial at NA 1.2, water).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import correlate1d
from scipy.special import erf

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_positive, check_range

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclasses.dataclass(frozen=True)
class Objective(ConfigMixin):
    """Microscope objective. Defaults: the paper's 60x water-immersion, NA 1.2.

    ``field_number_mm`` / magnification gives the usable field diameter at the sample (um).
    """

    magnification: float = 60.0
    na: float = 1.2
    immersion_index: float = 1.33
    field_number_mm: float = 26.5

    def __post_init__(self) -> None:
        check_positive("magnification", self.magnification)
        check_range("immersion refractive index", self.immersion_index, 1.0, 2.0)
        check_positive("numerical aperture", self.na)
        if self.na >= self.immersion_index:
            raise SettingsError(
                f"NA {self.na:g} must be below the immersion index n = {self.immersion_index:g}"
            )
        check_positive("field number", self.field_number_mm, "mm")

    @property
    def field_diameter_um(self) -> float:
        """Diameter of the corrected field at the sample (um)."""
        return 1000.0 * self.field_number_mm / self.magnification

    def ipsf2_fwhm_um(self, wavelength_nm: float) -> tuple[float, float]:
        """(lateral, axial) FWHM in um of the squared illumination PSF at ``wavelength_nm``."""
        lam = check_positive("wavelength", wavelength_nm, "nm") / 1000.0
        na, n = self.na, self.immersion_index
        lateral = 0.383 * lam / na**0.91 if na > 0.7 else 0.320 * lam * 2 * math.sqrt(
            math.log(2)) / (math.sqrt(2) * na)
        axial = 0.626 * lam / (n - math.sqrt(n * n - na * na))
        return lateral, axial

    def ipsf_fwhm_um(self, wavelength_nm: float) -> tuple[float, float]:
        """(lateral, axial) FWHM in um of the one-photon illumination PSF."""
        lat, ax = self.ipsf2_fwhm_um(wavelength_nm)
        return math.sqrt(2.0) * lat, math.sqrt(2.0) * ax

    def srs_fwhm_um(self, pump_nm: float, stokes_nm: float) -> tuple[float, float]:
        """(lateral, axial) FWHM in um of the SRS PSF, the product IPSF_P x IPSF_S."""
        p = self.ipsf_fwhm_um(pump_nm)
        s = self.ipsf_fwhm_um(stokes_nm)
        return tuple(1.0 / math.sqrt(1.0 / a**2 + 1.0 / b**2) for a, b in zip(p, s))  # type: ignore[return-value]

    def shg_fwhm_um(self, excitation_nm: float) -> tuple[float, float]:
        """(lateral, axial) FWHM in um of the SHG PSF (IPSF^2 at the exciting wavelength)."""
        return self.ipsf2_fwhm_um(excitation_nm)


def pixel_integrated_gaussian_kernel(fwhm_um: float, pixel_um: float) -> NDArray[np.float64]:
    """1-D Gaussian kernel of FWHM ``fwhm_um`` integrated over pixels of ``pixel_um``.

    Integrating (erf differences) instead of point-sampling keeps the kernel exact even when
    the PSF is narrower than a pixel (0.29 um PSF on 0.30 um pixels). Sums to 1; length odd.
    """
    check_positive("PSF FWHM", fwhm_um, "um")
    check_positive("pixel size", pixel_um, "um")
    sigma_px = fwhm_um * FWHM_TO_SIGMA / pixel_um
    radius = max(1, int(math.ceil(4.0 * sigma_px + 0.5)))
    edges = np.arange(-radius - 0.5, radius + 1.0, 1.0)
    cdf = 0.5 * (1.0 + erf(edges / (math.sqrt(2.0) * sigma_px)))
    k = np.diff(cdf)
    return k / k.sum()


def blur(image: NDArray, fwhm_um: float, pixel_um: float) -> NDArray:
    """Convolve a (..., y, x) image with a lateral Gaussian PSF (separable, edges reflected).

    The caller renders a margin of a few FWHM around its window so the reflected edge does
    not reach the kept pixels.
    """
    k = pixel_integrated_gaussian_kernel(fwhm_um, pixel_um).astype(image.dtype, copy=False)
    out = correlate1d(image, k, axis=-1, mode="reflect")
    return correlate1d(out, k, axis=-2, mode="reflect")


def axial_fraction(thickness_um: NDArray | float, fwhm_z_um: float) -> NDArray:
    """Fraction of a Gaussian axial PSF (FWHM ``fwhm_z_um``) inside a slab centred on focus.

    .. math:: f(h) = \\mathrm{erf}\\big(h / (2\\sqrt{2}\\,\\sigma_z)\\big)

    For a sphere of diameter d centred on the focal plane, evaluating this at the chord
    length ``h = 2 sqrt(r^2 - rho^2)`` and blurring laterally gives exactly the 3-D
    convolution at focus (Gaussian PSF is separable): the partial-volume table of
    docs/physics-notes.md, Optics.
    """
    sigma = fwhm_z_um * FWHM_TO_SIGMA
    h = np.asarray(thickness_um, dtype=float)
    return erf(np.maximum(h, 0.0) / (2.0 * math.sqrt(2.0) * sigma))


def slab_fraction(z_um: NDArray | float, lower_um: NDArray | float, upper_um: NDArray | float,
                  fwhm_z_um: float) -> NDArray[np.float64]:
    """Fraction of a Gaussian axial PSF (FWHM ``fwhm_z_um``) centred at height ``z_um`` that
    lies inside the slab ``lower_um <= z <= upper_um`` (all um, broadcasting):

    .. math:: w = \\tfrac12\\left[\\mathrm{erf}\\frac{u - z}{\\sqrt2\\,\\sigma_z}
              - \\mathrm{erf}\\frac{l - z}{\\sqrt2\\,\\sigma_z}\\right]

    In [0, 1]; 1/2 at a surface of a thick slab; for a slab centred on focus it is
    :func:`axial_fraction` of the slab's thickness; for a slab much thinner than the PSF it
    tends to ``(u - l) / (sqrt(2 pi) sigma_z) exp(-z^2 / 2 sigma_z^2)``
    (docs/physics-notes.md, Focus and section thickness).
    """
    s = math.sqrt(2.0) * check_positive("axial FWHM", fwhm_z_um, "um") * FWHM_TO_SIGMA
    z = np.asarray(z_um, dtype=float)
    lo = np.asarray(lower_um, dtype=float)
    up = np.maximum(np.asarray(upper_um, dtype=float), lo)
    return np.clip(0.5 * (erf((up - z) / s) - erf((lo - z) / s)), 0.0, 1.0)


#: Axial FWHM (um) of the SRS PSF of the default objective at the paper's lipid channel
#: (pump 795.9 nm, Stokes 1031.0 nm): the partial volume of droplets, beads and granules.
SRS_AXIAL_FWHM_UM: float = float(Objective().srs_fwhm_um(795.9, 1031.0)[1])
