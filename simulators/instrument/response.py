"""How the specimen answers the beams: the calibratable response of the forward model."""

from __future__ import annotations

import dataclasses

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_positive, check_range

#: Laser polarisation states at the sample (:attr:`ResponseConfig.polarization`).
POLARIZATIONS: tuple[str, ...] = ("linear", "circular")


@dataclasses.dataclass(frozen=True)
class ResponseConfig(ConfigMixin):
    """Calibratable defaults of the specimen's answer (docs/physics-notes.md, SRS and SHG).

    ``srs_k``: dI/I of pure triglyceride at the 2853 cm^-1 peak at the reference powers
    ``ref_pump_mw`` / ``ref_stokes_mw``. ``xpm_rel``: cross-phase-modulation edge contrast
    relative to ``srs_k`` (non-resonant, at refractive-index edges). ``pigment_rel`` and
    ``pigment_phase_deg``: transient absorption of lipofuscin (wavenumber independent,
    its own lock-in phase). ``heme_rel`` and ``heme_phase_deg``: pump-probe (transient
    absorption / two-photon absorption) of haemoglobin inside a red blood cell (the
    composition's ``heme`` map), its own phase. ``shg_photons_dense``: SHG photons at the
    PMT cathode per 10 us pixel per pass from dense aligned collagen (chi2 = 1) at
    ``ref_pump_mw``, 2 ps, 80 MHz. ``shg_source``: which beam's SHG the emission filter
    passes (``pump`` 398 nm, ``stokes`` 515 nm, ``both``). ``irf_fwhm_cm1``: spectral
    resolution (cm^-1).
    ``safety_limit_mw``: total power refused above this. (The registration error between
    frames is scanner state: :class:`~simulators.parts.scanner.ScannerConfig`.)
    ``polarization``: the lasers' polarisation at the sample (the beams are co-polarised),
    ``linear`` (default: most SRS / SHG microscopes keep the lasers' linear polarisation)
    or ``circular`` (a quarter-wave plate); ``polarization_deg``: direction of the linear
    polarisation in degrees from the scan (+x, column) axis towards +y (rows), -360..360
    (the half-wave plate setting; ignored for circular). The SHG of aligned collagen
    depends on the angle between it and the fibres (docs/physics-notes.md, SHG
    polarisation).
    """

    srs_k: float = 3e-4
    ref_pump_mw: float = 40.0
    ref_stokes_mw: float = 40.0
    xpm_rel: float = 0.02
    pigment_rel: float = 0.3
    pigment_phase_deg: float = 60.0
    heme_rel: float = 0.5
    heme_phase_deg: float = -30.0
    shg_photons_dense: float = 300.0
    shg_source: str = "pump"
    irf_fwhm_cm1: float = 8.0
    safety_limit_mw: float = 150.0
    polarization: str = "linear"
    polarization_deg: float = 0.0

    def __post_init__(self) -> None:
        check_range("SRS gain K", self.srs_k, 0.0, 1e-2)
        check_positive("reference pump power", self.ref_pump_mw, "mW")
        check_positive("reference Stokes power", self.ref_stokes_mw, "mW")
        check_range("XPM amplitude", self.xpm_rel, 0.0, 1.0)
        check_range("haemoglobin pump-probe", self.heme_rel, 0.0, 10.0)
        check_positive("SHG yield", self.shg_photons_dense, "photons", allow_zero=True)
        if self.shg_source not in ("pump", "stokes", "both"):
            raise SettingsError(f"shg_source {self.shg_source!r}: use pump, stokes or both")
        check_positive("instrument line width", self.irf_fwhm_cm1, "cm^-1", allow_zero=True)
        check_positive("safety limit", self.safety_limit_mw, "mW")
        if self.polarization not in POLARIZATIONS:
            raise SettingsError(f"polarization {self.polarization!r}: use "
                                + " or ".join(POLARIZATIONS))
        try:
            if isinstance(self.polarization_deg, bool):
                raise TypeError
            float(self.polarization_deg)
        except (TypeError, ValueError):
            raise SettingsError(f"polarization_deg {self.polarization_deg!r}: a number of "
                                "degrees") from None
        check_range("polarisation angle", self.polarization_deg, -360.0, 360.0, "deg")
