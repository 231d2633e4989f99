"""Frozen section of human seminiferous tubules (testis biopsy), procedural and lazy.

Anatomy and numbers: ``physics.md`` sections 5.3 and 7. World coordinates are stage
micrometres; the section is a few millimetres across with an irregular outline and tears
(holes). Nothing is built for the whole section: tubules sit one per cell of a staggered,
jittered lattice and are generated on demand from ``rng_for(stream, i, j)``; each tubule's
contents (nuclei, lipid and protein droplets) and each cell's Leydig clusters come from
their own generator and are kept in small LRU caches. Every field that is not an object
(texture, wall thickness variation, lumen outline, section outline, holes) is value noise on
a world-aligned lattice, so any window renders the same values for the same world pixel.

Geometry of a tubule: an oblique cut of a cylinder of radius ``b`` is an ellipse with semi-axes
``a = ratio * b`` and ``b``. Layers (lamina propria, epithelium, lumen) are laid out in the
*unstretched* frame (``u / ratio, v``), i.e. at depth ``b - r'`` from the outer surface, so
they stretch with the cut like the real wall does; cells and droplets (spheres) stay round.

Phenotypes (``physics.md`` section 7, paper rules):

``normal``
    full spermatogenesis, thin lamina propria (4-8 um), many large lipid droplets (LDs).
``NOA-SPT``
    arrest at the spermatocyte stage: no spermatids, thick truncated lamina propria,
    fewer, smaller, denser LDs, plus protein droplets (1-3 um).
``NOA-SPG``
    arrest at the spermatogonial stage: thin epithelium, almost no LDs.
``NOA-SCO``
    Sertoli-cell-only: small tubules (100-150 um), no germ cells, empty lumen, thick hyaline
    wall, interstitial fibrosis. Sertoli cells keep some LDs spread over their height
    (design choice: 0.6-1.6 % in-focus area, ~0.4-0.8 % labelled, between SPT and normal;
    SCO Sertoli cells are often lipid laden), as dense as the other NOA droplets.

Truth labels: :class:`Label.LIPID_DROPLET` where the droplet's in-focus volume fraction
(``sphere_map`` partial volume) is >= 0.25, so sub-resolution or out-of-focus droplets stay
unlabelled; labelled LD area in the epithelium is about 0.7 of ``droplet_area_fraction``
(normal ~1.2-2.8 %, SPT ~0.3-0.6 %, SPG < 0.06 % at 0.3 um pixels).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_range
from simulators.optics import Objective
from simulators.spectra import SPECIES
from simulators.specimens.base import Composition, Label, Specimen, Window
from simulators.specimens._raster import _hash2, sphere_map

#: Allowed phenotypes, in the order used for seeding.
PHENOTYPES: tuple[str, ...] = ("normal", "NOA-SPT", "NOA-SPG", "NOA-SCO")

#: Quantiles (0, 0.05, ..., 1) of one-octave value noise, measured on 4e6 samples; turns an
#: "area fraction above the level" into a noise level.
_NOISE_Q = np.array([0.0013, 0.1481, 0.2095, 0.2579, 0.2991, 0.337, 0.3721, 0.4055, 0.4378,
                     0.4696, 0.501, 0.5322, 0.5636, 0.5954, 0.6285, 0.6636, 0.7012, 0.7425,
                     0.7904, 0.8513, 0.9996])

#: Largest epithelial LD lipid density (x pure triglyceride): CH2-richer droplets (cholesteryl
#: esters, saturated chains) read brighter, but 1.5 drove the densest NOA droplets to
#: ~97 % of the lock-in's 10 V full scale at the default 2 mV sensitivity (overload); at 1.3
#: the brightest stay below ~9 V.
MAX_DROPLET_DENSITY: float = 1.3

#: Axial FWHM (um) of the SRS PSF at the paper's lipid channel: droplet partial volume.
FWHM_Z_UM: float = Objective().srs_fwhm_um(795.9, 1031.0)[1]

_F32 = np.float32
# noise field ids (seed offsets)
_N_WALL, _N_TEX, _N_SECTION, _N_HOLE = 1, 4, 6, 7
# rng streams
_S_TUBULE, _S_CONTENT, _S_LEYDIG, _S_PATIENT = 1, 2, 3, 0x7E57


def _noise_level(fraction_above: float) -> float:
    """Noise level exceeded on ``fraction_above`` of the plane (one-octave value noise)."""
    return float(np.interp(1.0 - fraction_above, np.linspace(0.0, 1.0, 21), _NOISE_Q))


# --------------------------------------------------------------------------------------
# value noise: same lattice and hash as raster.value_noise, evaluated cheaply
# --------------------------------------------------------------------------------------

def _smooth(t: NDArray) -> NDArray:
    return t * t * (3.0 - 2.0 * t)


def noise_grid(window: Window, seed: int, scale_um: float, octaves: int = 1
               ) -> NDArray[np.float32]:
    """:func:`~.raster.value_noise` on a window, computed separably (float32, (ny, nx)).

    Hashes only the lattice points that cover the window and interpolates rows then
    columns with gathers, about 5 full-window operations per octave instead of ~60.
    Values agree with ``value_noise`` to float32 rounding.
    """
    total = None
    norm = 0.0
    amp = 1.0
    for o in range(octaves):
        f = float(2**o)
        gx = (window.xs() / scale_um) * f
        gy = (window.ys() / scale_um) * f
        ix = np.floor(gx).astype(np.int64)
        iy = np.floor(gy).astype(np.int64)
        tx = _smooth(gx - ix)
        ty = _smooth(gy - iy).astype(_F32)[:, None]
        lx, ly = ix.min(), iy.min()
        IX, IY = np.meshgrid(np.arange(lx, ix.max() + 2), np.arange(ly, iy.max() + 2))
        h = _hash2(IX, IY, seed * 31 + o)  # (Ly, Lx)
        cx = ix - lx
        g = (h[:, cx] * (1.0 - tx) + h[:, cx + 1] * tx).astype(_F32)  # (Ly, nx)
        ry = iy - ly
        n = g[ry]
        n *= (1.0 - ty)
        n += g[ry + 1] * ty
        if total is None:
            total = n if amp == 1.0 else n * _F32(amp)
        else:
            total += _F32(amp) * n
        norm += amp
        amp *= 0.5
    assert total is not None
    if octaves > 1:
        total *= _F32(1.0 / norm)
    return total


def noise_points(x: NDArray, y: NDArray, seed: int, scale_um: float, octaves: int = 1
                 ) -> NDArray[np.float64]:
    """:func:`~.raster.value_noise` evaluated at arbitrary world points (um), float64."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    total = np.zeros(np.broadcast(x, y).shape)
    norm = 0.0
    amp = 1.0
    for o in range(octaves):
        f = float(2**o)
        gx = (x / scale_um) * f
        gy = (y / scale_um) * f
        ix = np.floor(gx).astype(np.int64)
        iy = np.floor(gy).astype(np.int64)
        tx = _smooth(gx - ix)
        ty = _smooth(gy - iy)
        s = seed * 31 + o
        v00 = _hash2(ix, iy, s)
        v10 = _hash2(ix + 1, iy, s)
        v01 = _hash2(ix, iy + 1, s)
        v11 = _hash2(ix + 1, iy + 1, s)
        total += amp * ((v00 * (1 - tx) + v10 * tx) * (1 - ty) + (v01 * (1 - tx) + v11 * tx) * ty)
        norm += amp
        amp *= 0.5
    return total / norm


def _noise_max(window: Window, seed: int, scale_um: float) -> float:
    """Upper bound of one-octave noise on a window (max over the lattice points used)."""
    x0, x1, y0, y1 = window.extent_um
    ix = np.arange(math.floor(x0 / scale_um), math.floor(x1 / scale_um) + 2)
    iy = np.arange(math.floor(y0 / scale_um), math.floor(y1 / scale_um) + 2)
    IX, IY = np.meshgrid(ix, iy)
    return float(_hash2(IX, IY, seed * 31).max())


# --------------------------------------------------------------------------------------
# vectorised ellipse stamping (nuclei, Leydig cell bodies)
# --------------------------------------------------------------------------------------

#: Stamp half-widths (pixels): ~15 % steps, so a stamp box wastes at most ~30 % of its area.
_BUCKETS = np.unique(np.concatenate([np.arange(1, 9), np.round(8 * 1.15 ** np.arange(1, 40))])
                     ).astype(np.int64)


