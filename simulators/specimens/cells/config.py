"""Settings of the exfoliated-cell phantom: sizes, densities and the composition of nucleus,
cytoplasm, droplets and granules (docs/physics-notes.md, exfoliated-cell phantom)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_positive, check_range
from simulators.optics import SRS_AXIAL_FWHM_UM


def _pair(name: str, value: Any, low: float, high: float, unit: str = "",
          integer: bool = False) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be a (min, max) pair, got {value!r}") from None
    check_range(f"{name} minimum", a, low, high, unit)
    check_range(f"{name} maximum", b, low, high, unit)
    if a > b:
        raise SettingsError(f"{name} range ({a:g}, {b:g}) must have min <= max")
    if integer:
        if a != int(a) or b != int(b):
            raise SettingsError(f"{name} range ({a:g}, {b:g}) must be whole numbers")
        return int(a), int(b)  # type: ignore[return-value]
    return a, b


@dataclasses.dataclass(frozen=True)
class CellsConfig(ConfigMixin):
    """Settings of :class:`ExfoliatedCells` (lengths in um, concentrations relative to pure
    reference substances, ranges as ``(min, max)``).

    ``density_per_mm2``: mean number of cells per mm^2 (500: ~5 cell centres in a 100 um
    field); must leave room for the hard core, ``density * pi (d_min + gap)^2 < 0.9``.
    ``diameter_um``: drawn cell diameter (the cell's largest extent); cells crowded by a
    neighbour are made smaller, never below the minimum. ``gap_um``: least free space
    between two cells. ``aspect``: minor/major axis ratio. ``irregularity``: amplitude of the
    boundary's low harmonics (polygon-like outlines).
    ``nucleus_diameter_um``: nucleus major diameter, capped at ``nucleus_max_fraction`` of
    the cell's inscribed diameter. ``eccentric_probability``: chance that the nucleus sits
    off centre. ``nucleolus_probability``: chance of one dense-protein nucleolus.
    ``droplets_per_cell``: integer range (log-uniform draw); ``droplet_diameter_um``:
    log-uniform; ``droplet_clustering``: fraction of droplets in 1-3 clusters;
    ``droplet_lipid``: lipid density of a droplet (uniform draw); ``droplet_z_sd_um``: s.d. of
    a droplet's distance from the focal plane.
    ``cytoplasm_*`` / ``nucleus_*``: mean concentrations; ``texture``: relative amplitude of
    the smooth cytoplasm texture (``texture_scale_um`` lattice pitch); ``cell_variation``:
    relative cell-to-cell spread of the protein and lipid levels. Water fills the rest
    (``1 - lipid - protein - dna``); the medium between cells is water 1.0.
    ``pigment_granules``: mean number of pigment (transient-absorption) granules per cell,
    of strength ``pigment_strength``. ``extent_um``: side of the square slide area centred on
    (0, 0) that holds cells. ``axial_fwhm_um``: axial PSF FWHM for droplet partial volume.

    Issue 15 (docs/physics-notes.md, exfoliated-cell phantom, sources and ranges):
    ``clump_probability``: chance that a cell carries a clump of ``clump_size`` satellite
    cells overlapping it (centre distance ``clump_overlap`` x the sum of the radii), stacked
    above or below it. ``cell_thickness_um``: slab thickness of a cell; ``focus_sd_um``:
    s.d. of the height of a clump's first cell relative to the focal plane (a cell's
    signal is the fraction of the axial PSF inside its slab, and it is blurred laterally by
    the Gaussian-beam widening at its distance from focus). ``dna_pg_diploid``: DNA mass of a
    diploid nucleus (pg); the DNA mass fraction is content / volume of the nucleus
    (ellipsoid, thickness ``nucleus_thickness_um``), capped at ``nucleus_dna``.
    ``cycle_fractions``: (S, G2/M) fractions (DNA x U(1, 2) and x 2); the rest G0/G1.
    ``pyknotic_probability``: nucleus shrunk to 0.5-0.7 of its diameter, same DNA.
    ``nucleus_protein_ratio``: nucleus protein / the cell's cytoplasm protein (uniform;
    ``nucleus_protein`` only bounds the settings check). ``lipid_log_sd``: log-normal
    cell-to-cell spread of the cytoplasm lipid. ``bacteria_per_mm2``, ``debris_per_mm2``:
    rods and debris particles on the slide; ``mucus_fraction``: area fraction of mucus
    strands of protein ``mucus_protein`` (a protein stand-in: mucins are mostly
    carbohydrate, which has no spectrum here). Debris, bacteria and mucus are labelled
    BACKGROUND (not cells).
    """

    density_per_mm2: float = 500.0
    diameter_um: tuple[float, float] = (15.0, 40.0)
    gap_um: float = 2.0
    aspect: tuple[float, float] = (0.6, 1.0)
    irregularity: float = 0.08
    nucleus_diameter_um: tuple[float, float] = (6.0, 14.0)
    nucleus_max_fraction: float = 0.55
    eccentric_probability: float = 0.35
    nucleolus_probability: float = 0.6
    droplets_per_cell: tuple[int, int] = (5, 60)
    droplet_diameter_um: tuple[float, float] = (0.2, 2.5)
    droplet_clustering: float = 0.5
    droplet_lipid: tuple[float, float] = (0.85, 1.0)
    droplet_z_sd_um: float = 0.4
    cytoplasm_protein: float = 0.25
    cytoplasm_lipid: float = 0.05
    nucleus_protein: float = 0.25
    nucleus_dna: float = 0.2
    nucleus_lipid: float = 0.015
    texture: float = 0.2
    texture_scale_um: float = 3.0
    cell_variation: float = 0.15
    pigment_granules: float = 0.5
    pigment_strength: float = 0.3
    extent_um: float = 4000.0
    axial_fwhm_um: float = SRS_AXIAL_FWHM_UM
    # issue 15: clumps, focus, cell-to-cell chemistry, debris (docs/physics-notes.md)
    clump_probability: float = 0.35
    clump_size: tuple[int, int] = (1, 3)
    clump_overlap: tuple[float, float] = (0.45, 0.9)
    cell_thickness_um: tuple[float, float] = (2.5, 5.0)
    focus_sd_um: float = 1.5
    dna_pg_diploid: float = 6.5
    nucleus_thickness_um: tuple[float, float] = (3.0, 5.0)
    cycle_fractions: tuple[float, float] = (0.1, 0.05)
    pyknotic_probability: float = 0.1
    nucleus_protein_ratio: tuple[float, float] = (0.7, 1.1)
    lipid_log_sd: float = 0.35
    bacteria_per_mm2: float = 3000.0
    debris_per_mm2: float = 1500.0
    mucus_fraction: float = 0.25
    mucus_protein: tuple[float, float] = (0.02, 0.05)

    def __post_init__(self) -> None:
        s = object.__setattr__
        check_positive("cell density", self.density_per_mm2, "per mm^2")
        s(self, "diameter_um", _pair("cell diameter", self.diameter_um, 3.0, 200.0, "um"))
        check_range("gap between cells", self.gap_um, 0.0, 50.0, "um")
        s(self, "aspect", _pair("cell aspect ratio", self.aspect, 0.2, 1.0))
        check_range("boundary irregularity", self.irregularity, 0.0, 0.3)
        s(self, "nucleus_diameter_um",
          _pair("nucleus diameter", self.nucleus_diameter_um, 0.5, 100.0, "um"))
        check_range("nucleus fraction of the cell", self.nucleus_max_fraction, 0.05, 0.8)
        check_range("eccentric-nucleus probability", self.eccentric_probability, 0.0, 1.0)
        check_range("nucleolus probability", self.nucleolus_probability, 0.0, 1.0)
        s(self, "droplets_per_cell",
          _pair("droplets per cell", self.droplets_per_cell, 0, 500, integer=True))
        s(self, "droplet_diameter_um",
          _pair("droplet diameter", self.droplet_diameter_um, 0.05, 10.0, "um"))
        check_range("droplet clustering fraction", self.droplet_clustering, 0.0, 1.0)
        s(self, "droplet_lipid", _pair("droplet lipid density", self.droplet_lipid, 0.0, 1.0))
        check_range("droplet focus-offset s.d.", self.droplet_z_sd_um, 0.0, 5.0, "um")
        for name in ("cytoplasm_protein", "cytoplasm_lipid", "nucleus_protein", "nucleus_dna",
                     "nucleus_lipid"):
            check_range(name.replace("_", " "), getattr(self, name), 0.0, 1.0)
        check_range("texture amplitude", self.texture, 0.0, 0.9)
        check_positive("texture scale", self.texture_scale_um, "um")
        check_range("cell-to-cell variation", self.cell_variation, 0.0, 0.9)
        hi = (1 + self.texture) * (1 + self.cell_variation)
        if hi * (self.cytoplasm_protein + 2 * self.cytoplasm_lipid) > 1.0:
            raise SettingsError("cytoplasm protein + lipid (with texture and variation) must "
                                "stay below 1 (water fills the rest)")
        if hi * (self.nucleus_protein + self.nucleus_dna + self.nucleus_lipid) > 1.0:
            raise SettingsError("nucleus protein + dna + lipid (with texture and variation) "
                                "must stay below 1 (water fills the rest)")
        check_range("pigment granules per cell", self.pigment_granules, 0.0, 100.0)
        check_range("pigment strength", self.pigment_strength, 0.0, 10.0)
        check_range("slide extent", self.extent_um, 100.0, 100_000.0, "um")
        check_positive("axial PSF FWHM", self.axial_fwhm_um, "um")
        check_range("clump probability", self.clump_probability, 0.0, 1.0)
        s(self, "clump_size", _pair("cells per clump", self.clump_size, 1, 3, integer=True))
        s(self, "clump_overlap", _pair("clump centre distance / radii sum", self.clump_overlap,
                                       0.2, 1.0))
        s(self, "cell_thickness_um", _pair("cell thickness", self.cell_thickness_um, 0.5, 20.0,
                                           "um"))
        check_range("cell focus offset s.d.", self.focus_sd_um, 0.0, 10.0, "um")
        check_range("DNA per diploid nucleus", self.dna_pg_diploid, 0.0, 20.0, "pg")
        s(self, "nucleus_thickness_um", _pair("nucleus thickness", self.nucleus_thickness_um,
                                              0.5, 20.0, "um"))
        try:
            fs, fg2 = (float(v) for v in self.cycle_fractions)
        except (TypeError, ValueError):
            raise SettingsError(f"cycle_fractions must be an (S, G2) pair, got "
                                f"{self.cycle_fractions!r}") from None
        check_range("S-phase fraction", fs, 0.0, 1.0)
        check_range("G2-phase fraction", fg2, 0.0, 1.0)
        if fs + fg2 > 1.0:
            raise SettingsError("cell-cycle S + G2 fractions must not exceed 1")
        s(self, "cycle_fractions", (fs, fg2))
        check_range("pyknotic-nucleus probability", self.pyknotic_probability, 0.0, 1.0)
        s(self, "nucleus_protein_ratio", _pair("nucleus / cytoplasm protein",
                                               self.nucleus_protein_ratio, 0.1, 2.0))
        check_range("cytoplasm lipid log s.d.", self.lipid_log_sd, 0.0, 1.5)
        check_range("bacteria density", self.bacteria_per_mm2, 0.0, 1e5, "per mm^2")
        check_range("debris density", self.debris_per_mm2, 0.0, 1e5, "per mm^2")
        check_range("mucus area fraction", self.mucus_fraction, 0.0, 0.9)
        s(self, "mucus_protein", _pair("mucus protein", self.mucus_protein, 0.0, 0.3))
        core = self.hard_core_um
        fill = self.density_per_mm2 * 1e-6 * math.pi * core**2
        if fill >= 0.9:
            limit = 0.9 / (1e-6 * math.pi * core**2)
            raise SettingsError(
                f"cell density {self.density_per_mm2:g} per mm^2 too high for non-overlapping "
                f"cells of >= {self.diameter_um[0]:g} um with {self.gap_um:g} um gaps; allowed: "
                f"below {limit:.0f} per mm^2")

    @property
    def hard_core_um(self) -> float:
        """Least centre-to-centre distance of two cells: min diameter + gap."""
        return self.diameter_um[0] + self.gap_um
