"""One patient's testis section: phenotypes and the patient-to-patient distributions of
tubule size, lamina propria, epithelium, droplets and interstitium (docs/physics-notes.md,
testis phantom)."""

from __future__ import annotations

import dataclasses
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

#: rng stream of the patient draw
_S_PATIENT = 0x7E57

#: Patient-to-patient ranges per phenotype (uniform draws; docs/physics-notes.md, testis
#: phantom). NOA droplet density factors (x normal, capped at MAX_DROPLET_DENSITY): 1.6-1.8,
#: and 1.75-1.95 for SPG, whose few droplets are isolated (no overlapping clusters raise
#: their intensity) and slightly larger (0.8-1.0 um) to offset that, so that the paper's
#: per-tubule LD pattern comes out of ``srash quantify`` (the measurements behind these
#: values: docs/physics-notes.md, lipid droplets in NOA tubules).
_PATIENT_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "normal": dict(
        tubule_diameter_um=(190, 220), pitch_factor=(1.13, 1.2), wall_um=(5.0, 7.0),
        wall_variation=(0.1, 0.2), wall_gap_fraction=(0.0, 0.0), infolding_um=(0.3, 0.8),
        wall_collagen=(0.55, 0.7), wall_chi2=(0.35, 0.55), epithelium_um=(50, 62),
        lumen_irregularity=(0.08, 0.15), elongated_probability=(0.55, 0.8),
        droplet_area_fraction=(0.018, 0.04), droplet_diameter_um=(0.95, 1.2),
        droplet_density_factor=(1.0, 1.0), protein_droplet_area_fraction=(0.0, 0.0),
        interstitial_collagen=(0.12, 0.18), interstitial_chi2=(0.08, 0.14),
        leydig_clusters_per_tubule=(1.2, 1.6), leydig_cluster_cells=(5, 7),
        leydig_droplets_per_cell=(18, 30), leydig_pigment=(0.03, 0.06)),
    "NOA-SPT": dict(
        tubule_diameter_um=(170, 200), pitch_factor=(1.25, 1.38), wall_um=(13.0, 18.0),
        wall_variation=(0.25, 0.4), wall_gap_fraction=(0.1, 0.25), infolding_um=(2.0, 5.0),
        wall_collagen=(0.6, 0.75), wall_chi2=(0.45, 0.65), epithelium_um=(40, 52),
        lumen_irregularity=(0.15, 0.25), elongated_probability=(0.0, 0.0),
        droplet_area_fraction=(0.004, 0.011), droplet_diameter_um=(0.7, 0.9),
        droplet_density_factor=(1.6, 1.8), protein_droplet_area_fraction=(0.004, 0.01),
        interstitial_collagen=(0.16, 0.22), interstitial_chi2=(0.12, 0.2),
        leydig_clusters_per_tubule=(1.6, 2.0), leydig_cluster_cells=(10, 15),
        leydig_droplets_per_cell=(25, 40), leydig_pigment=(0.05, 0.09)),
    "NOA-SPG": dict(
        tubule_diameter_um=(165, 195), pitch_factor=(1.28, 1.4), wall_um=(13.0, 19.0),
        wall_variation=(0.25, 0.4), wall_gap_fraction=(0.1, 0.25), infolding_um=(2.0, 6.0),
        wall_collagen=(0.6, 0.78), wall_chi2=(0.45, 0.7), epithelium_um=(22, 32),
        lumen_irregularity=(0.15, 0.25), elongated_probability=(0.0, 0.0),
        droplet_area_fraction=(0.0, 0.0008), droplet_diameter_um=(0.8, 1.0),
        droplet_density_factor=(1.75, 1.95), protein_droplet_area_fraction=(0.0, 0.0),
        interstitial_collagen=(0.16, 0.24), interstitial_chi2=(0.12, 0.22),
        leydig_clusters_per_tubule=(1.6, 2.0), leydig_cluster_cells=(11, 16),
        leydig_droplets_per_cell=(25, 40), leydig_pigment=(0.05, 0.09)),
    "NOA-SCO": dict(
        tubule_diameter_um=(115, 138), pitch_factor=(1.45, 1.65), wall_um=(15.0, 21.0),
        wall_variation=(0.2, 0.35), wall_gap_fraction=(0.05, 0.2), infolding_um=(3.0, 7.0),
        wall_collagen=(0.7, 0.85), wall_chi2=(0.6, 0.8), epithelium_um=(24, 32),
        lumen_irregularity=(0.15, 0.25), elongated_probability=(0.0, 0.0),
        droplet_area_fraction=(0.006, 0.016), droplet_diameter_um=(0.8, 1.1),
        droplet_density_factor=(1.6, 1.8), protein_droplet_area_fraction=(0.0, 0.0),
        interstitial_collagen=(0.3, 0.45), interstitial_chi2=(0.3, 0.5),
        leydig_clusters_per_tubule=(1.7, 2.0), leydig_cluster_cells=(12, 19),
        leydig_droplets_per_cell=(25, 40), leydig_pigment=(0.05, 0.1)),
}

