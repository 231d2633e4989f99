"""Stage 2 of the forward model: concentration maps -> SRS modulation and SHG photons, each
blurred by its point-spread function (docs/physics-notes.md, SRS signal chain and SHG).

Both act on the padded window of stage 1 (:mod:`simulators.instrument.render`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.typing import NDArray

from simulators.instrument.response import ResponseConfig
from simulators.optics import Objective, blur
from simulators.specimens.base import Composition
from simulators.spectra import SPECIES, species_spectrum


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
    for s in SPECIES:
        w = float(species_spectrum(s, shift_cm1, irf_fwhm_cm1=r.irf_fwhm_cm1))
        if w:
            acc += np.float32(w) * comp.concentrations[s]
    acc += np.float32(r.xpm_rel) * edges
    phase_ta = math.radians(r.pigment_phase_deg - lockin_phase_deg)
    acc += np.float32(r.pigment_rel * math.cos(phase_ta)) * comp.pigment
    if comp.heme.any():
        phase_hb = math.radians(r.heme_phase_deg - lockin_phase_deg)
        acc += np.float32(r.heme_rel * math.cos(phase_hb)) * comp.heme
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
