"""One patient's testis section: phenotypes, the spermatogenic states of single tubules,
each patient's mixture of those states and the patient-to-patient distributions of the
section's other parameters (docs/physics-notes.md, testis phantom).

A patient is a mixture: every tubule draws its own state (:data:`STATES`: complete
spermatogenesis, hypospermatogenesis, arrest at spermatocytes or spermatogonia,
Sertoli-cell-only, sclerosis) from the patient's weights (:attr:`TestisConfig.state_weights`),
and the state carries the tubule's histology (:class:`TubuleState`). The phenotype names the
patient's dominant pattern and sets the Dirichlet the weights come from
(:data:`MIXTURE_MEANS`). Patient-level parameters come from lognormals whose medians
depend on the phenotype and whose spreads overlap (:data:`PATIENT_LOGNORMALS`); the only
limits are physical ones. Preparation artefacts (outline, tears) come from their own rng
stream keyed by the patient, independent of the histology draw.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_range

#: Allowed phenotypes, in the order used for seeding.
PHENOTYPES: tuple[str, ...] = ("normal", "NOA-SPT", "NOA-SPG", "NOA-SCO")

#: Largest epithelial LD lipid density (x pure triglyceride): CH2-richer droplets (cholesteryl
#: esters, saturated chains) read brighter, up to what the lock-in's range at its default
#: sensitivity takes (why 1.3: docs/physics-notes.md, lipid droplets in NOA tubules).
MAX_DROPLET_DENSITY: float = 1.3

#: Physical limits of a tubule's mean lamina propria thickness (um) and true outer
#: diameter (um): the only clipping left (docs/physics-notes.md, testis phantom).
WALL_LIMITS_UM: tuple[float, float] = (2.0, 40.0)
DIAMETER_LIMITS_UM: tuple[float, float] = (80.0, 300.0)

#: rng streams of the patient draw (histology) and of the preparation artefacts
_S_PATIENT = 0x7E57
_S_ARTEFACT = 0xA27E
#: rng stream of the collagen's SHG tensor ratio (its own, so adding it left every other
#: draw of a patient as it was)
_S_SHG = 0x5A6C

#: Patient-to-patient ``chi_zzz / chi_zxx`` of the collagen (:attr:`TestisConfig.shg_rho`):
#: lognormal (median, sigma) and physical limits; 1.3-2.6 reported for type-I collagen
#: (docs/physics-notes.md, SHG polarisation).
SHG_RHO_LOGNORMAL: tuple[float, float, tuple[float, float]] = (1.8, 0.17, (1.1, 3.2))
#: rng stream of the patient's interstitial vessel and macrophage densities (its own
#: stream, so the draws above are unchanged)
_S_INTERSTITIUM = 0x1A7E

#: Patient-level lognormals of the interstitial vessels and macrophages: (median per
#: phenotype, sigma of ln x, physical limits), drawn on their own stream
#: (docs/physics-notes.md, interstitium).
INTERSTITIUM_LOGNORMALS: dict[str, tuple[tuple[float, float, float, float], float,
                                         tuple[float, float]]] = {
    "capillaries_per_tubule": ((3.0, 3.0, 3.0, 3.0), 0.25, (0.5, 10.0)),
    "vessels_per_tubule": ((0.3, 0.3, 0.3, 0.3), 0.3, (0.0, 2.0)),
    "macrophages_per_mm2": ((25.0, 40.0, 40.0, 50.0), 0.35, (2.0, 300.0)),
}

_ALL_GERM = ("spermatogonia", "spermatocytes", "round_spermatids", "elongated_spermatids")


@dataclasses.dataclass(frozen=True)
class TubuleState:
    """Histology of one spermatogenic state of a tubule (docs/physics-notes.md).

    Pairs are tubule-to-tubule ranges (uniform draws per tubule); lengths in um. The
    tubule's diameter is ``diameter_factor`` x the patient's ``tubule_diameter_um``, its
    lamina propria ``wall_um`` x the patient's ``wall_factor`` (then the physical limits
    :data:`WALL_LIMITS_UM`). Its LD lipid density comes from the droplets' composition
    (:mod:`simulators.specimens.testis.lipids`, by state) x the patient's
    ``droplet_density`` factor (at most :data:`MAX_DROPLET_DENSITY`).

    germ: germ-cell populations present; ``germ_keep`` the fraction of the germ-cell
    positions filled (hypospermatogenesis: fewer cells per row); ``sertoli_spacing_um``,
    ``spermatogonia_spacing_um``, ``myoid_spacing_um`` (along the basement membrane);
    ``spermatocyte_rows``; ``pyknotic_fraction`` (degenerating spermatocytes);
    ``elongated_probability`` (profiles at a stage with elongated spermatids);
    ``lumen_sperm`` (mean sperm heads per lumen profile). Lumen: ``lumen_min_um`` /
    ``lumen_max_um`` radius limits, ``lumen_water`` / ``lumen_protein`` content.
    Droplets: ``droplet_area_fraction`` (in-focus LD cross-section / epithelium area),
    ``droplet_diameter_um`` (lognormal median), ``droplets_basal`` (in Sertoli cytoplasm
    between the basal nuclei, else spread over the height), ``protein_droplet_area_fraction``.
    """

    germ: tuple[str, ...]
    diameter_factor: tuple[float, float]
    wall_um: tuple[float, float]
    wall_variation: tuple[float, float]
    wall_gap_fraction: tuple[float, float]
    infolding_um: tuple[float, float]
    wall_collagen: tuple[float, float]
    wall_chi2: tuple[float, float]
    epithelium_um: tuple[float, float]
    lumen_irregularity: tuple[float, float]
    droplet_area_fraction: tuple[float, float]
    droplet_diameter_um: tuple[float, float]
    protein_droplet_area_fraction: tuple[float, float] = (0.0, 0.0)
    lumen_min_um: float = 15.0
    lumen_max_um: float = 60.0
    lumen_water: float = 0.94
    lumen_protein: float = 0.03
    germ_keep: float = 1.0
    sertoli_spacing_um: float = 22.0
    spermatogonia_spacing_um: float = 13.0
    myoid_spacing_um: float = 22.0
    spermatocyte_rows: int = 2
    pyknotic_fraction: float = 0.02
    elongated_probability: float = 0.0
    lumen_sperm: float = 0.0
    droplets_basal: bool = True

    def ranges(self) -> dict[str, tuple[float, float]]:
        """The tubule-to-tubule ranges, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), tuple) and f.name != "germ"}