#: Tubule-to-tubule limits of the mean lamina propria thickness (um); NOA walls are thick.
_WALL_RANGE = {"normal": (4.0, 8.0), "NOA-SPT": (11.0, 25.0), "NOA-SPG": (11.0, 25.0),
               "NOA-SCO": (11.0, 25.0)}
_DIAMETER_RANGE = {"normal": (150.0, 250.0), "NOA-SPT": (150.0, 250.0),
                   "NOA-SPG": (150.0, 250.0), "NOA-SCO": (100.0, 150.0)}

#: Germ-cell populations present per phenotype (Sertoli and myoid cells are always there).
GERM_CELLS: dict[str, tuple[str, ...]] = {
    "normal": ("spermatogonia", "spermatocytes", "round_spermatids", "elongated_spermatids"),
    "NOA-SPT": ("spermatogonia", "spermatocytes"),
    "NOA-SPG": ("spermatogonia",),
    "NOA-SCO": (),
}


def check_phenotype(phenotype: str) -> str:
    if phenotype not in PHENOTYPES:
        raise SettingsError(f"unknown testis phenotype {phenotype!r}; allowed: "
                            + ", ".join(PHENOTYPES))
    return phenotype


@dataclasses.dataclass(frozen=True)
class TestisConfig(ConfigMixin):
    """Parameters of one patient's section (lengths in um, concentrations relative to pure).

    Draw a patient with :meth:`draw`; the defaults are a typical normal testis. Fields:

    section: ``center_um`` (x, y), ``section_radii_um`` (semi-axes of the outline),
    ``boundary_roughness`` (relative outline irregularity), ``hole_fraction`` (area fraction
    of tears, where interstitium is missing and tubules are dropped), ``hole_scale_um``,
    ``section_thickness_um`` (provenance for the forward model; the composition is the
    focal plane).
    tubules: ``tubule_diameter_um`` (patient mean of the true, unstretched outer diameter)
    and ``tubule_diameter_sd_um``, ``diameter_range_um`` (hard limits), ``axis_ratio_max``
    (oblique cut), ``pitch_factor`` (lattice pitch / mean diameter: sets how much
    interstitium), ``interstitial_gap_um`` (least gap between tubules).
    wall: ``wall_um`` / ``wall_sd_um`` (lamina propria thickness, patient mean and
    tubule-to-tubule sd, clipped to ``wall_range_um``), ``wall_variation`` (relative local
    +- variation),
    ``wall_gap_fraction`` (fraction of the circumference where the collagen is truncated to
    ``gap_wall_um``, SHG interrupted), ``infolding_um`` (+- basement-membrane waviness),
    ``wall_collagen`` / ``wall_chi2``.
    epithelium: ``epithelium_um`` (height; the lumen is what is left), ``lumen_min_um`` and
    ``lumen_max_um`` (radius limits), ``lumen_irregularity``, ``elongated_probability``
    (fraction of tubule profiles at a stage with elongated spermatids).
    droplets: ``droplet_area_fraction`` (in-focus cross-section area / epithelium area),
    ``droplet_diameter_um`` (lognormal median) and ``droplet_diameter_sigma``,
    ``droplet_density`` (lipid mass fraction of an epithelial LD; NOA x 1.6-1.95, <= 1.3),
    ``protein_droplet_area_fraction`` (SPT).
    interstitium: ``interstitial_collagen`` / ``interstitial_chi2``,
    ``leydig_clusters_per_tubule``, ``leydig_cluster_cells`` (mean cells per cluster),
    ``leydig_droplets_per_cell``, ``leydig_droplet_density``, ``leydig_pigment``
    (lipofuscin transient absorption of Leydig cytoplasm).
    """

    __test__ = False  # not a pytest test class despite the name

    phenotype: str = "normal"
    center_um: tuple[float, float] = (0.0, 0.0)
    section_radii_um: tuple[float, float] = (2900.0, 2600.0)
    boundary_roughness: float = 0.12
    hole_fraction: float = 0.05
    hole_scale_um: float = 350.0
    section_thickness_um: float = 10.0
    tubule_diameter_um: float = 200.0
    tubule_diameter_sd_um: float = 14.0
    diameter_range_um: tuple[float, float] = (150.0, 250.0)
    wall_range_um: tuple[float, float] = (4.0, 8.0)
    axis_ratio_max: float = 1.5
    pitch_factor: float = 1.25
    interstitial_gap_um: float = 6.0
    wall_um: float = 6.0
    wall_sd_um: float = 0.6
    wall_variation: float = 0.15
    wall_gap_fraction: float = 0.0
    gap_wall_um: float = 3.0
    infolding_um: float = 0.5
    wall_collagen: float = 0.62
    wall_chi2: float = 0.45
    epithelium_um: float = 65.0
    lumen_min_um: float = 15.0
    lumen_max_um: float = 40.0
    lumen_irregularity: float = 0.12
    elongated_probability: float = 0.65
    droplet_area_fraction: float = 0.02
    droplet_diameter_um: float = 1.05
    droplet_diameter_sigma: float = 0.35
    droplet_density: float = 0.82
    protein_droplet_area_fraction: float = 0.0
    interstitial_collagen: float = 0.15
    interstitial_chi2: float = 0.11
    leydig_clusters_per_tubule: float = 1.0
    leydig_cluster_cells: float = 6.0
    leydig_droplets_per_cell: float = 24.0
    leydig_droplet_density: float = 0.85
    leydig_pigment: float = 0.045

    def __post_init__(self) -> None:
        check_phenotype(self.phenotype)
        for name in ("center_um", "section_radii_um", "diameter_range_um", "wall_range_um"):
            if len(getattr(self, name)) != 2:
                raise SettingsError(f"{name} must be a pair of numbers")
        for r in self.section_radii_um:
            check_range("section radius", r, 200.0, 20000.0, "um")
        check_range("boundary roughness", self.boundary_roughness, 0.0, 0.5)
        check_range("hole fraction", self.hole_fraction, 0.0, 0.5)
        check_range("hole scale", self.hole_scale_um, 50.0, 5000.0, "um")
        check_range("section thickness", self.section_thickness_um, 2.0, 50.0, "um")
        lo, hi = self.diameter_range_um
        check_range("tubule diameter lower limit", lo, 50.0, 400.0, "um")
        check_range("tubule diameter upper limit", hi, lo, 400.0, "um")
        check_range("tubule diameter", self.tubule_diameter_um, lo, hi, "um")
        check_range("tubule diameter sd", self.tubule_diameter_sd_um, 0.0, 100.0, "um")
        check_range("axis ratio max", self.axis_ratio_max, 1.0, 3.0)
        check_range("pitch factor", self.pitch_factor, 1.05, 3.0)
        check_range("interstitial gap", self.interstitial_gap_um, 0.0, 50.0, "um")
        wlo, whi = self.wall_range_um
        check_range("lamina propria lower limit", wlo, 1.0, 40.0, "um")
        check_range("lamina propria upper limit", whi, wlo, 40.0, "um")
        check_range("lamina propria thickness", self.wall_um, wlo, whi, "um")
        check_range("lamina propria sd", self.wall_sd_um, 0.0, 10.0, "um")
        check_range("wall variation", self.wall_variation, 0.0, 0.8)
        check_range("wall gap fraction", self.wall_gap_fraction, 0.0, 0.9)
        check_range("gap wall thickness", self.gap_wall_um, 0.5, 10.0, "um")
        check_range("infolding", self.infolding_um, 0.0, 15.0, "um")
        check_range("wall collagen", self.wall_collagen, 0.0, 1.0)
        check_range("wall chi2", self.wall_chi2, 0.0, 1.0)
        check_range("epithelium height", self.epithelium_um, 5.0, 150.0, "um")
        check_range("lumen min radius", self.lumen_min_um, 0.0, 100.0, "um")
        check_range("lumen max radius", self.lumen_max_um, self.lumen_min_um, 150.0, "um")
        check_range("lumen irregularity", self.lumen_irregularity, 0.0, 0.6)
        check_range("elongated spermatid probability", self.elongated_probability, 0.0, 1.0)
        check_range("droplet area fraction", self.droplet_area_fraction, 0.0, 0.2)
        check_range("droplet diameter", self.droplet_diameter_um, 0.2, 3.0, "um")
        check_range("droplet diameter sigma", self.droplet_diameter_sigma, 0.0, 1.5)
        check_range("droplet density", self.droplet_density, 0.1, 1.5)
        check_range("protein droplet area fraction", self.protein_droplet_area_fraction,
                    0.0, 0.2)
        check_range("interstitial collagen", self.interstitial_collagen, 0.0, 1.0)
        check_range("interstitial chi2", self.interstitial_chi2, 0.0, 1.0)
        check_range("Leydig clusters per tubule", self.leydig_clusters_per_tubule, 0.0, 10.0)
        check_range("Leydig cells per cluster", self.leydig_cluster_cells, 1.0, 60.0)
        check_range("Leydig droplets per cell", self.leydig_droplets_per_cell, 0.0, 200.0)
        check_range("Leydig droplet density", self.leydig_droplet_density, 0.1, 1.5)
        check_range("Leydig pigment", self.leydig_pigment, 0.0, 1.0)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TestisConfig":
        d = dict(data)
        for k in ("center_um", "section_radii_um", "diameter_range_um", "wall_range_um"):
            if k in d:
                d[k] = tuple(d[k])
        return super().from_dict(d)

    @classmethod
    def draw(cls, phenotype: str, seed: int) -> "TestisConfig":
        """A random patient of ``phenotype``: deterministic in (phenotype, seed).

        Tubule diameter, pitch (interstitium), lamina propria thickness and its
        irregularity, epithelium height, droplet density/size/lipid content, section
        outline, holes and thickness vary from patient to patient within the phenotype's
        ranges (docs/physics-notes.md, testis phantom).
        """
        check_phenotype(phenotype)
        if int(seed) != seed or seed < 0:
            raise SettingsError(f"patient seed must be an integer >= 0, got {seed!r}")
        rng = np.random.default_rng([int(seed), _S_PATIENT, PHENOTYPES.index(phenotype)])
        rngs = _PATIENT_RANGES[phenotype]
        # keyword arguments of float fields, keyed by field name (hence Any for **v below)
        v: dict[str, Any] = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in rngs.items()}
        dfac = v.pop("droplet_density_factor")
        base_density = float(rng.uniform(0.75, 0.88))
        lo, hi = _DIAMETER_RANGE[phenotype]
        sco = phenotype == "NOA-SCO"
        return cls(
            phenotype=phenotype,
            section_radii_um=(float(rng.uniform(2600, 3000)), float(rng.uniform(2200, 2800))),
            boundary_roughness=float(rng.uniform(0.08, 0.16)),
            hole_fraction=float(rng.uniform(0.02, 0.1)),
            section_thickness_um=float(rng.uniform(6.0, 14.0)),
            tubule_diameter_sd_um=float(rng.uniform(0.05, 0.08)) * v["tubule_diameter_um"],
            diameter_range_um=(lo, hi),
            wall_range_um=_WALL_RANGE[phenotype],
            wall_sd_um=0.1 * v["wall_um"],
            lumen_min_um=6.0 if sco else 15.0,
            lumen_max_um=25.0 if sco else 40.0 if phenotype == "normal" else 60.0,
            droplet_density=min(MAX_DROPLET_DENSITY, base_density * dfac),
            leydig_droplet_density=float(rng.uniform(0.8, 0.92)),
            **v,
        )
