"""The classifier's composite of one SRASH field, from raw detector volts.

The SRASH paper feeds LBNet-Dx 3-channel composites, R = SRS 2930 cm^-1 (protein),
G = SRS 2850 cm^-1 (lipid), B = SHG, "after background subtraction and laser-power
normalization". Here, for each channel ``c`` with raw volts ``V_c``::

    S_c = (V_c - dark_c) * (P_P0 P_S0) / (P_P P_S)      SRS, each with its own frame powers
    S_B = (V_B - dark_SHG) * (P_P0 / P_P)^2              SHG, pump power of its frame
    x_c = clip(S_c / (full_scale_c * ref_c), 0, 1) ** gamma

with ``ref`` the processed volts of pure lipid in that SRS channel
(``srs_volts_per_unit * sigma_lipid(shift)``) or of dense collagen for SHG
(:func:`ml.common.processing.composite_rgb` and :class:`~ml.common.processing.CompositeConfig`
give the full-scale fractions and gamma). The fixed scale makes fields of different
patients comparable, which is what the classifier needs; tissue-free pixels are exactly 0.

The dark levels and volts-per-unit come from a :class:`Calibration`: the instrument's
calibration record written into each run's start document (key ``calibration``) by the
session. Everything is float32 and deterministic, so a composite rebuilt from the live
document stream equals the one rebuilt later from the catalog bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.common.errors import MLError
from ml.common.processing import (
    CompositeConfig,
    composite_rgb,
    normalize_power,
    subtract_background,
)
from plans.contract import DISPLAY_RGB
from simulators.spectra import DEFAULT_IRF_FWHM_CM1, species_spectrum

__all__ = ["CHANNEL_ORDER", "Calibration", "CalibrationError", "field_channels", "field_composite",
           "shg_at_reference", "srs_at_reference"]

#: Channel order of the classifier's composite (channels-first).
CHANNEL_ORDER = DISPLAY_RGB


class CalibrationError(MLError):
    """No usable calibration record (missing, wrong keys, non-positive scales)."""


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Detector offsets and gains of the instrument.

    Attributes
    ----------
    srs_dark_v, shg_dark_v : mean lock-in / PMT output with the shutters closed (V).
    srs_volts_per_unit : lock-in volts per response unit at the reference powers (pure
        lipid at its 2853 cm^-1 peak = 1 unit), V.
    shg_volts_per_unit : PMT volts of dense collagen at the reference pump power, V.
    ref_pump_mw, ref_stokes_mw : reference powers the data are normalised to (mW).
    irf_fwhm_cm1 : spectral resolution used for the lipid reference (cm^-1).
    source : where the numbers come from (free text, provenance).
    """

    srs_dark_v: float
    shg_dark_v: float
    srs_volts_per_unit: float
    shg_volts_per_unit: float
    ref_pump_mw: float = 40.0
    ref_stokes_mw: float = 40.0
    irf_fwhm_cm1: float = DEFAULT_IRF_FWHM_CM1
    source: str = ""

    def __post_init__(self) -> None:
        for n in ("srs_volts_per_unit", "shg_volts_per_unit", "ref_pump_mw", "ref_stokes_mw",
                  "irf_fwhm_cm1"):
            v = getattr(self, n)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise CalibrationError(f"calibration {n} = {v!r}: expected a finite value > 0")
        for n in ("srs_dark_v", "shg_dark_v"):
            v = getattr(self, n)
            if not (isinstance(v, (int, float)) and np.isfinite(v)):
                raise CalibrationError(f"calibration {n} = {v!r}: expected a finite number")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "Calibration":
        """From a start document's ``calibration`` entry (extra keys ignored)."""
        if not isinstance(d, Mapping):
            raise CalibrationError(
                "the run has no 'calibration' record in its start document (dark levels and "
                "volts-per-unit are needed for background subtraction and scaling); scan "
                "with a srash session, or pass a calibration explicitly")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = {"srs_dark_v", "shg_dark_v", "srs_volts_per_unit",
                   "shg_volts_per_unit"} - set(d)
        if missing:
            raise CalibrationError(f"calibration record lacks {sorted(missing)}")
        kw = {k: (float(v) if k != "source" else str(v)) for k, v in d.items() if k in names}
        return cls(**kw)

    def lipid_ref_v(self, shift_cm1: float) -> float:
        """Processed volts of pure lipid at ``shift_cm1`` (reference powers)."""
        return self.srs_volts_per_unit * float(
            species_spectrum("lipid", shift_cm1, irf_fwhm_cm1=self.irf_fwhm_cm1))


def srs_at_reference(frame: ArrayLike, calibration: Calibration, *, pump_mw: float,
                     stokes_mw: float) -> NDArray[np.float32]:
    """An SRS frame in volts at the reference powers: dark level subtracted, divided by
    ``(P_pump / P_ref,pump) (P_Stokes / P_ref,Stokes)`` (SRS is linear in both powers)."""
    cal = calibration
    return normalize_power(subtract_background(frame, cal.srs_dark_v), pump_mw=pump_mw,
                           stokes_mw=stokes_mw, ref_pump_mw=cal.ref_pump_mw,
                           ref_stokes_mw=cal.ref_stokes_mw)