#: Spermatogenic states of one tubule, in the order of :attr:`TestisConfig.state_weights`
#: (values and their sources: docs/physics-notes.md, testis phantom, tubule states).
STATES: dict[str, TubuleState] = {
    "complete": TubuleState(
        germ=_ALL_GERM, diameter_factor=(0.93, 1.07), wall_um=(4.5, 7.0),
        wall_variation=(0.1, 0.2), wall_gap_fraction=(0.0, 0.0), infolding_um=(0.3, 0.8),
        wall_collagen=(0.55, 0.7), wall_chi2=(0.35, 0.55), epithelium_um=(50.0, 65.0),
        lumen_irregularity=(0.08, 0.15), droplet_area_fraction=(0.018, 0.04),
        droplet_diameter_um=(0.95, 1.2),
        lumen_max_um=40.0, sertoli_spacing_um=24.0, spermatogonia_spacing_um=13.0,
        myoid_spacing_um=30.0, elongated_probability=0.65, lumen_sperm=6.0),
    "hypo": TubuleState(
        germ=_ALL_GERM, diameter_factor=(0.88, 1.03), wall_um=(6.0, 10.0),
        wall_variation=(0.15, 0.3), wall_gap_fraction=(0.0, 0.1), infolding_um=(0.5, 2.0),
        wall_collagen=(0.58, 0.72), wall_chi2=(0.4, 0.6), epithelium_um=(38.0, 55.0),
        lumen_irregularity=(0.1, 0.2), droplet_area_fraction=(0.01, 0.025),
        droplet_diameter_um=(0.85, 1.1),
        lumen_max_um=50.0, germ_keep=0.55, sertoli_spacing_um=22.0,
        spermatogonia_spacing_um=16.0, myoid_spacing_um=26.0, elongated_probability=0.4,
        lumen_sperm=2.0),
    "arrest_spt": TubuleState(
        germ=("spermatogonia", "spermatocytes"), diameter_factor=(0.84, 1.0),
        wall_um=(9.0, 15.0), wall_variation=(0.25, 0.4), wall_gap_fraction=(0.1, 0.25),
        infolding_um=(2.0, 5.0), wall_collagen=(0.6, 0.75), wall_chi2=(0.45, 0.65),
        epithelium_um=(40.0, 52.0), lumen_irregularity=(0.15, 0.25),
        droplet_area_fraction=(0.004, 0.011), droplet_diameter_um=(0.7, 0.9),
        protein_droplet_area_fraction=(0.004, 0.01),
        sertoli_spacing_um=22.0, spermatogonia_spacing_um=15.0, spermatocyte_rows=3,
        pyknotic_fraction=0.12),
    "arrest_spg": TubuleState(
        germ=("spermatogonia",), diameter_factor=(0.82, 0.98), wall_um=(9.0, 16.0),
        wall_variation=(0.25, 0.4), wall_gap_fraction=(0.1, 0.25), infolding_um=(2.0, 6.0),
        wall_collagen=(0.6, 0.78), wall_chi2=(0.45, 0.7), epithelium_um=(22.0, 32.0),
        lumen_irregularity=(0.15, 0.25), droplet_area_fraction=(0.0, 0.0008),
        droplet_diameter_um=(0.7, 0.9),
        sertoli_spacing_um=18.0, spermatogonia_spacing_um=20.0),
    "sco": TubuleState(
        germ=(), diameter_factor=(0.58, 0.72), wall_um=(11.0, 18.0),
        wall_variation=(0.2, 0.35), wall_gap_fraction=(0.05, 0.2), infolding_um=(3.0, 7.0),
        wall_collagen=(0.7, 0.85), wall_chi2=(0.6, 0.8), epithelium_um=(24.0, 32.0),
        lumen_irregularity=(0.15, 0.25), droplet_area_fraction=(0.006, 0.016),
        droplet_diameter_um=(0.8, 1.1),
        lumen_min_um=6.0, lumen_max_um=25.0, lumen_water=0.97, lumen_protein=0.012,
        sertoli_spacing_um=11.0, droplets_basal=False),
    "sclerotic": TubuleState(
        germ=(), diameter_factor=(0.45, 0.6), wall_um=(18.0, 30.0),
        wall_variation=(0.15, 0.3), wall_gap_fraction=(0.0, 0.05), infolding_um=(1.0, 4.0),
        wall_collagen=(0.8, 0.95), wall_chi2=(0.65, 0.9), epithelium_um=(6.0, 15.0),
        lumen_irregularity=(0.15, 0.25), droplet_area_fraction=(0.0, 0.003),
        droplet_diameter_um=(0.8, 1.0),
        lumen_min_um=0.0, lumen_max_um=6.0, lumen_water=0.97, lumen_protein=0.012,
        sertoli_spacing_um=20.0, droplets_basal=False),
}
STATE_NAMES: tuple[str, ...] = tuple(STATES)

