"""The paper's processing of a raw field: dark subtraction, power normalisation,
lipid/protein unmixing and the SRASH composite, with a calibration record.

:func:`apply_calibration` takes any field with the attributes of :class:`FieldLike` and a
calibration dict (the keys of :class:`ml.io.composite.Calibration`), so it applies to real
data as to simulated; :func:`process_field` takes the record from a simulated instrument
(``sim.calibration(rng)``, e.g. :class:`simulators.instrument.SRASHSimulator`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
from numpy.typing import NDArray

from ml.common.processing import (
    CompositeConfig,
    composite_rgb,
    unmix_lipid_protein,
)
from ml.io.composite import Calibration, shg_at_reference, srs_at_reference
from plans.contract import LIPID_CM1, PAIR_TOLERANCE_CM1, PROTEIN_CM1


class FieldLike(Protocol):
    """What :func:`apply_calibration` reads of a raw field (e.g.
    :class:`simulators.instrument.FieldResult`): ``raw`` (C, ny, nx) in detector volts, SRS
    channels first then SHG, and per SRS channel its shifts and delivered powers."""

    raw: NDArray[np.float32]
    channel_names: list[str]
    raman_shifts_cm1: Sequence[float]
    nominal_shifts_cm1: Sequence[float]
    pump_mw: Sequence[float]
    stokes_mw: Sequence[float]


@dataclasses.dataclass
class ProcessedField:
    """A field after background subtraction and power normalisation (volts at the
    reference powers), with the lipid/protein unmixing and RGB composite when the field has
    a lipid (~2850) and a protein (~2930) channel and SHG."""

    data: NDArray[np.float32]
    channel_names: list[str]
    background_v: dict[str, float]
    references_v: dict[str, float]
    lipid: NDArray[np.float32] | None = None
    protein: NDArray[np.float32] | None = None
    composite: NDArray[np.float32] | None = None


def process_field(sim: Any, field: FieldLike, rng: np.random.Generator, *,
                  composite: CompositeConfig | None = None) -> ProcessedField:
    """The paper's processing of a raw field acquired on ``sim`` (a
    :class:`~simulators.instrument.SRASHSimulator`): :func:`apply_calibration` with
    ``sim.calibration(rng)`` (a shutters-closed frame at the same settings and the
    instrument's response to the reference standards)."""
    return apply_calibration(field, sim.calibration(rng), composite=composite)


def apply_calibration(field: FieldLike, calibration: Calibration | Mapping[str, Any], *,
                      composite: CompositeConfig | None = None) -> ProcessedField:
    """Process a raw field with a calibration record (keys of
    :meth:`~simulators.instrument.simulator.SRASHSimulator.calibration`).

    Background: the dark levels. Power: each SRS channel with its own measured
    pump/Stokes power, SHG with the pump power. References for unmixing and display: the
    instrument's response to pure lipid / dense collagen at the reference powers (what a
    power calibration on the ``reference`` specimen measures).
    """
    cal = calibration if isinstance(calibration, Calibration) else \
        Calibration.from_dict(calibration)
    dark = {"srs_v": cal.srs_dark_v, "shg_v": cal.shg_dark_v}
    g, irf = cal.srs_volts_per_unit, cal.irf_fwhm_cm1
    n_srs = len(field.raman_shifts_cm1)
    out = np.empty_like(field.raw)
    refs: dict[str, float] = {}
    for k in range(n_srs):
        out[k] = srs_at_reference(field.raw[k], cal, pump_mw=max(field.pump_mw[k], 1e-9),
                                  stokes_mw=max(field.stokes_mw[k], 1e-9))
        refs[field.channel_names[k]] = cal.lipid_ref_v(field.raman_shifts_cm1[k])
    has_shg = len(field.channel_names) > n_srs
    if has_shg:
        out[n_srs] = shg_at_reference(field.raw[n_srs], cal,
                                      pump_mw=max(field.pump_mw[0], 1e-9))
        refs["SHG"] = cal.shg_volts_per_unit
    res = ProcessedField(data=out, channel_names=list(field.channel_names), background_v=dark,
                         references_v=refs)
    nominal = np.asarray(field.nominal_shifts_cm1)
    if n_srs >= 2:
        il = int(np.argmin(np.abs(nominal - LIPID_CM1)))
        ip = int(np.argmin(np.abs(nominal - PROTEIN_CM1)))
        if (il != ip and abs(nominal[il] - LIPID_CM1) <= PAIR_TOLERANCE_CM1
                and abs(nominal[ip] - PROTEIN_CM1) <= PAIR_TOLERANCE_CM1):
            res.lipid, res.protein = unmix_lipid_protein(
                out[il], out[ip], volts_per_unit=g, irf_fwhm_cm1=irf,
                shifts_cm1=[field.raman_shifts_cm1[il], field.raman_shifts_cm1[ip]])
            if has_shg:
                names = field.channel_names
                res.composite = composite_rgb(
                    out[ip], out[il], out[n_srs], protein_ref=refs[names[ip]],
                    lipid_ref=refs[names[il]], shg_ref=refs["SHG"], config=composite)
    return res