def stamp_ellipses(window: Window, x: NDArray, y: NDArray, a: NDArray, b: NDArray,
                   angle: NDArray, weights: Sequence[NDArray]
                   ) -> tuple[tuple[slice, slice], list[NDArray[np.float32]]] | None:
    """Anti-aliased coverage of many filled ellipses, summed with per-ellipse weights.

    Vectorised counterpart of :func:`~.raster.ellipse_coverage` for thousands of small
    ellipses (nuclei, cells): each ellipse is evaluated on its own square pixel box (boxes
    grouped by size), with the edge ramped over one pixel using the normalised radius
    ``rho^2`` and the ellipse's mean radius, and scattered with ``np.add.at`` (sequential,
    so the result is deterministic and the same world pixel gets the same sum in any window).

    Parameters
    ----------
    window : Window
    x, y, a, b, angle : (n,) arrays
        Centres (um), semi-axes (um) and rotation of the ``a`` axis from +x (rad).
    weights : sequence of (n,) arrays
        One output map per weight vector: ``sum_i coverage_i * w_i``.

    Returns
    -------
    ``((rows, cols), maps)``: float32 maps over the pixel box the ellipses touch, or None
    when none touches the window.
    """
    p = window.pixel_um
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    angle = np.asarray(angle, float)
    # farthest reach of the edge ramp: rho^2 < 1 + p / sqrt(a b) along the long axis
    rmax = np.maximum(a, b) * np.sqrt(1.0 + p / np.sqrt(a * b))
    x0, x1, y0, y1 = window.extent_um
    keep = (x + rmax > x0 - p) & (x - rmax < x1 + p) & (y + rmax > y0 - p) & (y - rmax < y1 + p)
    if not keep.any():
        return None
    x, y, a, b, angle, rmax = x[keep], y[keep], a[keep], b[keep], angle[keep], rmax[keep]
    ws = [np.asarray(w, float)[keep] for w in weights]
    ci = np.floor((x - window.x_um) / p).astype(np.int64)
    ri = np.floor((y - window.y_um) / p).astype(np.int64)
    half = np.ceil(rmax / p).astype(np.int64) + 1
    c_lo = max(0, int((ci - half).min()))
    c_hi = min(window.nx, int((ci + half).max()) + 1)
    r_lo = max(0, int((ri - half).min()))
    r_hi = min(window.ny, int((ri + half).max()) + 1)
    if c_lo >= c_hi or r_lo >= r_hi:
        return None
    bucket = _BUCKETS[np.minimum(np.searchsorted(_BUCKETS, half), _BUCKETS.size - 1)]
    # padded canvas: every stamp pixel has a valid index (a touching stamp's centre lies
    # within half + 1 pixels of the box), the border is cropped at the end
    pad = 2 * int(bucket.max()) + 2
    cw = (c_hi - c_lo) + 2 * pad
    ch = (r_hi - r_lo) + 2 * pad
    canvases = [np.zeros(ch * cw, _F32) for _ in ws]
    ca = np.cos(angle)
    sa = np.sin(angle)
    # edge ramp: 1 - rho^2 ~ 2 (1 - rho) near the edge; distance ~ (1 - rho) sqrt(a b)
    kk = np.sqrt(a * b) / (2.0 * p)
    for hb in np.unique(bucket):
        sel = np.nonzero(bucket == hb)[0]
        k = 2 * int(hb) + 1
        step = max(1, int(2_000_000 // (k * k)))
        offs = np.arange(-hb, hb + 1)
        for s0 in range(0, sel.size, step):
            g = sel[s0:s0 + step]
            cc = ci[g][:, None] + offs[None, :]  # (n, k)
            rr = ri[g][:, None] + offs[None, :]
            dx = (window.x_um + (cc + 0.5) * p - x[g][:, None])[:, None, :]  # (n, 1, k)
            dy = (window.y_um + (rr + 0.5) * p - y[g][:, None])[:, :, None]  # (n, k, 1)
            ia = (1.0 / a[g])[:, None, None]
            ib = (1.0 / b[g])[:, None, None]
            cg, sg = ca[g][:, None, None], sa[g][:, None, None]
            u = (dx * (cg * ia)).astype(_F32) + (dy * (sg * ia)).astype(_F32)
            v = (dy * (cg * ib)).astype(_F32) - (dx * (sg * ib)).astype(_F32)
            u *= u
            v *= v
            u += v  # rho^2
            kg = kk[g].astype(_F32)[:, None, None]
            u *= -kg
            u += kg + _F32(0.5)
            cov = np.clip(u, 0.0, 1.0, out=u)
            flat = ((rr - r_lo + pad) * cw)[:, :, None] + (cc - c_lo + pad)[:, None, :]
            nz = np.flatnonzero(cov)
            flat = flat.reshape(-1)[nz]
            cov = cov.reshape(-1)[nz]
            own = nz // (k * k)  # stamp of each element
            for canvas, w in zip(canvases, ws):
                wg = w[g].astype(_F32)
                np.add.at(canvas, flat, cov if np.all(wg == 1) else cov * wg[own])
    bh, bw = r_hi - r_lo, c_hi - c_lo
    maps = [cv.reshape(ch, cw)[pad:pad + bh, pad:pad + bw] for cv in canvases]
    return (slice(r_lo, r_hi), slice(c_lo, c_hi)), maps


# --------------------------------------------------------------------------------------
# configuration (one patient)
# --------------------------------------------------------------------------------------

#: Patient-to-patient ranges per phenotype (uniform draws). Tags: physics.md section 7.
#: NOA droplet density factors (x normal, capped at MAX_DROPLET_DENSITY): 1.6-1.8, and
#: 1.75-1.95 for SPG, whose few droplets are isolated (no overlapping clusters raise their
#: measured intensity) and slightly larger (0.8-1.0 um) to offset that: with these the
#: paper's per-tubule LD pattern (NOA mean LD intensity above normal despite smaller
#: droplets, which partial volume dims; SPT ~ SPG) comes out of ``srash quantify``
#: (issue 7). With the earlier 1.3-1.5 and SPG diameters 0.6-0.8 um, partial volume
#: cancelled the density: SPT vs normal was not significant and SPG was dimmer than SPT.
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


def _check_phenotype(phenotype: str) -> str:
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
        _check_phenotype(self.phenotype)
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
        ranges (``physics.md`` section 7).
        """
        _check_phenotype(phenotype)
        if int(seed) != seed or seed < 0:
            raise SettingsError(f"patient seed must be an integer >= 0, got {seed!r}")
        rng = np.random.default_rng([int(seed), _S_PATIENT, PHENOTYPES.index(phenotype)])
        rngs = _PATIENT_RANGES[phenotype]
        v = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in rngs.items()}
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


# --------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Tubule(ConfigMixin):
    """Geometry of one seminiferous-tubule profile (world um).

    ``a_um`` / ``b_um``: semi-major / semi-minor axes of the outer (lamina propria)
    outline, ``angle_rad`` the direction of ``a``; ``b_um`` is the true tubule radius (the
    cut stretches the profile by ``a/b`` along ``angle``). ``wall_um``: mean lamina propria
    thickness; ``lumen_um``: mean lumen radius (unstretched frame). ``id`` is the value in
    :attr:`Composition.instance`; ``cell`` the lattice indices it was generated from;
    ``elongated``: the profile is at a stage with elongated spermatids (normal only).
    """

    id: int
    cell: tuple[int, int]
    cx_um: float
    cy_um: float
    a_um: float
    b_um: float
    angle_rad: float
    wall_um: float
    lumen_um: float
    elongated: bool

    @property
    def diameter_um(self) -> float:
        """True (unstretched) outer diameter, 2 b."""
        return 2.0 * self.b_um

    @property
    def axis_ratio(self) -> float:
        """a / b (1 for a transverse cut)."""
        return self.a_um / self.b_um

    def perimeter_um(self, inset_um: float = 0.0) -> float:
        """Ramanujan perimeter of the outline shrunk by ``inset_um`` in the unstretched frame."""
        r = self.a_um / self.b_um
        bb = self.b_um - inset_um
        a, b = r * bb, bb
        h = ((a - b) / (a + b)) ** 2
        return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))

    def to_world(self, rho: NDArray, phi: NDArray) -> tuple[NDArray, NDArray]:
        """World (x, y) of unstretched-frame polar points (radius ``rho`` um, angle ``phi``)."""
        u = self.axis_ratio * rho * np.cos(phi)
        v = rho * np.sin(phi)
        ca, sa = math.cos(self.angle_rad), math.sin(self.angle_rad)
        return self.cx_um + u * ca - v * sa, self.cy_um + u * sa + v * ca

    def radius_at(self, x: NDArray, y: NDArray) -> NDArray:
        """Unstretched-frame radius r' (um) of world points; depth from the outline is b - r'."""
        dx, dy = np.asarray(x) - self.cx_um, np.asarray(y) - self.cy_um
        ca, sa = math.cos(self.angle_rad), math.sin(self.angle_rad)
        u = (dx * ca + dy * sa) / self.axis_ratio
        v = -dx * sa + dy * ca
        return np.hypot(u, v)


# --------------------------------------------------------------------------------------
# the specimen
# --------------------------------------------------------------------------------------

def _cat(parts: list[NDArray], width: int) -> NDArray:
    parts = [q for q in parts if q.shape[0]]
    return np.concatenate(parts) if parts else np.empty((0, width))


def _clear(comp: Composition) -> None:
    for v in (*comp.concentrations.values(), comp.chi2, comp.pigment, comp.labels,
              comp.instance):
        v[...] = 0


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """Shared worker pool for banded rendering (created on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2)),
                                       thread_name_prefix="testis-render")
        return _POOL