#: Each phenotype's dominant tubule state.
DOMINANT_STATE: dict[str, str] = {"normal": "complete", "NOA-SPT": "arrest_spt",
                                  "NOA-SPG": "arrest_spg", "NOA-SCO": "sco"}

#: Mean mixture weights per phenotype (order of :data:`STATE_NAMES`) and the Dirichlet
#: concentration each patient's weights are drawn with (docs/physics-notes.md).
MIXTURE_MEANS: dict[str, tuple[float, ...]] = {
    #            complete hypo  arrest_spt arrest_spg sco   sclerotic
    "normal":   (0.84,    0.10, 0.01,      0.005,     0.02, 0.025),
    "NOA-SPT":  (0.04,    0.10, 0.60,      0.08,      0.12, 0.06),
    "NOA-SPG":  (0.03,    0.06, 0.10,      0.58,      0.15, 0.08),
    "NOA-SCO":  (0.03,    0.03, 0.02,      0.02,      0.78, 0.12),
}
MIXTURE_CONCENTRATION: dict[str, float] = {"normal": 30.0, "NOA-SPT": 12.0, "NOA-SPG": 12.0,
                                           "NOA-SCO": 12.0}

#: Patient-level lognormals: (median per phenotype in PHENOTYPES order, sigma of ln x), and
#: the physical limits the draw is clipped to (docs/physics-notes.md, patient parameters).
#: ``pitch_excess`` is pitch_factor - 1 (interstitium: the mean surface gap between
#: neighbouring tubules' sheaths / mean tubule diameter; see TestisConfig).
PATIENT_LOGNORMALS: dict[str, tuple[tuple[float, float, float, float], float,
                                    tuple[float, float]]] = {
    "tubule_diameter_um": ((205.0, 195.0, 190.0, 185.0), 0.07, (150.0, 260.0)),
    "wall_factor": ((1.0, 1.2, 1.2, 1.25), 0.2, (0.5, 2.5)),
    "pitch_excess": ((0.17, 0.27, 0.29, 0.32), 0.3, (0.05, 2.0)),
    "interstitial_collagen": ((0.15, 0.19, 0.2, 0.28), 0.3, (0.02, 0.9)),
    "interstitial_chi2": ((0.11, 0.15, 0.16, 0.28), 0.3, (0.02, 0.9)),
    "leydig_clusters_per_tubule": ((1.4, 1.8, 1.8, 1.85), 0.2, (0.2, 4.0)),
    "leydig_cluster_cells": ((6.0, 11.0, 12.0, 13.0), 0.45, (2.0, 40.0)),
    "leydig_cell_scale": ((1.0, 1.08, 1.08, 1.1), 0.06, (0.8, 1.4)),
    "leydig_droplets_per_cell": ((24.0, 32.0, 32.0, 32.0), 0.3, (5.0, 100.0)),
    "leydig_lipofuscin_per_cell": ((4.0, 6.0, 6.0, 6.0), 0.35, (0.5, 30.0)),
    "leydig_pigment": ((0.045, 0.07, 0.07, 0.075), 0.3, (0.005, 0.3)),
    "droplet_density": ((1.0, 1.0, 1.0, 1.0), 0.04, (0.8, 1.2)),
    "leydig_droplet_density": ((0.86, 0.86, 0.86, 0.86), 0.04, (0.6, 1.1)),
}

