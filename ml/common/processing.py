"""The paper's standard processing of raw SRASH frames, for real and simulated data alike.

Background (dark-level) subtraction, laser-power normalisation, two-channel lipid/protein
unmixing and the RGB composite (R = protein 2930, G = lipid 2850, B = SHG). Pure functions
on arrays: data positional, options keyword-only. Bad input raises :class:`ProcessingError`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.common.errors import MLError
from simulators.spectra import DEFAULT_IRF_FWHM_CM1, response_matrix

__all__ = ["ProcessingError", "subtract_background", "normalize_power", "unmix_lipid_protein",
           "calibrate_on_reference", "CompositeConfig", "composite_rgb", "to_uint8"]


class ProcessingError(MLError):
    """A processing setting outside its range (non-positive power or scale, unknown kind)."""


def check_positive(name: str, value: float, unit: str = "") -> float:
    """``float(value)`` if it is finite and > 0, else :class:`ProcessingError`."""
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        u = f" {unit}" if unit else ""
        raise ProcessingError(f"{name} {v:g}{u} is not allowed: must be finite and > 0")
    return v


def subtract_background(frame: ArrayLike, background: ArrayLike | float) -> NDArray[np.float32]:
    """``frame - background`` (a dark-frame level or map, same units), float32."""
    return (np.asarray(frame, np.float32) - np.asarray(background, np.float32)).astype(np.float32)


def normalize_power(frame: ArrayLike, *, pump_mw: float, stokes_mw: float | None = None,
                    ref_pump_mw: float = 40.0, ref_stokes_mw: float = 40.0,
                    kind: str = "srs") -> NDArray[np.float32]:
    """Rescale a background-subtracted frame to the reference powers.

    SRS goes as ``P_P P_S``: ``S (P_P0 P_S0) / (P_P P_S)``; SHG as ``P^2``:
    ``S (P_0 / P)^2``. Each Raman channel is normalised with its own measured powers
    (the OPO power differs between 790.9 and 795.9 nm).
    """
    f = np.asarray(frame, np.float32)
    check_positive("pump power", pump_mw, "mW")
    if kind == "srs":
        if stokes_mw is None:
            raise ProcessingError("SRS normalisation needs stokes_mw (mW)")
        check_positive("Stokes power", stokes_mw, "mW")
        scale = (ref_pump_mw * ref_stokes_mw) / (pump_mw * stokes_mw)
    elif kind == "shg":
        scale = (ref_pump_mw / pump_mw) ** 2
    else:
        raise ProcessingError(f"kind {kind!r}: use 'srs' or 'shg'")
    return (f * np.float32(scale)).astype(np.float32)


def unmix_lipid_protein(lipid_channel: ArrayLike, protein_channel: ArrayLike, *,
                        shifts_cm1: Sequence[float], volts_per_unit: float = 1.0,
                        irf_fwhm_cm1: float = DEFAULT_IRF_FWHM_CM1,
                        ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Two-channel linear unmixing into lipid and protein concentration maps.

    .. math:: c = M^{-1} S / g, \\qquad M_{kj} = \\tilde\\sigma_j(\\Omega_k)

    ``shifts_cm1`` are the *physical* shifts of the two channels (lipid channel first);
    ``volts_per_unit`` converts processed volts to response units (pure lipid at its 2853
    peak = 1), e.g. from :func:`calibrate_on_reference` (``docs/physics-notes.md``, "Raman shift
    and channels").
    """
    if len(shifts_cm1) != 2:
        raise ProcessingError(f"{len(shifts_cm1)} Raman shifts: unmixing needs exactly two "
                              "(lipid, protein)")
    m = response_matrix(shifts_cm1, ("lipid", "protein"), irf_fwhm_cm1=irf_fwhm_cm1)
    minv = np.linalg.inv(m).astype(np.float32)
    s1 = np.asarray(lipid_channel, np.float32) / np.float32(volts_per_unit)
    s2 = np.asarray(protein_channel, np.float32) / np.float32(volts_per_unit)
    return minv[0, 0] * s1 + minv[0, 1] * s2, minv[1, 0] * s1 + minv[1, 1] * s2


def calibrate_on_reference(reference_frame: ArrayLike, *, shift_cm1: float,
                           lipid_fraction: float = 1.0,
                           irf_fwhm_cm1: float = DEFAULT_IRF_FWHM_CM1) -> float:
    """Volts per response unit from a processed frame of the uniform lipid standard.

    ``g = median(S) / (f_lipid sigma_lipid(Omega))``. Use the central part of the field if
    vignetting is not flat-fielded.
    """
    s = float(np.median(np.asarray(reference_frame, np.float64)))
    sig = float(response_matrix([shift_cm1], ("lipid",), irf_fwhm_cm1=irf_fwhm_cm1)[0, 0])
    return s / (lipid_fraction * sig)


@dataclasses.dataclass(frozen=True)
class CompositeConfig:
    """Fixed display scaling of the RGB composite, so that fields are comparable.

    Each channel is divided by its full-scale value (in processed volts at reference power):
    ``srs_full_scale`` x (volts of pure lipid at that channel) for R and G,
    ``shg_full_scale`` x (volts of dense collagen) for B; then clipped to [0, 1] and raised
    to ``gamma``.
    """

    protein_full_scale: float = 0.30
    lipid_full_scale: float = 0.45
    shg_full_scale: float = 0.35
    gamma: float = 0.8

    def __post_init__(self) -> None:
        for n in ("protein_full_scale", "lipid_full_scale", "shg_full_scale", "gamma"):
            check_positive(n, getattr(self, n))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (run metadata, provenance)."""
        return dataclasses.asdict(self)


def composite_rgb(protein: ArrayLike, lipid: ArrayLike, shg: ArrayLike, *,
                  protein_ref: float, lipid_ref: float, shg_ref: float,
                  config: CompositeConfig | None = None) -> NDArray[np.float32]:
    """RGB composite (y, x, 3) in [0, 1]: R = 2930 (protein), G = 2850 (lipid), B = SHG.

    ``*_ref`` are the processed-volt levels of the pure reference (pure lipid in each SRS
    channel, dense collagen for SHG); the config's full-scale fractions multiply them.
    Tissue-free pixels come out at ~0 (background-subtracted noise is clipped at 0).
    """
    c = config or CompositeConfig()
    chans = []
    for img, ref, fs in ((protein, protein_ref, c.protein_full_scale),
                         (lipid, lipid_ref, c.lipid_full_scale),
                         (shg, shg_ref, c.shg_full_scale)):
        x = np.clip(np.asarray(img, np.float32) / np.float32(ref * fs), 0.0, 1.0)
        chans.append(x ** np.float32(c.gamma) if c.gamma != 1 else x)
    return np.stack(chans, axis=-1).astype(np.float32)


def to_uint8(rgb: ArrayLike) -> NDArray[np.uint8]:
    """[0, 1] float image -> uint8 (for PNG)."""
    return np.round(np.clip(np.asarray(rgb), 0, 1) * 255).astype(np.uint8)