def _spheres(window: Window, sph: NDArray, split_um: float = 0.6) -> NDArray[np.float32]:
    """:func:`~.raster.sphere_map` of rows (x, y, r, z, weight), in two size groups.

    ``sphere_map`` sizes every sphere's pixel box by the largest radius; calling it once
    for the small (r <= ``split_um``) and once for the large spheres halves the work.
    """
    small = sph[:, 2] <= split_um
    out = None
    for part in (sph[small], sph[~small]):
        if part.shape[0]:
            m = sphere_map(window, part[:, 0], part[:, 1], part[:, 2], fwhm_z_um=FWHM_Z_UM,
                           z_um=part[:, 3], weights=part[:, 4])
            if out is None:
                out = m
            else:
                out += m
    assert out is not None
    return out


def _touching(spheres: NDArray, window: Window) -> NDArray:
    """Rows (x, y, r, ...) of ``spheres`` whose disc can touch the window's pixels."""
    x0, x1, y0, y1 = window.extent_um
    p = window.pixel_um
    x, y, r = spheres[:, 0], spheres[:, 1], spheres[:, 2] + p
    return spheres[(x + r > x0) & (x - r < x1) & (y + r > y0) & (y - r < y1)]


# material table (mass fractions relative to pure references)
_EPI = dict(protein=0.24, lipid=0.04, water=0.70)
_NUC = dict(protein=0.20, lipid=0.01, water=0.62)
_LEY = dict(protein=0.30, lipid=0.07, water=0.62)
_INT = dict(protein=0.08, lipid=0.01, water=0.82)
_WALL = dict(protein=0.12, lipid=0.01, water=0.55)
_PDROP = dict(protein=0.78, lipid=0.03, water=0.25)
_LIPID_LABEL_MIN = 0.25  #: LD label where the in-focus lipid fraction (partial volume) >= this