def shg_at_reference(frame: ArrayLike, calibration: Calibration, *,
                     pump_mw: float) -> NDArray[np.float32]:
    """An SHG frame in volts at the reference pump power: dark level subtracted, divided by
    ``(P_pump / P_ref,pump)^2`` (SHG is quadratic in the pump power)."""
    cal = calibration
    return normalize_power(subtract_background(frame, cal.shg_dark_v), pump_mw=pump_mw,
                           kind="shg", ref_pump_mw=cal.ref_pump_mw)


def _processed(srs_lipid: ArrayLike, srs_protein: ArrayLike, shg: ArrayLike, *,
               calibration: Calibration, pump_mw: Sequence[float], stokes_mw: Sequence[float],
               shifts_cm1: Sequence[float]) -> list[NDArray[np.float32]]:
    """[2850, 2930, SHG] background-subtracted and power-normalised (volts at reference
    power); checks shapes and the (lipid, protein) pairs."""
    cal = calibration
    a = [np.asarray(v, np.float32) for v in (srs_lipid, srs_protein, shg)]
    if a[0].ndim != 2 or any(x.shape != a[0].shape for x in a):
        raise CalibrationError(
            f"frames of shapes {[x.shape for x in a]}: expected three equal (H, W) images")
    if len(shifts_cm1) != 2 or len(pump_mw) != 2 or len(stokes_mw) != 2:
        raise CalibrationError("shifts_cm1, pump_mw and stokes_mw need (lipid, protein) pairs")
    srs = [srs_at_reference(a[k], cal, pump_mw=pump_mw[k], stokes_mw=stokes_mw[k])
           for k in (0, 1)]
    return [srs[0], srs[1], shg_at_reference(a[2], cal, pump_mw=pump_mw[0])]


def field_composite(srs_lipid: ArrayLike, srs_protein: ArrayLike, shg: ArrayLike, *,
                    calibration: Calibration, shifts_cm1: Sequence[float],
                    pump_mw: Sequence[float], stokes_mw: Sequence[float],
                    config: CompositeConfig | None = None) -> NDArray[np.float32]:
    """Composite ``(3, H, W)`` float32 in [0, 1], channels R = 2930, G = 2850, B = SHG.

    Parameters
    ----------
    srs_lipid, srs_protein, shg : array_like
        Raw detector volts ``(H, W)``: the SRS frame near 2850 cm^-1, the one near 2930, and
        the SHG frame (acquired with the 2850 frame).
    calibration : Calibration
    shifts_cm1 : (lipid, protein) physical Raman shifts of the two SRS frames (cm^-1).
    pump_mw, stokes_mw : (lipid frame, protein frame) measured powers (mW); SHG uses the
        lipid frame's pump power.
    config : display/scale configuration (default :class:`CompositeConfig`).
    """
    cal = calibration
    lip, pro, b = _processed(srs_lipid, srs_protein, shg, calibration=cal, pump_mw=pump_mw,
                             stokes_mw=stokes_mw, shifts_cm1=shifts_cm1)
    rgb = composite_rgb(pro, lip, b, protein_ref=cal.lipid_ref_v(shifts_cm1[1]),
                        lipid_ref=cal.lipid_ref_v(shifts_cm1[0]),
                        shg_ref=cal.shg_volts_per_unit, config=config)
    return np.ascontiguousarray(np.moveaxis(rgb, -1, 0))


def field_channels(srs_lipid: ArrayLike, srs_protein: ArrayLike, shg: ArrayLike, *,
                   calibration: Calibration, shifts_cm1: Sequence[float],
                   pump_mw: Sequence[float], stokes_mw: Sequence[float]
                   ) -> NDArray[np.float32]:
    """Quantitative images ``(3, H, W)`` float32, linear and unclipped, in reference units:
    [2850 / pure lipid at 2850, 2930 / pure lipid at 2930, SHG / dense collagen].

    The same background subtraction and power normalisation as :func:`field_composite`
    (the paper's processing before any measurement), without the display scaling, so
    intensities can be averaged (e.g. the mean lipid intensity of lipid droplets, pure
    triglyceride = 1). Arguments as :func:`field_composite`.
    """
    cal = calibration
    lip, pro, b = _processed(srs_lipid, srs_protein, shg, calibration=cal, pump_mw=pump_mw,
                             stokes_mw=stokes_mw, shifts_cm1=shifts_cm1)
    return np.stack([lip / np.float32(cal.lipid_ref_v(shifts_cm1[0])),
                     pro / np.float32(cal.lipid_ref_v(shifts_cm1[1])),
                     b / np.float32(cal.shg_volts_per_unit)]).astype(np.float32)