#: Germ-cell populations of each phenotype's dominant state (other tubules of a patient
#: follow their own state: :data:`STATES`).
GERM_CELLS: dict[str, tuple[str, ...]] = {ph: STATES[s].germ
                                          for ph, s in DOMINANT_STATE.items()}


def check_phenotype(phenotype: str) -> str:
    if phenotype not in PHENOTYPES:
        raise SettingsError(f"unknown testis phenotype {phenotype!r}; allowed: "
                            + ", ".join(PHENOTYPES))
    return phenotype


def draw_mixture(phenotype: str, rng: np.random.Generator) -> tuple[float, ...]:
    """One patient's state weights: Dirichlet(concentration x mean), with the phenotype's
    dominant state swapped into the largest weight (the phenotype names the dominant
    pattern). Sums to 1."""
    mean = np.asarray(MIXTURE_MEANS[phenotype], float)
    w = rng.dirichlet(MIXTURE_CONCENTRATION[phenotype] * mean)
    k = STATE_NAMES.index(DOMINANT_STATE[phenotype])
    top = int(np.argmax(w))
    w[k], w[top] = w[top], w[k]
    w = w / w.sum()
    return tuple(float(v) for v in w)


def draw_lognormal(name: str, phenotype: str, rng: np.random.Generator) -> float:
    """One patient's value of :data:`PATIENT_LOGNORMALS` ``name``, within its physical
    limits."""
    medians, sigma, (lo, hi) = PATIENT_LOGNORMALS[name]
    med = medians[PHENOTYPES.index(phenotype)]
    return float(np.clip(med * math.exp(sigma * rng.standard_normal()), lo, hi))