class TestisSection(Specimen):
    """Human testis frozen section: seminiferous tubules, interstitium, Leydig cells.

    Parameters
    ----------
    seed : int
        Specimen seed; with ``phenotype`` it also draws the patient (:meth:`TestisConfig.draw`).
    phenotype : str
        One of :data:`PHENOTYPES`.
    config : TestisConfig, optional
        Explicit patient parameters (its ``phenotype`` must equal ``phenotype``).
    threads : int, optional (keyword)
        Row bands rendered in parallel for windows of >= 250k pixels; default
        ``min(2, cpu_count)``. Results do not depend on it (beyond float rounding).

    Notes
    -----
    Rendering cost is proportional to the window, never to the section: on a 2-core
    machine a 1200 x 1200 window at 0.3 um takes ~0.15 s on one thread and ~0.085 s on
    two once the tubules it shows are cached (~0.2-0.3 s cold).
    """

    kind = "testis"
    __test__ = False  # not a pytest test class despite the name

    def __init__(self, seed: int, phenotype: str = "normal",
                 config: TestisConfig | None = None, *, threads: int | None = None) -> None:
        super().__init__(seed)
        if threads is None:
            threads = min(2, os.cpu_count() or 1)
        if int(threads) != threads or threads < 1:
            raise SettingsError(f"threads must be an integer >= 1, got {threads!r}")
        #: row bands rendered in parallel for windows of >= 250k pixels (1: no threads)
        self.threads = int(threads)
        _check_phenotype(phenotype)
        if config is None:
            config = TestisConfig.draw(phenotype, self.seed)
        elif not isinstance(config, TestisConfig):
            raise SettingsError(f"config must be a TestisConfig, got {type(config).__name__}")
        elif config.phenotype != phenotype:
            raise SettingsError(f"config phenotype {config.phenotype!r} differs from "
                                f"phenotype {phenotype!r}; pass the same one")
        self.phenotype = phenotype
        self.config = config
        c = config
        self._pitch = c.pitch_factor * c.tubule_diameter_um
        self._row = self._pitch * math.sqrt(3.0) / 2.0
        self._jitter = 0.1 * self._pitch
        self._a_max = 0.5 * c.diameter_range_um[1] * c.axis_ratio_max
        # Leydig clusters stay within this of their cell's lattice voids (see _make_leydig)
        self._ley_margin = 30.0 + 10.0 * math.sqrt(4.0 * c.leydig_cluster_cells + 1.0) + 12.0
        self._reach = max(self._a_max, 0.5 * self._pitch + self._ley_margin) + self._jitter
        self._gap_level = _noise_level(c.wall_gap_fraction) if c.wall_gap_fraction > 0 else 2.0
        self._hole_level = _noise_level(c.hole_fraction) if c.hole_fraction > 0 else 2.0
        cx, cy = c.center_um
        rx, ry = c.section_radii_um
        g = 1.0 + c.boundary_roughness
        self._extent = (cx - rx * g, cx + rx * g, cy - ry * g, cy + ry * g)
        self._imax = int(math.ceil(rx * g / self._pitch)) + 2
        self._jmax = int(math.ceil(ry * g / self._row)) + 2
        self._germ = GERM_CELLS[phenotype]
        # per-instance caches (deterministic, so eviction never changes results)
        self._raw = functools.lru_cache(maxsize=8192)(self._make_raw)
        self._tubule = functools.lru_cache(maxsize=8192)(self._make_tubule)
        self._contents = functools.lru_cache(maxsize=128)(self._make_contents)
        self._leydig = functools.lru_cache(maxsize=512)(self._make_leydig)

    # ------------------------------------------------------------------ geometry
    @property
    def extent_um(self) -> tuple[float, float, float, float]:
        """(x_min, x_max, y_min, y_max): bounding box of all tissue (um)."""
        return self._extent

    def _noise_seed(self, field: int) -> int:
        return self.seed * 64 + field

    def tissue_at(self, x: NDArray, y: NDArray) -> NDArray[np.bool_]:
        """True where world points (um) lie in the section outline and not in a hole."""
        c = self.config
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        q = self._outline_q(x, y, noise_points(x, y, self._noise_seed(_N_SECTION), 900.0, 2))
        ok = q < 1.0
        if c.hole_fraction > 0:
            ok &= noise_points(x, y, self._noise_seed(_N_HOLE), c.hole_scale_um) < self._hole_level
        return ok

    def _outline_q(self, x: NDArray, y: NDArray, n: NDArray) -> NDArray:
        c = self.config
        cx, cy = c.center_um
        rx, ry = c.section_radii_um
        return np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2) + \
            c.boundary_roughness * (2.0 * n - 1.0)

    def _lattice_centre(self, i: int, j: int) -> tuple[float, float]:
        cx, cy = self.config.center_um
        return cx + (i + 0.5 * (j & 1)) * self._pitch, cy + j * self._row

    def _cells(self, x0: float, x1: float, y0: float, y1: float, reach: float
               ) -> list[tuple[int, int]]:
        cx, cy = self.config.center_um
        j0 = max(-self._jmax, math.floor((y0 - reach - cy) / self._row) - 1)
        j1 = min(self._jmax, math.ceil((y1 + reach - cy) / self._row) + 1)
        i0 = max(-self._imax, math.floor((x0 - reach - cx) / self._pitch) - 1)
        i1 = min(self._imax, math.ceil((x1 + reach - cx) / self._pitch) + 1)
        return [(i, j) for j in range(j0, j1 + 1) for i in range(i0, i1 + 1)]

    def _make_raw(self, i: int, j: int) -> tuple | None:
        """Unresolved tubule of lattice cell (i, j): (cx, cy, b, ratio, angle) or None."""
        if abs(i) > self._imax or abs(j) > self._jmax:
            return None
        c = self.config
        rng = self.rng_for(_S_TUBULE, i, j)
        gx, gy = self._lattice_centre(i, j)
        jx, jy = rng.uniform(-self._jitter, self._jitter, 2)
        cx, cy = gx + jx, gy + jy
        lo, hi = c.diameter_range_um
        d = float(np.clip(rng.normal(c.tubule_diameter_um, c.tubule_diameter_sd_um),
                          lo + 0.02 * (hi - lo), hi - 0.02 * (hi - lo)))
        ratio = 1.0 + min(abs(rng.normal(0.0, 0.18)), c.axis_ratio_max - 1.0)
        angle = float(rng.uniform(0.0, math.pi))
        if not bool(self.tissue_at(np.array([cx]), np.array([cy]))[0]):
            return None
        return (cx, cy, 0.5 * d, ratio, angle)

    @staticmethod
    def _support(b: float, ratio: float, angle: float, nx: float, ny: float) -> float:
        """Support function of the ellipse (ratio*b, b, angle) in unit direction (nx, ny)."""
        ca, sa = math.cos(angle), math.sin(angle)
        p, q = nx * ca + ny * sa, -nx * sa + ny * ca
        return math.sqrt((ratio * b * p) ** 2 + (b * q) ** 2)

    def _make_tubule(self, i: int, j: int) -> Tubule | None:
        """Tubule of cell (i, j), shrunk so that it keeps ``interstitial_gap_um`` from its
        neighbours (separating axis along the line of centres; pairwise symmetric)."""
        raw = self._raw(i, j)
        if raw is None:
            return None
        c = self.config
        cx, cy, b, ratio, angle = raw
        s = 1.0
        for dj in range(-2, 3):
            for di in range(-2, 3):
                if di == 0 and dj == 0:
                    continue
                nb = self._raw(i + di, j + dj)
                if nb is None:
                    continue
                dx, dy = nb[0] - cx, nb[1] - cy
                dist = math.hypot(dx, dy)
                nx, ny = dx / dist, dy / dist
                h = self._support(b, ratio, angle, nx, ny) + \
                    self._support(nb[2], nb[3], nb[4], -nx, -ny)
                s = min(s, (dist - c.interstitial_gap_um) / h)
        b = max(b * s, 0.5 * c.diameter_range_um[0])
        rng = self.rng_for(_S_TUBULE + 16, i, j)
        wall = float(np.clip(rng.normal(c.wall_um, c.wall_sd_um), *c.wall_range_um))
        epi = float(rng.normal(c.epithelium_um, 0.08 * c.epithelium_um))
        # mean lumen radius; its irregular outline (+- lumen_irregularity) keeps >= 12 um of
        # epithelium above the thickest wall
        lum_hi = (b - wall * (1 + c.wall_variation) - c.infolding_um - 12.0) / (
            1.0 + c.lumen_irregularity)
        lum = float(np.clip(b - wall - epi, c.lumen_min_um,
                            max(c.lumen_min_um, min(c.lumen_max_um, lum_hi))))
        elongated = bool(rng.uniform() < c.elongated_probability)
        tid = 1 + (i + 1024) * 2048 + (j + 1024)
        return Tubule(tid, (i, j), cx, cy, ratio * b, b, angle, wall, lum, elongated)

    def tubules_in(self, x0: float, x1: float, y0: float, y1: float) -> list[Tubule]:
        """Tubules whose outline's bounding box meets the world box (um), by id."""
        out = []
        for i, j in self._cells(x0, x1, y0, y1, self._reach):
            t = self._tubule(i, j)
            if t is None:
                continue
            if (t.cx_um + t.a_um > x0 and t.cx_um - t.a_um < x1 and t.cy_um + t.a_um > y0
                    and t.cy_um - t.a_um < y1):
                out.append(t)
        return sorted(out, key=lambda t: t.id)

    # ------------------------------------------------------------------ local fields
    def _wall_at(self, t: Tubule, x: NDArray, y: NDArray) -> NDArray:
        """Local lamina propria thickness (um) of tubule ``t`` at world points.

        ``wall (1 + 2 var (1/2 - nw)) + infold (2 tex - 1)``, truncated to ``gap_wall_um``
        where ``nw`` exceeds the gap level (NOA: the wall thins, then breaks), at least
        1 um; ``nw`` is the 30 um noise, ``tex`` the 3.5 um noise. :meth:`render` evaluates
        the same formula per pixel.
        """
        c = self.config
        nw = noise_points(x, y, self._noise_seed(_N_WALL), 30.0)
        w = t.wall_um * (1.0 + 2.0 * c.wall_variation * (0.5 - nw))
        if c.infolding_um > 0:
            w = w + c.infolding_um * (2.0 * noise_points(x, y, self._noise_seed(_N_TEX), 3.5) - 1)
        if c.wall_gap_fraction > 0:
            g = np.clip((nw - self._gap_level) * 25.0, 0.0, 1.0)
            w = w + g * np.minimum(c.gap_wall_um - w, 0.0)
        return np.maximum(w, 1.0)

    def _lumen_at(self, t: Tubule, x: NDArray, y: NDArray) -> NDArray:
        nw = noise_points(x, y, self._noise_seed(_N_WALL), 30.0)
        return t.lumen_um * (1.0 + 2.0 * self.config.lumen_irregularity * (nw - 0.5))

    # ------------------------------------------------------------------ contents
    def _make_contents(self, i: int, j: int) -> dict[str, NDArray] | None:
        """Nuclei, lipid droplets and protein droplets of the tubule of cell (i, j).

        Returns arrays: ``nuc`` (n, 8) = x, y, a, b, angle, coverage weight, dna, protein;
        ``ld`` (m, 5) = x, y, r, z, density; ``pd`` (k, 4) = x, y, r, z.
        """
        t = self._tubule(i, j)
        if t is None:
            return None
        c = self.config
        rng = self.rng_for(_S_CONTENT, i, j)
        b, ratio = t.b_um, t.axis_ratio
        germ = self._germ
        nuc: list[NDArray] = []

        def ring(depth: float, spacing: float, jit: float) -> tuple[NDArray, NDArray]:
            """Points along a ring at ``depth`` um below the basement membrane (unstretched)."""
            rho0 = b - t.wall_um - depth
            if rho0 <= 2.0:
                return np.empty(0), np.empty(0)
            circ = 2 * math.pi * rho0 * (1 + ratio) / 2
            n = max(1, int(circ / spacing))
            phi = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * math.pi / n + rng.uniform(
                0, 2 * math.pi)
            dep = depth + rng.normal(0.0, jit, n)
            return dep, phi

        def place(dep: NDArray, phi: NDArray) -> tuple[NDArray, NDArray, NDArray]:
            """World position for depth below the *local* membrane; returns x, y, rho."""
            rho = b - t.wall_um - dep
            x, y = t.to_world(rho, phi)
            w = self._wall_at(t, x, y)
            rho = b - w - dep
            x, y = t.to_world(rho, phi)
            return x, y, rho

        def tangent(phi: NDArray) -> NDArray:
            return np.arctan2(np.cos(phi), -ratio * np.sin(phi)) + t.angle_rad

        def add(x, y, a, bb, ang, cw, dna, prot) -> None:
            n = np.size(x)
            nuc.append(np.column_stack([x, y, np.broadcast_to(a, n), np.broadcast_to(bb, n),
                                        np.broadcast_to(ang, n), np.broadcast_to(cw, n),
                                        np.broadcast_to(dna, n), np.broadcast_to(prot, n)]))

        epi_h = b - t.wall_um - t.lumen_um  # epithelium height (mean)
        # myoid (peritubular) cells: flat nuclei inside the lamina propria
        dep, phi = ring(0.0, 30.0 if c.phenotype == "normal" else 22.0, 0.0)
        if phi.size:
            rho0 = b - t.wall_um
            x0, y0 = t.to_world(rho0, phi)
            w = self._wall_at(t, x0, y0)
            rho = b - w * rng.uniform(0.35, 0.65, phi.size)
            x, y = t.to_world(rho, phi)
            ok = w > 2.6
            n = int(ok.sum())
            add(x[ok], y[ok], rng.uniform(5.0, 7.5, n), rng.uniform(1.0, 1.3, n),
                tangent(phi[ok]), 1.0, rng.uniform(0.14, 0.2, n), 0.2)
        # Sertoli cells
        if c.phenotype == "NOA-SCO":
            ser_sp, ser_d = 11.0, (5.0, max(6.0, epi_h - 10.0))
        else:
            ser_sp = {"normal": 24.0, "NOA-SPT": 22.0, "NOA-SPG": 18.0}[c.phenotype]
            ser_d = (6.5, 12.0)
        dep, phi = ring(0.5 * (ser_d[0] + ser_d[1]), ser_sp, 0.0)
        if phi.size:
            dep = rng.uniform(ser_d[0], ser_d[1], phi.size)
            x, y, _ = place(dep, phi)
            n = phi.size
            radial = tangent(phi) + math.pi / 2
            ang = radial + rng.normal(0.0, 0.45, n)
            add(x, y, rng.uniform(4.5, 6.0, n), rng.uniform(2.6, 3.4, n), ang, 1.0,
                rng.uniform(0.08, 0.12, n), 0.2)
            # nucleoli (protein only, no extra coverage)
            off = rng.uniform(-1.5, 1.5, n)
            add(x + off * np.cos(ang), y + off * np.sin(ang), 1.1, 1.1, 0.0, 0.0, 0.04, 0.3)
        # spermatogonia on the basement membrane, long axis parallel to it
        if "spermatogonia" in germ:
            sp = {"normal": 13.0, "NOA-SPT": 15.0, "NOA-SPG": 20.0}[c.phenotype]
            dep, phi = ring(3.4, sp, 0.4)
            if phi.size:
                x, y, _ = place(dep, phi)
                n = phi.size
                add(x, y, rng.uniform(3.4, 4.2, n), rng.uniform(2.5, 3.0, n),
                    tangent(phi) + rng.normal(0, 0.15, n), 1.0, rng.uniform(0.15, 0.26, n), 0.2)
        # primary spermatocytes: largest nuclei, 2-3 rows
        if "spermatocytes" in germ:
            rows = (17.0, 31.0, 45.0) if c.phenotype == "NOA-SPT" else (17.0, 31.0)
            for d0 in rows:
                if d0 + 6.0 > epi_h:
                    break
                dep, phi = ring(d0, 15.5, 1.5)
                if not phi.size:
                    continue
                x, y, _ = place(dep, phi)
                n = phi.size
                r = rng.uniform(4.5, 6.0, n)
                dna = rng.uniform(0.15, 0.2, n)
                pyk = rng.uniform(size=n) < (0.12 if c.phenotype == "NOA-SPT" else 0.02)
                r[pyk] = rng.uniform(2.5, 3.5, int(pyk.sum()))  # degenerating, pyknotic
                dna[pyk] = rng.uniform(0.35, 0.5, int(pyk.sum()))
                keep = rng.uniform(size=n) < 0.85
                add(x[keep], y[keep], r[keep], (r * rng.uniform(0.88, 1.0, n))[keep],
                    rng.uniform(0, math.pi, n)[keep], 1.0, dna[keep], 0.2)
        # round spermatids: rows up to the lumen
        if "round_spermatids" in germ:
            d0 = 41.0
            while d0 + 4.0 < epi_h:
                dep, phi = ring(d0, 7.8, 1.0)
                if phi.size:
                    x, y, _ = place(dep, phi)
                    n = phi.size
                    r = rng.uniform(2.5, 3.0, n)
                    keep = rng.uniform(size=n) < 0.9
                    add(x[keep], y[keep], r[keep], r[keep], 0.0, 1.0,
                        rng.uniform(0.22, 0.3, n)[keep], 0.2)
                d0 += 7.5
        # elongated spermatid heads in bundles near the lumen (stage dependent), sperm in lumen
        if "elongated_spermatids" in germ and t.elongated:
            dep, phi = ring(max(epi_h - 8.0, 10.0), 22.0, 0.0)
            for d_b, ph_b in zip(dep, phi):
                k = int(rng.integers(6, 13))
                rho_b = b - t.wall_um - d_b
                ph = ph_b + rng.normal(0.0, 3.0 / max(rho_b, 5.0), k)
                dd = d_b + rng.uniform(-7.0, 9.0, k)
                x, y = t.to_world(b - t.wall_um - dd, ph)
                add(x, y, rng.uniform(2.0, 2.5, k), rng.uniform(1.25, 1.5, k),
                    tangent(ph) + math.pi / 2 + rng.normal(0, 0.2, k), 1.0,
                    rng.uniform(0.6, 0.8, k), 0.35)
        if c.phenotype == "normal":
            k = int(rng.poisson(6))
            rr = t.lumen_um * 0.8 * np.sqrt(rng.uniform(size=k))
            x, y = t.to_world(rr, rng.uniform(0, 2 * math.pi, k))
            add(x, y, 2.2, 1.4, rng.uniform(0, math.pi, k), 1.0, rng.uniform(0.6, 0.8, k), 0.35)
        nuc_arr = np.concatenate(nuc) if nuc else np.empty((0, 8))

        # ---- lipid droplets (Sertoli associated: basal, clustered) ----
        a_epi = math.pi * ratio * ((b - t.wall_um) ** 2 - t.lumen_um ** 2)
        ld = self._droplets(rng, t, a_epi, c.droplet_area_fraction, c.droplet_diameter_um,
                            c.droplet_diameter_sigma, nuc_arr,
                            basal=c.phenotype != "NOA-SCO")
        dens = c.droplet_density * rng.uniform(0.95, 1.05, ld.shape[0])
        ld = np.column_stack([ld, dens])
        # ---- protein droplets (SPT) ----
        pd = self._droplets(rng, t, a_epi, c.protein_droplet_area_fraction, 1.8, 0.3,
                            nuc_arr, basal=False, dmin=1.0, dmax=3.0)
        return {"nuc": nuc_arr, "ld": ld, "pd": pd}

    def _droplets(self, rng: np.random.Generator, t: Tubule, a_epi: float, frac: float,
                  median_um: float, sigma: float, nuc: NDArray, *,
                  basal: bool, dmin: float = 0.3, dmax: float = 2.0) -> NDArray:
        """Spheres in the epithelium: (n, 4) = x, y, r, z (focus offset, |z| < r).

        ``frac`` is the in-focus cross-section area (``pi (r^2 - z^2)``) over the epithelium
        area ``a_epi`` (um^2); diameters are lognormal (``median_um``, ``sigma``) clipped to
        ``dmin..dmax``. Positions are in basal clusters (Sertoli cytoplasm between the
        basal nuclei, ``basal``) or spread over the epithelium height; candidates that fall
        on a nucleus (``nuc`` rows as in :meth:`_make_contents`) are replaced by others.
        """
        if frac <= 0 or a_epi <= 0:
            return np.empty((0, 4))
        d = np.clip(median_um * np.exp(sigma * rng.standard_normal(4096)), dmin, dmax)
        mean_area = math.pi * float(np.mean((d / 2) ** 2)) * 2.0 / 3.0
        n = int(rng.poisson(frac * a_epi / mean_area))
        if n == 0:
            return np.empty((0, 4))
        m = 3 * n + 16  # candidates
        d = np.clip(median_um * np.exp(sigma * rng.standard_normal(m)), dmin, dmax)
        r = d / 2
        z = rng.uniform(-1.0, 1.0, m) * r
        b = t.b_um
        epi_h = b - t.wall_um - t.lumen_um
        phi = rng.uniform(0, 2 * math.pi, m)
        if basal:
            ncl = max(1, m // 6)
            cphi = rng.uniform(0, 2 * math.pi, ncl)
            cdep = 1.0 + rng.exponential(6.0, ncl)
            k = rng.integers(0, ncl, m)
            rho_c = b - t.wall_um - cdep[k]
            phi = cphi[k] + rng.normal(0.0, 3.0, m) / np.maximum(rho_c, 5.0)
            dep = np.abs(cdep[k] + rng.normal(0.0, 2.0, m))
        else:
            dep = rng.uniform(2.0, max(3.0, epi_h - 2.0), m)
        rho = b - t.wall_um - dep
        x, y = t.to_world(rho, phi)
        w = self._wall_at(t, x, y)
        lum = self._lumen_at(t, x, y)
        # keep inside the epithelium: below the local membrane, above the local lumen
        rho = np.minimum(rho, b - w - r - 0.3)
        rho = np.maximum(rho, lum + r + 0.3)
        x, y = t.to_world(rho, phi)
        ok = rho < b - w - r - 0.2
        cov = nuc[:, 5] > 0
        if cov.sum() >= 8:
            tree = cKDTree(nuc[cov, :2])
            dist, idx = tree.query(np.column_stack([x, y]), k=8)
            ok &= ~np.any(dist < nuc[cov, 2][idx] + r[:, None], axis=1)
        keep = np.flatnonzero(ok)[:n]
        return np.column_stack([x, y, r, z])[keep]

    def _leydig_may_touch(self, i: int, j: int, x0: float, x1: float, y0: float, y1: float
                          ) -> bool:
        """Whether the Leydig clusters of cell (i, j) can reach the box (um).

        A cluster centre lies within 30 um of one of the cell's two lattice voids, its cells
        within ``10 sqrt(4 n + 1)`` um of the centre (n the mean cluster size, the count is
        capped at 4 n + 1) and a cell's semi-axis is <= 11 um: ``_ley_margin`` in all.
        """
        gx, gy = self._lattice_centre(i, j)
        m = self._ley_margin
        return (gx - m < x1 and gx + 0.5 * self._pitch + m > x0
                and gy + self._row / 3.0 - m < y1 and gy + 2.0 * self._row / 3.0 + m > y0)

    def _make_leydig(self, i: int, j: int) -> dict[str, NDArray]:
        """Leydig-cell clusters in the interstitium of lattice cell (i, j).

        Returns arrays: ``cells`` (n, 5) = x, y, a, b, angle; ``nuc`` (n, 8) as in tubule
        contents; ``ld`` (m, 5) = x, y, r, z, density; ``lf`` (k, 5) = lipofuscin granules
        x, y, r, z, pigment weight.
        """
        c = self.config
        rng = self.rng_for(_S_LEYDIG, i, j)
        gx, gy = self._lattice_centre(i, j)
        near = [t for di in range(-2, 3) for dj in range(-2, 3)
                if (t := self._tubule(i + di, j + dj)) is not None]
        noa = c.phenotype != "normal"

        def outside(x: NDArray, y: NDArray, margin: float) -> NDArray:
            ok = self.tissue_at(x, y)
            for t in near:
                ok &= t.radius_at(x, y) > t.b_um + margin
            return ok

        cells, nucs, lds, lfs = [], [], [], []
        # the lattice has two triangular interstitial spaces per cell; each may hold a cluster
        voids = ((gx + 0.5 * self._pitch, gy + self._row / 3.0), (gx, gy + 2.0 * self._row / 3.0))
        p_void = min(1.0, 0.5 * c.leydig_clusters_per_tubule)
        for vx, vy in voids:
            if rng.uniform() >= p_void:
                continue
            rr = 30.0 * np.sqrt(rng.uniform(0, 1, 8))
            rr[0] = 0.0
            aa = rng.uniform(0, 2 * math.pi, 8)
            cand_x, cand_y = vx + rr * np.cos(aa), vy + rr * np.sin(aa)
            good = np.nonzero(outside(cand_x, cand_y, 6.0))[0]
            if good.size == 0:
                continue
            kx, ky = cand_x[good[0]], cand_y[good[0]]
            m = min(max(1, int(rng.poisson(c.leydig_cluster_cells))),
                    int(4 * c.leydig_cluster_cells + 1))
            k = np.arange(m)
            rad = 9.0 * np.sqrt(k + 0.3) * rng.uniform(0.9, 1.1, m)
            ang = k * 2.39996 + rng.uniform(-0.25, 0.25, m)
            x = kx + rad * np.cos(ang)
            y = ky + rad * np.sin(ang)
            sa = rng.uniform(7.5, 10.0, m) * (1.1 if noa else 1.0)
            sb = sa * rng.uniform(0.75, 0.95, m)
            ok = outside(x, y, sa + 2.0)
            x, y, sa, sb = x[ok], y[ok], sa[ok], sb[ok]
            m = x.size
            if m == 0:
                continue
            th = rng.uniform(0, math.pi, m)
            cells.append(np.column_stack([x, y, sa, sb, th]))
            # nucleus (eccentric), nucleolus
            off = rng.uniform(0, 2.0, m)
            oa = rng.uniform(0, 2 * math.pi, m)
            nxy = (x + off * np.cos(oa), y + off * np.sin(oa))
            nr = rng.uniform(3.0, 4.0, m)
            z0 = np.zeros(m)
            nucs.append(np.column_stack([nxy[0], nxy[1], nr, nr * rng.uniform(0.85, 1.0, m),
                                         rng.uniform(0, math.pi, m), z0 + 1.0,
                                         rng.uniform(0.12, 0.16, m), z0 + 0.2]))
            nucs.append(np.column_stack([nxy[0], nxy[1], z0 + 0.9, z0 + 0.9, z0, z0,
                                         z0 + 0.03, z0 + 0.3]))
            # lipid droplets and lipofuscin granules inside the cell, off the nucleus
            for kind, mean_n in (("ld", c.leydig_droplets_per_cell), ("lf", 6.0 if noa else 4.0)):
                cnt = rng.poisson(mean_n, m)
                owner = np.repeat(np.arange(m), cnt)
                q = owner.size
                if q == 0:
                    continue
                rr = np.sqrt(rng.uniform(0, 1, q)) * 0.85
                pa = rng.uniform(0, 2 * math.pi, q)
                u, v = rr * sa[owner] * np.cos(pa), rr * sb[owner] * np.sin(pa)
                ct, st = np.cos(th[owner]), np.sin(th[owner])
                px, py = x[owner] + u * ct - v * st, y[owner] + u * st + v * ct
                if kind == "ld":
                    r = np.clip(0.5 * np.exp(0.35 * rng.standard_normal(q)), 0.15, 1.0)
                else:
                    r = rng.uniform(0.25, 0.5, q)
                far = np.hypot(px - nxy[0][owner], py - nxy[1][owner]) > nr[owner] + r
                z = rng.uniform(-1, 1, q) * r
                if kind == "ld":
                    w = c.leydig_droplet_density * rng.uniform(0.95, 1.05, q)
                    lds.append(np.column_stack([px, py, r, z, w])[far])
                else:
                    w = rng.uniform(0.15, 0.4, q)
                    lfs.append(np.column_stack([px, py, r, z, w])[far])

        def cat(parts: list, width: int) -> NDArray:
            return np.concatenate(parts) if parts else np.empty((0, width))

        return {"cells": cat(cells, 5), "nuc": cat(nucs, 8), "ld": cat(lds, 5),
                "lf": cat(lfs, 5)}

    # ------------------------------------------------------------------ rendering
    def render(self, window: Window) -> Composition:
        """Ground truth of ``window`` (see module docstring); float32 maps, shape (ny, nx).

        Cost is proportional to the window's pixels and the objects it shows: tubules,
        contents and Leydig clusters come from the caches; nothing section-wide is built.
        Large windows are rendered as row bands on :attr:`threads` threads (numpy releases
        the GIL); a band renders exactly what the same pixels render in any other window.
        """
        full = ("lipid", "protein", "collagen", "water")  # written in full: no zeroing
        shape = window.shape
        comp = Composition(
            window, {s: (np.empty if s in full else np.zeros)(shape, _F32) for s in SPECIES},
            chi2=np.empty(shape, _F32), pigment=np.zeros(shape, _F32),
            labels=np.empty(shape, np.uint8), instance=np.zeros(shape, np.int32))
        nb = self.threads if window.nx * window.ny >= 250_000 else 1
        nb = max(1, min(nb, window.ny // 64))
        if nb == 1:
            self._render_into(window, comp)
            return comp
        edges = np.linspace(0, window.ny, nb + 1).round().astype(int)
        jobs = []
        for r0, r1 in zip(edges[:-1], edges[1:]):
            sub = Window(window.x_um, window.y_um + r0 * window.pixel_um, window.nx,
                         int(r1 - r0), window.pixel_um)
            rs = slice(int(r0), int(r1))
            jobs.append((sub, Composition(sub, {k: v[rs] for k, v in comp.concentrations.items()},
                                          comp.chi2[rs], comp.pigment[rs], comp.labels[rs],
                                          comp.instance[rs])))
        for f in [_pool().submit(self._render_into, *job) for job in jobs]:
            f.result()
        return comp

    def _render_into(self, window: Window, comp: Composition) -> None:
        """Render ``window`` into ``comp``'s arrays (dna, pigment, instance arrive zeroed)."""
        x0, x1, y0, y1 = window.extent_um
        ex0, ex1, ey0, ey1 = self._extent
        if x1 <= ex0 or x0 >= ex1 or y1 <= ey0 or y0 >= ey1:
            return _clear(comp)
        c = self.config
        p = window.pixel_um
        shape = window.shape
        tissue_sec = self._section_coverage(window)
        if tissue_sec is not None and not tissue_sec.any():
            return _clear(comp)
        cells = self._cells(x0, x1, y0, y1, self._reach)
        tubs = [t for t in (self._tubule(i, j) for i, j in cells) if t is not None
                and t.cx_um + t.a_um > x0 - p and t.cx_um - t.a_um < x1 + p
                and t.cy_um + t.a_um > y0 - p and t.cy_um - t.a_um < y1 + p]
        conc = comp.concentrations
        chi2, pigment, labels = comp.chi2, comp.pigment, comp.labels
        tex = noise_grid(window, self._noise_seed(_N_TEX), 3.5)  # 0..1, ~3.5 um grain
        nw = noise_grid(window, self._noise_seed(_N_WALL), 30.0)  # 0..1, ~30 um
        inv_p = 1.0 / p
        tmp = np.empty(shape, _F32)

        # ---- tubule fields. q = (r'/b)^2 (normalised unstretched radius); owner = argmin q
        q = np.full(shape, 1e6, _F32)
        owner = np.zeros(shape, np.intp)  # intp: gathers need no index conversion
        xs, ys = window.xs(), window.ys()
        for k, t in enumerate(tubs, 1):
            sl = window.pixel_slices(t.cx_um - t.a_um - p, t.cx_um + t.a_um + p,
                                     t.cy_um - t.a_um - p, t.cy_um + t.a_um + p)
            if sl is None:
                continue
            rs, cs = sl
            dx = xs[cs] - t.cx_um
            dy = ys[rs] - t.cy_um
            ca, sa = math.cos(t.angle_rad), math.sin(t.angle_rad)
            i2, b2 = 1.0 / t.axis_ratio ** 2, t.b_um ** 2
            qa = (ca * ca * i2 + sa * sa) / b2
            qc = (sa * sa * i2 + ca * ca) / b2
            qb = 2.0 * ca * sa * (i2 - 1.0) / b2
            qt = np.multiply.outer(dy.astype(_F32), (qb * dx).astype(_F32))
            qt += (qa * dx * dx).astype(_F32)[None, :]
            qt += (qc * dy * dy).astype(_F32)[:, None]
            m = qt < q[sl]
            np.copyto(q[sl], qt, where=m)
            np.copyto(owner[sl], k, where=m)
        b_tbl = np.array([1.0] + [t.b_um for t in tubs], _F32)
        wall_tbl = np.array([0.0] + [t.wall_um for t in tubs], _F32)
        lum_tbl = np.array([0.0] + [t.lumen_um for t in tubs], _F32)
        depth = b_tbl[owner]
        rad = np.sqrt(q, out=q)
        rad *= depth  # r' (um); 1000 um where no tubule is near
        depth -= rad  # depth below the outline (um), < 0 outside
        # local lamina propria thickness (same formula as _wall_local, float32)
        wall = wall_tbl[owner]
        np.multiply(nw, -2.0 * c.wall_variation, out=tmp)
        tmp += 1.0 + c.wall_variation
        wall *= tmp
        if c.infolding_um > 0:
            np.multiply(tex, 2.0 * c.infolding_um, out=tmp)
            tmp -= c.infolding_um
            wall += tmp
        gap = None
        if c.wall_gap_fraction > 0:
            gap = np.subtract(nw, self._gap_level, dtype=_F32)
            gap *= 25.0
            np.clip(gap, 0.0, 1.0, out=gap)
            np.subtract(c.gap_wall_um, wall, out=tmp)
            np.minimum(tmp, 0.0, out=tmp)
            tmp *= gap
            wall += tmp
        np.maximum(wall, 1.0, out=wall)
        lum = lum_tbl[owner]
        np.multiply(nw, 2.0 * c.lumen_irregularity, out=tmp)
        tmp += 1.0 - c.lumen_irregularity
        lum *= tmp
        # cumulative class ramps (anti-aliased over one pixel)
        A = np.multiply(depth, inv_p, dtype=_F32)  # inside the tubule outline
        A += 0.5
        np.clip(A, 0.0, 1.0, out=A)
        B = np.subtract(depth, wall, dtype=_F32)  # past the lamina propria
        B *= inv_p
        B += 0.5
        np.clip(B, 0.0, 1.0, out=B)
        C = np.subtract(lum, rad, dtype=_F32)  # inside the lumen
        C *= inv_p
        C += 0.5
        np.clip(C, 0.0, 1.0, out=C)

        # ---- base materials: s = I + A (W - I) + B (E - W) + C (L - E)
        # interstitium I, lamina propria W, epithelium E, lumen L
        sco = c.phenotype == "NOA-SCO"
        lum_water, lum_prot = (0.97, 0.012) if sco else (0.94, 0.03)
        for s in ("lipid", "water"):
            ii, ww, ee, ll = _INT[s], _WALL[s], _EPI[s], (0.0 if s == "lipid" else lum_water)
            out = conc[s]
            np.multiply(A, ww - ii, out=out)
            np.multiply(B, ee - ww, out=tmp)
            out += tmp
            np.multiply(C, ll - ee, out=tmp)
            out += tmp
            out += ii
        # protein: epithelium textured E = 0.24 (0.8 + 0.4 tex)
        e0, e1 = 0.8 * _EPI["protein"], 0.4 * _EPI["protein"]
        out = conc["protein"]
        np.multiply(tex, e1, out=out)
        out += e0 - _WALL["protein"]  # E - W
        out *= B
        np.multiply(tex, -e1, out=tmp)
        tmp += lum_prot - e0  # L - E
        tmp *= C
        out += tmp
        np.multiply(A, _WALL["protein"] - _INT["protein"], out=tmp)
        out += tmp
        out += _INT["protein"]
        # fibrous interstitial texture: thin ridges of the fine noise, modulated by nw
        fib = np.subtract(tex, 0.5, dtype=_F32)
        np.abs(fib, out=fib)
        fib *= -2.0
        fib += 1.0
        fib *= fib
        fib *= fib
        np.add(nw, 0.5, out=tmp)
        fib *= tmp
        texc = np.multiply(tex, 0.4, dtype=_F32)
        texc += 0.8  # 0.8..1.2
        # collagen: I = ic (0.4 + 1.2 fib), W = wc texc, E = L = 0 -> I (1 - A) + A W - B W
        out = conc["collagen"]
        np.multiply(fib, 1.2 * c.interstitial_collagen, out=out)
        out += 0.4 * c.interstitial_collagen
        np.subtract(1.0, A, out=tmp)
        out *= tmp
        np.subtract(A, B, out=tmp)  # lamina propria weight
        wwt = tmp  # keep: reused for chi2
        colw = np.multiply(texc, c.wall_collagen, dtype=_F32)
        colw *= wwt
        out += colw
        # chi2: I = ichi (0.2 + 1.6 fib), W = wchi (0.7 + 0.6 tex) (1 - 0.85 gap)
        np.multiply(fib, 1.6 * c.interstitial_chi2, out=chi2)
        chi2 += 0.2 * c.interstitial_chi2
        np.subtract(1.0, A, out=fib)
        chi2 *= fib
        np.multiply(tex, 0.6 * c.wall_chi2, out=colw)
        colw += 0.7 * c.wall_chi2
        if gap is not None:
            gap *= -0.85
            gap += 1.0
            colw *= gap
        colw *= wwt
        chi2 += colw
        np.clip(chi2, 0.0, 1.0, out=chi2)
        del fib, colw, wwt

        # ---- labels of the base classes
        labels[:] = Label.INTERSTITIUM
        if tubs:
            np.putmask(labels, A >= 0.5, Label.COLLAGEN)
            np.putmask(labels, B >= 0.5, Label.CYTOPLASM)
            np.putmask(labels, C >= 0.5, Label.LUMEN)

        # ---- objects from the tubules and Leydig clusters near the window
        nuc_parts, ld_parts, pd_parts, lf_parts, cell_parts = [], [], [], [], []
        for t in tubs:
            cont = self._contents(*t.cell)
            nuc_parts.append(cont["nuc"])
            ld_parts.append(cont["ld"])
            pd_parts.append(cont["pd"])
        for i, j in cells:
            if not self._leydig_may_touch(i, j, x0 - 2 * p, x1 + 2 * p, y0 - 2 * p, y1 + 2 * p):
                continue
            ley = self._leydig(i, j)
            cell_parts.append(ley["cells"])
            nuc_parts.append(ley["nuc"])
            ld_parts.append(ley["ld"])
            lf_parts.append(ley["lf"])

        # Leydig cell bodies over the interstitium
        cl = _cat(cell_parts, 5)
        res = (stamp_ellipses(window, cl[:, 0], cl[:, 1], cl[:, 2], cl[:, 3], cl[:, 4],
                              [np.ones(cl.shape[0])]) if cl.shape[0] else None)
        if res is not None:
            sl, (cov,) = res
            np.minimum(cov, 1.0, out=cov)
            for s in ("protein", "lipid", "water"):
                v = conc[s][sl]
                v += cov * (_LEY[s] - v)
            keep = 1.0 - cov
            conc["collagen"][sl] *= keep
            chi2[sl] *= keep
            pigment[sl] += cov * c.leydig_pigment
            np.putmask(labels[sl], cov >= 0.5, Label.CYTOPLASM)
        # nuclei (coverage, dna, protein), chromatin texture from the fine noise
        nu = _cat(nuc_parts, 8)
        res = (stamp_ellipses(window, nu[:, 0], nu[:, 1], nu[:, 2], nu[:, 3], nu[:, 4],
                              [nu[:, 5], nu[:, 6], nu[:, 7]]) if nu.shape[0] else None)
        if res is not None:
            sl, (cov, dna, prot) = res
            np.minimum(cov, 1.0, out=cov)  # (touching nuclei add their DNA)
            f = np.multiply(tex[sl], 0.5)
            f += 0.75
            dna *= f
            keep = np.subtract(1.0, cov, out=f)
            conc["dna"][sl] = dna  # no DNA outside nuclei
            v = conc["protein"][sl]
            v *= keep
            v += prot
            for s in ("lipid", "water"):
                v = conc[s][sl]
                v *= keep
                v += cov * _NUC[s]
            conc["collagen"][sl] *= keep
            chi2[sl] *= keep
            pigment[sl] *= keep
            np.putmask(labels[sl], cov >= 0.5, Label.NUCLEUS)
        # spheres: composite only the pixels they touch
        flat = {k: v.reshape(-1) for k, v in conc.items()}
        chi2f, pigf, labf = chi2.reshape(-1), pigment.reshape(-1), labels.reshape(-1)
        pdd = _touching(_cat(pd_parts, 4), window)
        if pdd.shape[0]:  # protein droplets (SPT)
            cm = sphere_map(window, pdd[:, 0], pdd[:, 1], pdd[:, 2], fwhm_z_um=FWHM_Z_UM,
                            z_um=pdd[:, 3]).reshape(-1)
            idx = np.flatnonzero(cm)
            cv = np.minimum(cm[idx], 1.0)
            keep = 1.0 - cv
            for s in ("protein", "lipid", "water"):
                flat[s][idx] = flat[s][idx] * keep + cv * _PDROP[s]
            for s in ("dna", "collagen"):
                flat[s][idx] *= keep
            chi2f[idx] *= keep
            labf[idx[cv >= 0.5]] = Label.PROTEIN_DROPLET
        ldd = _touching(_cat(ld_parts, 5), window)
        if ldd.shape[0]:  # lipid droplets: weights = lipid density
            lm = _spheres(window, ldd).reshape(-1)
            idx = np.flatnonzero(lm)
            lv = lm[idx]
            ref = np.where(A.reshape(-1)[idx] >= 0.5, c.droplet_density,
                           c.leydig_droplet_density)
            cv = lv / ref  # in-focus volume fraction of the droplet
            over = np.maximum(cv, 1.0)
            cv /= over
            lv /= over
            keep = 1.0 - cv
            flat["lipid"][idx] = flat["lipid"][idx] * keep + lv
            for s in ("protein", "water", "dna", "collagen"):
                flat[s][idx] *= keep
            chi2f[idx] *= keep
            pigf[idx] *= keep
            labf[idx[cv >= _LIPID_LABEL_MIN]] = Label.LIPID_DROPLET
        lf = _touching(_cat(lf_parts, 5), window)
        if lf.shape[0]:  # lipofuscin granules (transient absorption)
            pigment += sphere_map(window, lf[:, 0], lf[:, 1], lf[:, 2], fwhm_z_um=FWHM_Z_UM,
                                  z_um=lf[:, 3], weights=lf[:, 4])

        # ---- instance ids, then the tissue mask (section outline, tears)
        if tubs:
            id_tbl = np.array([0] + [t.id for t in tubs], np.int32)
            inst = id_tbl[owner]
            np.putmask(inst, A < 0.5, 0)
            comp.instance[:] = inst
        tissue = tissue_sec
        holes = self._hole_coverage(window)
        if holes is not None:
            np.subtract(1.0, A, out=tmp)
            holes *= tmp
            np.subtract(1.0, holes, out=holes)
            tissue = holes if tissue is None else tissue * holes
        if tissue is not None:
            part = tissue < 1.0
            rows, cols = np.flatnonzero(part.any(axis=1)), np.flatnonzero(part.any(axis=0))
            if rows.size:
                sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
                ts = tissue[sl]
                for v in (*conc.values(), chi2, pigment):
                    v[sl] *= ts
                out_m = ts < 0.5
                labels[sl][out_m] = Label.BACKGROUND
                comp.instance[sl][out_m] = 0

    def _section_coverage(self, window: Window) -> NDArray[np.float32] | None:
        """Coverage of the section outline on the window, or None when it is all inside."""
        c = self.config
        cx, cy = c.center_um
        rx, ry = c.section_radii_um
        x0, x1, y0, y1 = window.extent_um
        corners = max(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
                      for x in (x0, x1) for y in (y0, y1))
        ramp = 0.5 * window.pixel_um / min(rx, ry)  # coverage < 1 from 1 - ramp on
        if math.sqrt(corners) < 1.0 - c.boundary_roughness - ramp - 1e-6:
            return None
        n = noise_grid(window, self._noise_seed(_N_SECTION), 900.0, 2)
        xs = ((window.xs() - cx) / rx).astype(_F32)
        ys = ((window.ys() - cy) / ry).astype(_F32)
        q = np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2)
        q += _F32(c.boundary_roughness) * (_F32(2.0) * n - _F32(1.0))
        scale = min(rx, ry) / window.pixel_um
        cov = (_F32(1.0) - q) * _F32(scale) + _F32(0.5)
        return np.clip(cov, 0.0, 1.0, out=cov)

    def _hole_coverage(self, window: Window) -> NDArray[np.float32] | None:
        """Coverage of tears (holes) on the window, or None when there is none."""
        c = self.config
        if c.hole_fraction <= 0:
            return None
        seed = self._noise_seed(_N_HOLE)
        # coverage ramps up from half a ramp width below the level
        ramp = 0.6 * window.pixel_um / c.hole_scale_um
        if _noise_max(window, seed, c.hole_scale_um) <= self._hole_level - ramp:
            return None
        n = noise_grid(window, seed, c.hole_scale_um)
        cov = (n - _F32(self._hole_level)) * _F32(c.hole_scale_um / (1.2 * window.pixel_um))
        cov += _F32(0.5)
        return np.clip(cov, 0.0, 1.0, out=cov)
