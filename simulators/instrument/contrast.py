"""Stage 2 of the forward model: concentration maps -> SRS modulation and SHG photons, each
blurred by its point-spread function (docs/physics-notes.md, SRS signal chain and SHG), and
the SHG of aligned collagen as a function of the laser polarisation (SHG polarisation).

Both act on the padded window of stage 1 (:mod:`simulators.instrument.render`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from simulators.instrument.response import ResponseConfig
from simulators.optics import Objective, blur
from simulators.specimens.base import Composition
from simulators.spectra import SPECIES, species_spectrum

_F32 = np.float32


def srs_modulation(comp: Composition, edges: NDArray[np.float32], shift_cm1: float,
                   response: ResponseConfig, *, lockin_phase_deg: float, psf_fwhm_um: float,
                   pixel_um: float) -> NDArray[np.float32]:
    """In-phase pump modulation depth dI/I (pp) at the reference Stokes power, after the
    SRS PSF (lateral FWHM ``psf_fwhm_um``), float32.

    .. math:: G = K \\left[\\sum_i c_i \\tilde\\sigma_i(\\Omega) + \\mathrm{XPM}
              + \\rho_{TA} \\cos\\Delta\\phi_{TA}\\, p\\right] \\otimes \\mathrm{PSF}_{SRS}

    ``edges``: the XPM edge map of ``comp``; ``lockin_phase_deg``: the lock-in's detection
    phase (the transient-absorption term has its own phase).
    """
    r = response
    acc = np.zeros(comp.labels.shape, np.float32)
    tmp = np.empty(comp.labels.shape, np.float32)

    def add(w: float, m: NDArray) -> None:
        """acc += float32(w) m (float32 maps through one scratch array, no copies)."""
        if m.dtype == np.float32 and m.shape == acc.shape:
            np.add(acc, np.multiply(np.float32(w), m, out=tmp), out=acc)
        else:
            np.add(acc, np.float32(w) * m, out=acc)

    for s in SPECIES:
        w = float(species_spectrum(s, shift_cm1, irf_fwhm_cm1=r.irf_fwhm_cm1))
        if w:
            add(w, comp.concentrations[s])
    add(r.xpm_rel, edges)
    phase_ta = math.radians(r.pigment_phase_deg - lockin_phase_deg)
    add(r.pigment_rel * math.cos(phase_ta), comp.pigment)
    if comp.heme.any():
        phase_hb = math.radians(r.heme_phase_deg - lockin_phase_deg)
        add(r.heme_rel * math.cos(phase_hb), comp.heme)
    return (np.float32(r.srs_k) * blur(acc, psf_fwhm_um, pixel_um)).astype(np.float32)


def shg_sources(response: ResponseConfig, *, pump_nm: float, stokes_nm: float,
                pump_mw: float, stokes_mw: float, stokes_mean_square: float
                ) -> list[tuple[float, float]]:
    """(wavelength nm, power factor) of each beam whose SHG the emission filter passes.

    Power factor: ``(P / P_ref)^2``; for the (modulated) Stokes beam times the EOM's
    mean-square factor ``stokes_mean_square`` and ``(lambda_pump / lambda_Stokes)^2``.
    """
    r = response
    sources = []
    if r.shg_source in ("pump", "both"):
        sources.append((pump_nm, (pump_mw / r.ref_pump_mw) ** 2))
    if r.shg_source in ("stokes", "both"):
        lam_ratio = (pump_nm / stokes_nm) ** 2
        sources.append((stokes_nm, (stokes_mw / r.ref_pump_mw) ** 2
                        * stokes_mean_square * lam_ratio))
    return sources


def autofluorescence_photons(pigment: NDArray[np.float32], photons_per_pass: float, *,
                             psf_fwhm_um: float, pixel_um: float) -> NDArray[np.float32]:
    """Mean two-photon autofluorescence photons of pigment (lipofuscin) that pass the SHG
    filter, per pixel per pass: incoherent, ``N = N_AF p (x) PSF_2P`` with the two-photon
    PSF (IPSF^2, FWHM ``psf_fwhm_um``) and ``photons_per_pass`` per unit pigment ``p`` at
    the current pump power, pulse, repetition rate and dwell (docs/physics-notes.md,
    Acquisition variability).
    """
    return (np.float32(photons_per_pass) * blur(pigment, psf_fwhm_um, pixel_um)).astype(
        np.float32, copy=False)


def orientation_factor(alpha_rad: ArrayLike, rho: float) -> NDArray[np.float64]:
    """SHG intensity of an in-plane fibre under linear polarisation at ``alpha_rad`` to its
    axis, relative to ``chi_zxx^2`` (unnormalised; dimensionless).

    Fibrils of C_inf(v) symmetry with Kleinman symmetry (``chi_xzx = chi_zxx``), field
    ``E = (cos a, sin a)`` in the fibre frame (z along the fibre):
    ``P_z = chi_zzz cos^2 a + chi_zxx sin^2 a``, ``P_x = 2 chi_zxx sin a cos a``, so

    .. math:: f(\\alpha) = (\\rho \\cos^2\\alpha + \\sin^2\\alpha)^2 + \\sin^2 2\\alpha,
              \\qquad \\rho = \\chi_{zzz} / \\chi_{zxx}

    ``f(0) = rho^2``, ``f(pi/2) = 1``; mean over ``alpha``: :func:`orientation_mean`.
    """
    a = np.asarray(alpha_rad, np.float64)
    c, s = np.cos(a) ** 2, np.sin(a) ** 2
    return (rho * c + s) ** 2 + np.sin(2.0 * a) ** 2


def orientation_mean(rho: float) -> float:
    """Mean of :func:`orientation_factor` over the angle: ``(3 rho^2 + 2 rho + 7) / 8``."""
    return (3.0 * rho * rho + 2.0 * rho + 7.0) / 8.0


def circular_factor(rho: float) -> float:
    """SHG of an in-plane fibre under circular polarisation (any fibre direction), in units
    of :func:`orientation_mean`: with ``E = (1, i) / sqrt 2``,
    ``|P|^2 = ((rho - 1) / 2)^2 + 1``, hence ``2 ((rho - 1)^2 + 4) / (3 rho^2 + 2 rho + 7)``
    (0.56 at rho 1.3, 0.40 at rho 2.6: the chi_zzz and chi_zxx terms partly cancel)."""
    return (0.25 * (rho - 1.0) ** 2 + 1.0) / orientation_mean(rho)


def polarisation_amplitude(fibre_angle: NDArray[np.float32], rho: float, polarization: str,
                           polarization_deg: float) -> NDArray[np.float32]:
    """Amplitude factor ``sqrt(f / <f>)`` on ``chi2`` for the laser polarisation (float32
    map of ``fibre_angle``'s shape).

    ``fibre_angle``: in-plane fibre direction (rad, image frame; NaN = no preferred
    direction: factor 1); ``rho``: ``chi_zzz / chi_zxx``; ``polarization``: ``linear`` at
    ``polarization_deg`` (degrees from +x towards +y, the scan frame) or ``circular``
    (:func:`circular_factor`, independent of the fibre direction). Normalised so the mean
    of ``f`` over fibre directions under linear polarisation is 1: ``chi2`` keeps its
    meaning of orientation-averaged brightness. Applied to the amplitude before the IPSF
    blur, i.e. the orientation is taken as constant over the PSF (it varies on the scale
    of a fibre bundle, >= 1 um, against a 0.26 um SHG PSF).
    """
    if polarization == "circular":
        f = np.full(np.shape(fibre_angle), math.sqrt(circular_factor(rho)), _F32)
        np.copyto(f, _F32(1.0), where=np.isnan(fibre_angle))
        return f
    # f as a polynomial in x = cos 2 (alpha - theta): a0 + a1 x + a2 x^2, over <f>
    m = orientation_mean(rho)
    a0 = ((rho + 1.0) ** 2 / 4.0 + 1.0) / m
    a1 = (rho * rho - 1.0) / 2.0 / m
    a2 = ((rho - 1.0) ** 2 / 4.0 - 1.0) / m
    x = np.subtract(fibre_angle, np.float32(math.radians(polarization_deg)), dtype=_F32)
    x *= 2.0
    np.cos(x, out=x)
    f = np.multiply(x, _F32(a2), dtype=_F32)
    f += _F32(a1)
    f *= x
    f += _F32(a0)
    np.sqrt(f, out=f)
    np.copyto(f, _F32(1.0), where=np.isnan(f))  # no preferred direction
    return f


def shg_photons(chi2: NDArray[np.float32], sources: Sequence[tuple[float, float]], *,
                photons_per_pass: float, objective: Objective, pixel_um: float
                ) -> NDArray[np.float32]:
    """Mean SHG photons at the PMT cathode per pixel per pass.

    Coherent: amplitude ``chi2 (x) IPSF`` squared, so a point object has the IPSF^2 width
    and dense fibrils add quadratically: ``N = N_dense f (chi2 (x) IPSF)^2`` summed over
    ``sources`` (wavelength, power factor f). ``photons_per_pass``: ``N_dense`` at the
    current pulse, repetition rate and dwell.
    """
    if not chi2.any():
        return np.zeros(chi2.shape, np.float32)
    total = np.zeros(chi2.shape, np.float32)
    for lam, pf in sources:
        if pf == 0:
            continue
        amp = blur(chi2, objective.ipsf_fwhm_um(lam)[0], pixel_um)
        total += np.float32(photons_per_pass * pf) * amp * amp
    return total