@dataclasses.dataclass(frozen=True)
class TestisConfig(ConfigMixin):
    """Parameters of one patient's section (lengths in um, concentrations relative to pure).

    Draw a patient with :meth:`draw`; the defaults are a typical normal testis. Fields:

    mixture: ``state_weights`` (probability of each of :data:`STATE_NAMES` for a tubule;
    sums to 1). Each tubule's histology comes from its state (:data:`STATES`) scaled by
    the patient-level factors below.
    section (preparation): ``center_um`` (x, y), ``section_radii_um`` (semi-axes of the
    outline), ``boundary_roughness`` (relative outline irregularity), ``hole_fraction``
    (area fraction of tears, where interstitium is missing and tubules are dropped),
    ``hole_scale_um``, ``section_thickness_um`` (nominal thickness: stage z = 0 focuses in
    its middle; the local thickness map is :class:`~.preparation.SectionPreparation`),
    ``artefact_seed`` (seeds the outline and tear noise;
    drawn per patient, independent of the histology).
    tubules: ``tubule_diameter_um`` (patient scale: true outer diameter of a tubule with
    complete spermatogenesis; a state's tubules are ``diameter_factor`` x this) and
    ``tubule_diameter_sd_um`` (tubule-to-tubule sd at that scale), ``diameter_range_um``
    (physical limits), ``axis_ratio_max`` (longest profile / its width: the straight run
    of a coiled tubule in diameters, caps the oblique cut's 1 / cos(theta)),
    ``pitch_factor`` (sets how much interstitium: each tubule's interstitial sheath is
    exponential with mean (pitch_factor - 1) / 2 x the patient's mean tubule diameter
    over its mixture, so two neighbours' sheaths add up on average to the gap of a
    lattice of pitch pitch_factor x that diameter; before issue 14 item 3 it was that
    lattice), ``interstitial_gap_um`` (least gap between tubules, on top of the sheaths),
    ``packing_scale_min`` (least common scale at which two kept tubules' outlines clear
    the gap and their sheaths: closer pairs are flattened against each other on a flat
    face, at least this fraction of the profile's extent from its centre; how much packed
    tubules give way; docs/physics-notes.md, tubule packing).
    Configs stored before item 3 (``axis_ratio_max`` 1.5, no ``packing_scale_min``) load
    and keep their 1.5 cap.
    wall: ``wall_factor`` (patient's lamina propria thickening, x each state's thickness),
    ``wall_range_um`` (physical limits of a tubule's mean thickness), ``gap_wall_um`` (what
    is left of the collagen where the wall is truncated).
    droplets: ``droplet_density`` (the patient's factor on the CH2 density that its LDs'
    composition gives, :mod:`~simulators.specimens.testis.lipids`: dietary and metabolic
    fatty-acid profile; LD density at most :data:`MAX_DROPLET_DENSITY`),
    ``droplet_diameter_sigma`` (lognormal sigma of droplet diameters).
    interstitium: ``interstitial_collagen`` / ``interstitial_chi2``,
    ``leydig_clusters_per_tubule``, ``leydig_cluster_cells`` (mean cells per cluster),
    ``leydig_cell_scale`` (cell size factor; hypertrophy), ``leydig_droplets_per_cell``,
    ``leydig_lipofuscin_per_cell``, ``leydig_droplet_density``, ``leydig_pigment``
    (lipofuscin transient absorption of Leydig cytoplasm).
    collagen: ``shg_rho`` (``chi_zzz / chi_zxx`` of the fibrillar collagen: how strongly its
    SHG depends on the laser polarisation; :data:`SHG_RHO_LOGNORMAL`).
    interstitium objects: ``capillaries_per_tubule`` /
    ``vessels_per_tubule`` (capillary and small-vessel profiles per tubule's worth of
    section area), ``macrophages_per_mm2`` (per mm^2 of section).
    """

    __test__ = False  # not a pytest test class despite the name

    phenotype: str = "normal"
    state_weights: tuple[float, ...] = MIXTURE_MEANS["normal"]
    center_um: tuple[float, float] = (0.0, 0.0)
    section_radii_um: tuple[float, float] = (2900.0, 2600.0)
    boundary_roughness: float = 0.12
    hole_fraction: float = 0.05
    hole_scale_um: float = 350.0
    section_thickness_um: float = 10.0
    artefact_seed: int = 0
    tubule_diameter_um: float = 205.0
    tubule_diameter_sd_um: float = 13.0
    diameter_range_um: tuple[float, float] = DIAMETER_LIMITS_UM
    wall_range_um: tuple[float, float] = WALL_LIMITS_UM
    axis_ratio_max: float = 3.0
    pitch_factor: float = 1.17
    interstitial_gap_um: float = 6.0
    packing_scale_min: float = 0.7
    wall_factor: float = 1.0
    gap_wall_um: float = 3.0
    droplet_diameter_sigma: float = 0.35
    droplet_density: float = 1.0
    interstitial_collagen: float = 0.15
    interstitial_chi2: float = 0.11
    leydig_clusters_per_tubule: float = 1.4
    leydig_cluster_cells: float = 6.0
    leydig_cell_scale: float = 1.0
    leydig_droplets_per_cell: float = 24.0
    leydig_lipofuscin_per_cell: float = 4.0
    leydig_droplet_density: float = 0.86
    leydig_pigment: float = 0.045
    shg_rho: float = SHG_RHO_LOGNORMAL[0]
    capillaries_per_tubule: float = 3.0
    vessels_per_tubule: float = 0.3
    macrophages_per_mm2: float = 25.0

    def __post_init__(self) -> None:
        check_phenotype(self.phenotype)
        for name in ("center_um", "section_radii_um", "diameter_range_um", "wall_range_um"):
            if len(getattr(self, name)) != 2:
                raise SettingsError(f"{name} must be a pair of numbers")
        w = self.state_weights
        if len(w) != len(STATE_NAMES):
            raise SettingsError(f"state_weights needs {len(STATE_NAMES)} weights "
                                f"({', '.join(STATE_NAMES)}), got {len(w)}")
        if min(w) < 0 or not math.isclose(sum(w), 1.0, abs_tol=1e-6):
            raise SettingsError(f"state_weights must be >= 0 and sum to 1, got {w!r}")
        for r in self.section_radii_um:
            check_range("section radius", r, 200.0, 20000.0, "um")
        check_range("boundary roughness", self.boundary_roughness, 0.0, 0.5)
        check_range("hole fraction", self.hole_fraction, 0.0, 0.5)
        check_range("hole scale", self.hole_scale_um, 50.0, 5000.0, "um")
        check_range("section thickness", self.section_thickness_um, 2.0, 50.0, "um")
        if int(self.artefact_seed) != self.artefact_seed or self.artefact_seed < 0:
            raise SettingsError(f"artefact_seed must be an integer >= 0, "
                                f"got {self.artefact_seed!r}")
        lo, hi = self.diameter_range_um
        check_range("tubule diameter lower limit", lo, 50.0, 400.0, "um")
        check_range("tubule diameter upper limit", hi, lo, 400.0, "um")
        check_range("tubule diameter", self.tubule_diameter_um, lo, hi, "um")
        check_range("tubule diameter sd", self.tubule_diameter_sd_um, 0.0, 100.0, "um")
        check_range("axis ratio max", self.axis_ratio_max, 1.0, 6.0)
        check_range("pitch factor", self.pitch_factor, 1.05, 3.0)
        check_range("interstitial gap", self.interstitial_gap_um, 0.0, 50.0, "um")
        check_range("packing scale min", self.packing_scale_min, 0.5, 1.0)
        wlo, whi = self.wall_range_um
        check_range("lamina propria lower limit", wlo, 1.0, 40.0, "um")
        check_range("lamina propria upper limit", whi, wlo, 40.0, "um")
        check_range("wall factor", self.wall_factor, 0.2, 5.0)
        check_range("gap wall thickness", self.gap_wall_um, 0.5, 10.0, "um")
        check_range("droplet diameter sigma", self.droplet_diameter_sigma, 0.0, 1.5)
        check_range("droplet density", self.droplet_density, 0.1, MAX_DROPLET_DENSITY)
        check_range("interstitial collagen", self.interstitial_collagen, 0.0, 1.0)
        check_range("interstitial chi2", self.interstitial_chi2, 0.0, 1.0)
        check_range("Leydig clusters per tubule", self.leydig_clusters_per_tubule, 0.0, 10.0)
        check_range("Leydig cells per cluster", self.leydig_cluster_cells, 1.0, 60.0)
        check_range("Leydig cell scale", self.leydig_cell_scale, 0.5, 2.0)
        check_range("Leydig droplets per cell", self.leydig_droplets_per_cell, 0.0, 200.0)
        check_range("Leydig lipofuscin granules per cell", self.leydig_lipofuscin_per_cell,
                    0.0, 50.0)
        check_range("Leydig droplet density", self.leydig_droplet_density, 0.1, 1.5)
        check_range("Leydig pigment", self.leydig_pigment, 0.0, 1.0)
        check_range("SHG tensor ratio chi_zzz/chi_zxx", self.shg_rho, *SHG_RHO_LOGNORMAL[2])
        check_range("capillaries per tubule", self.capillaries_per_tubule, 0.0, 20.0)
        check_range("small vessels per tubule", self.vessels_per_tubule, 0.0, 5.0)
        check_range("macrophages per mm^2", self.macrophages_per_mm2, 0.0, 1000.0)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TestisConfig":
        d = dict(data)
        for k in ("center_um", "section_radii_um", "diameter_range_um", "wall_range_um",
                  "state_weights"):
            if k in d:
                d[k] = tuple(d[k])
        return super().from_dict(d)

    @property
    def mean_diameter_factor(self) -> float:
        """Mixture-weighted mean of the states' diameter factors."""
        return float(sum(w * 0.5 * sum(STATES[s].diameter_factor)
                         for w, s in zip(self.state_weights, STATE_NAMES)))

    @classmethod
    def draw(cls, phenotype: str, seed: int) -> "TestisConfig":
        """A random patient of ``phenotype``: deterministic in (phenotype, seed).

        Histology (its rng stream): the state weights (:func:`draw_mixture`) and the
        patient-level lognormals (:data:`PATIENT_LOGNORMALS`). Preparation (a separate
        stream keyed by seed and phenotype): section outline, tears and their noise seed,
        section thickness (docs/physics-notes.md, testis phantom). The collagen's
        ``shg_rho`` (its own stream, :data:`SHG_RHO_LOGNORMAL`).
        """
        check_phenotype(phenotype)
        if int(seed) != seed or seed < 0:
            raise SettingsError(f"patient seed must be an integer >= 0, got {seed!r}")
        ph = PHENOTYPES.index(phenotype)
        rng = np.random.default_rng([int(seed), _S_PATIENT, ph])
        weights = draw_mixture(phenotype, rng)
        v: dict[str, Any] = {k: draw_lognormal(k, phenotype, rng) for k in PATIENT_LOGNORMALS}
        pitch_factor = 1.0 + v.pop("pitch_excess")
        sd_frac = float(rng.uniform(0.05, 0.08))
        rng_i = np.random.default_rng([int(seed), _S_INTERSTITIUM, ph])
        for k, (medians, sigma, (lo, hi)) in INTERSTITIUM_LOGNORMALS.items():
            v[k] = float(np.clip(medians[ph] * math.exp(sigma * rng_i.standard_normal()),
                                 lo, hi))
        art = np.random.default_rng([int(seed), _S_ARTEFACT, ph])
        med, sig, (lo, hi) = SHG_RHO_LOGNORMAL
        z = np.random.default_rng([int(seed), _S_SHG, ph]).standard_normal()
        rho = float(np.clip(med * math.exp(sig * z), lo, hi))
        return cls(
            phenotype=phenotype,
            state_weights=weights,
            section_radii_um=(float(art.uniform(2600, 3000)), float(art.uniform(2200, 2800))),
            boundary_roughness=float(art.uniform(0.08, 0.16)),
            hole_fraction=float(art.uniform(0.02, 0.1)),
            hole_scale_um=float(art.uniform(250.0, 450.0)),
            section_thickness_um=float(art.uniform(6.0, 14.0)),
            artefact_seed=int(art.integers(0, 2**31)),
            tubule_diameter_sd_um=sd_frac * v["tubule_diameter_um"],
            pitch_factor=pitch_factor,
            shg_rho=rho,
            **v,
        )
