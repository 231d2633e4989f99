"""Lipid-droplet (LD) quantification per seminiferous tubule (SRASH paper, Fig. 2J-M).

The paper: "Raw images get background subtraction and laser-power normalization; a threshold
on the 2850 cm^-1 channel extracts lipid-droplet features. Per seminiferous tubule, two
indexes: the mean lipid intensity of its LDs and the area percentage of LDs in the tubule."
This module does the image analysis on one field, from three linear, background-subtracted,
power-normalised images in reference units (:func:`ml.io.composite.field_channels`, or
``process_field`` data divided by ``references_v``):

* ``lipid`` -- the ~2850 cm^-1 SRS channel over pure lipid (triglyceride) at that shift:
  pure lipid = 1, cytoplasm ~0.05-0.2, LD centres up to ~0.8-1.4;
* ``protein`` -- the ~2930 cm^-1 SRS channel over pure lipid at 2930;
* ``shg`` -- SHG over dense fibrillar collagen (= 1).

Pipeline
--------
1. :func:`segment_tubules` -- tubule instance map (0 = not a tubule). A tubule is the region
   a lamina-propria SHG ring delimits, wall included, lumen filled. Epithelium is found as
   SHG-free tissue (protein channel) with the diffuse lipid of germ/Sertoli cytoplasm; a
   candidate is kept when its outline runs along the SHG ring and it is not a Leydig-cell
   cluster (lipid-rich steroidogenic cytoplasm, outside the tubules). Each tubule is then
   grown through its own SHG wall and closed by a convex hull (bridges NOA wall gaps and
   lumens cut by the field border). Details: the function's notes.
2. :func:`segment_droplets` -- the paper's threshold on the 2850 channel (fixed in
   pure-lipid units by default; Otsu and local-background options).
3. :func:`tubule_indexes` -- per tubule: area, LD count, ``ld_area_percent`` (100 x LD
   pixels / tubule pixels), ``ld_mean_intensity`` (mean ``lipid`` over the tubule's LD
   pixels, pure lipid = 1), border flag, centroid.
4. :func:`quantify_field` -- all of the above; :class:`FieldQuant`.
5. :func:`tubule_dice` -- segmentation score against a truth instance map;
   :func:`quant_overlay_png` -- composite with tubule outlines and droplets.

Tubules cut by the field border are kept, flagged ``touches_border``, when their visible
area (wall included) is at least ``min_area_um2`` (default: a 60 um disc, 2827 um^2);
smaller profiles are dropped (a sliver's LD percentage is not representative).

Measured on simulated 360 um fields (1200 x 1200 px at 0.3 um, ``testis`` specimen, one
field per patient seed, 8 seeds per phenotype; seeds 1-4 at the section centre chose the
defaults, seeds 5-8 400-1000 um away were held out):

* tubule Dice per truth tubule (visible area >= 2827 um^2), tuning / held-out:
  normal 0.993 / 0.994, NOA-SPT 0.929 / 0.992 (one of 32 SPT tubules missed: a border
  sliver showing only its wall and ~5 um of epithelium; the other 31: mean 0.991,
  min 0.971), NOA-SPG 0.990 / 0.987, NOA-SCO 0.980 / 0.987; all 162: mean 0.983, median
  0.992, matched ones >= 0.923. ~0.3 s per field on one shared CPU core.
* LD Dice against the truth ``LIPID_DROPLET`` label inside the truth tubules, tuning /
  held-out: fixed 0.26 -> 0.930 / 0.935 (0.24: 0.922 / 0.925, 0.25: 0.927 / 0.930,
  0.27: 0.926 / 0.934, 0.28: 0.924 / 0.930); Otsu -> 0.928 / 0.930; local background +
  18 robust SD -> 0.914 / 0.928; fixed 0.26 dropping droplets < 0.1 um^2 -> 0.916 / 0.914.

Group pattern on the same 32 fields (defaults; 161 tubules, Student's t / Mann-Whitney as
in :func:`ml.ldquant.stats.compare_groups`): LD area % normal 1.60 +/- 0.09 (SEM) > NOA 0.24 +/-
0.02 (p < 1e-21) and SPT 0.32 > SPG 0.014 (p < 1e-11), as in the paper; LD mean intensity
normal 0.479 +/- 0.003 < NOA 0.498 +/- 0.006 (p = 0.026, carried by SCO 0.531; SPT 0.493,
SPG 0.427), and SPT > SPG (p = 3e-7) where the paper finds no difference. The intensity
follows droplet size (partial volume, axial PSF FWHM ~0.74 um) and crowding as much as
density: the simulator's NOA droplets are 1.3-1.5x denser but smaller (SPT 0.7-0.9 um,
SPG 0.6-0.8 um against normal 0.95-1.2 um) and SPG's are few and isolated.

Bad input raises :class:`QuantError` (a :class:`ValueError`).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from ml.common.plotting import new_figure, save_png

__all__ = [
    "QuantError", "FieldQuant", "MIN_TUBULE_AREA_UM2", "DEFAULT_LD_THRESHOLD", "LD_METHODS",
    "DISPLAY_FULL_SCALE", "segment_tubules", "segment_droplets", "droplet_threshold",
    "tubule_indexes", "quantify_field", "tubule_dice", "quant_overlay_png",
]

#: Smallest tubule profile kept and scored (um^2): a disc of 60 um equivalent diameter.
#: Seminiferous tubules are 150-250 um across (SCO 100-150 um); smaller profiles are
#: border slivers or not tubules.
MIN_TUBULE_AREA_UM2: float = math.pi / 4.0 * 60.0**2

#: Default LD threshold on ``lipid`` (pure-lipid units). Best Dice against the simulator's
#: LD labels among 0.22-0.30 (inside tubules, 16 tuning fields: 0.22 -> 0.902, 0.24 -> 0.922,
#: 0.25 -> 0.927, 0.26 -> 0.930, 0.27 -> 0.926, 0.28 -> 0.924, 0.30 -> 0.907; 16 held-out
#: fields: 0.26 -> 0.935). The truth label is an in-focus droplet volume fraction >= 0.25
#: of a droplet of density ~0.8-1.3, hence a threshold near 0.25 of pure lipid.
DEFAULT_LD_THRESHOLD: float = 0.26

#: Droplet thresholding methods of :func:`segment_droplets`.
LD_METHODS: tuple[str, ...] = ("fixed", "otsu", "local")

#: Full scale of the overlay composite (reference units): (protein, lipid, SHG) -> R, G, B.
DISPLAY_FULL_SCALE: tuple[float, float, float] = (0.5, 0.5, 0.5)

# --- fixed design constants of segment_tubules (documented there) ---
_LIPID_CLIP = 0.15        # lipid clipped here before smoothing: LDs do not swamp the means
_LEYDIG_SIGMA_UM = 1.5    # smoothing of the Leydig test (cell scale)
_LEYDIG_PERCENTILE = 75.0
_REF_BAND_UM = 20.0       # wall brightness is measured within this of the epithelium
_REF_PERCENTILE = 90.0
_TOUCH_BAND_UM = 8.0      # a wall piece belongs to a tubule if it reaches this close
_MIN_INTERIOR_FRACTION = 0.1  # epithelium pieces below this x min_area_um2 are ignored
_LUMEN_RIM_FRACTION = 0.8  # empty space whose rim is this much one tubule is its lumen
_TISSUE_LIPID = 0.04      # cellular tissue (cytoplasm ~0.05-0.2) for the Otsu / local stats


class QuantError(ValueError):
    """Input the LD quantification cannot use: images of different shapes or not 2-D,
    NaN/inf values, a non-positive pixel size, bad options, or a field with no tubule."""


@dataclasses.dataclass
class FieldQuant:
    """Result of :func:`quantify_field` for one field.

    Attributes
    ----------
    tubules : ndarray of int32, (H, W)
        Tubule instance map, 0 = not a tubule, ids 1..n.
    droplets : ndarray of bool, (H, W)
        LD mask (whole field, interstitial Leydig-cell droplets included).
    rows : list of dict
        One row per tubule (:func:`tubule_indexes`).
    pixel_um : float
        Pixel size (um).
    ld_method : str
        Droplet method used (:data:`LD_METHODS`).
    ld_threshold : float
        Threshold used on ``lipid`` (pure-lipid units); NaN for ``"local"`` (a per-pixel
        threshold).
    """

    tubules: NDArray[np.int32]
    droplets: NDArray[np.bool_]
    rows: list[dict[str, Any]]
    pixel_um: float
    ld_method: str = "fixed"
    ld_threshold: float = DEFAULT_LD_THRESHOLD

    @property
    def n_tubules(self) -> int:
        """Number of tubules with a row (visible area >= the minimum)."""
        return len(self.rows)


# ----------------------------------------------------------------------------- checks

def _image(a: ArrayLike, name: str) -> NDArray[np.float32]:
    try:
        x = np.asarray(a, dtype=np.float32)
    except (TypeError, ValueError):
        raise QuantError(f"{name}: expected a 2-D array of numbers") from None
    if x.ndim != 2:
        raise QuantError(f"{name} of shape {x.shape}: expected a 2-D image (H, W)")
    if x.shape[0] < 2 or x.shape[1] < 2:
        raise QuantError(f"{name} of shape {x.shape}: expected at least 2 x 2 pixels")
    bad = ~np.isfinite(x)
    if bad.any():
        raise QuantError(f"{name} has {int(bad.sum())} NaN/inf pixel(s): expected finite "
                         "background-subtracted, power-normalised values")
    return x


def _images(named: Sequence[tuple[ArrayLike, str]]) -> list[NDArray[np.float32]]:
    out = [_image(a, n) for a, n in named]
    shapes = {x.shape for x in out}
    if len(shapes) > 1:
        raise QuantError("images of different shapes: " + ", ".join(
            f"{n} {x.shape}" for x, (_, n) in zip(out, named)) + "; expected one field")
    return out


def _number(v: Any, name: str) -> float:
    if isinstance(v, (bool, np.bool_)):
        raise QuantError(f"{name} = {v!r}: expected a number")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise QuantError(f"{name} = {v!r}: expected a number") from None
    if not math.isfinite(f):
        raise QuantError(f"{name} = {v!r}: expected a finite number")
    return f


def _positive(v: Any, name: str, unit: str = "") -> float:
    f = _number(v, name)
    if f <= 0:
        raise QuantError(f"{name} = {v!r}{' ' + unit if unit else ''}: expected > 0")
    return f


def _non_negative(v: Any, name: str, unit: str = "") -> float:
    f = _number(v, name)
    if f < 0:
        raise QuantError(f"{name} = {v!r}{' ' + unit if unit else ''}: expected >= 0")
    return f


def _pixel(pixel_um: Any) -> float:
    return _positive(pixel_um, "pixel_um", "um")


def _labels(a: ArrayLike, name: str) -> NDArray[np.int64]:
    x = np.asarray(a)
    if x.ndim != 2:
        raise QuantError(f"{name} of shape {x.shape}: expected a 2-D instance map (H, W)")
    if x.dtype.kind not in "iu":
        raise QuantError(f"{name} of dtype {x.dtype}: expected integer instance ids "
                         "(0 = not a tubule)")
    if x.size and x.min() < 0:
        raise QuantError(f"{name} has negative ids: expected 0 (not a tubule) or ids >= 1")
    return x.astype(np.int64, copy=False)


def _mask(a: ArrayLike, name: str) -> NDArray[np.bool_]:
    x = np.asarray(a)
    if x.ndim != 2:
        raise QuantError(f"{name} of shape {x.shape}: expected a 2-D mask (H, W)")
    if x.dtype != np.bool_:
        if x.dtype.kind not in "iuf" or not np.isin(x, (0, 1)).all():
            raise QuantError(f"{name} of dtype {x.dtype}: expected a boolean mask")
        x = x.astype(bool)
    return x


# ----------------------------------------------------------------------------- morphology

def _disk(radius_px: float) -> NDArray[np.bool_]:
    r = max(0, int(math.floor(radius_px + 1e-9)))
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= radius_px * radius_px + 1e-9


def _block_mean(a: NDArray[np.float32], k: int) -> NDArray[np.float32]:
    """Mean over k x k blocks (edge-padded to a multiple of k)."""
    if k == 1:
        return a.astype(np.float32, copy=True)
    h, w = a.shape
    hh, ww = -(-h // k), -(-w // k)
    p = np.pad(a, ((0, hh * k - h), (0, ww * k - w)), mode="edge")
    return p.reshape(hh, k, ww, k).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def _padded(op: Any, m: NDArray[np.bool_], radius_px: float) -> NDArray[np.bool_]:
    """Binary opening/closing with the field edge extended (edge-replicated), so that
    shapes cut by the border are not eroded from the border."""
    if radius_px < 1:
        return m.copy()
    r = int(math.ceil(radius_px)) + 1
    return op(np.pad(m, r, mode="edge"), _disk(radius_px))[r:-r, r:-r]


def _hull_fill(m: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Pixels whose centres lie in the convex hull of the centres of ``m`` (digital convex
    fill, no outward bias); ``m`` itself when its centres are collinear."""
    ys, xs = np.nonzero(m)
    out = m.copy()
    if ys.size < 3:
        return out
    pts = np.column_stack([ys, xs]).astype(np.float64)
    try:
        hull = ConvexHull(pts)
    except QhullError:  # collinear centres: the mask is its own hull
        return out
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    yy = np.arange(y0, y1, dtype=np.float64)[:, None]
    xx = np.arange(x0, x1, dtype=np.float64)[None, :]
    inside = np.ones((y1 - y0, x1 - x0), bool)
    for a, b, c in hull.equations:
        inside &= a * yy + b * xx + c <= 1e-9
    out[y0:y1, x0:x1] |= inside
    return out


def _relabel(lab: NDArray[np.integer]) -> NDArray[np.int32]:
    """Ids 1..n in order of first appearance (raster order); 0 stays 0."""
    flat = lab.ravel()
    u, first = np.unique(flat, return_index=True)
    order = u[np.argsort(first)]
    order = order[order != 0]
    lut = np.zeros(int(u.max()) + 1 if u.size else 1, np.int32)
    lut[order] = np.arange(1, order.size + 1, dtype=np.int32)
    return lut[lab]


# ----------------------------------------------------------------------------- tubules

def segment_tubules(protein: ArrayLike, shg: ArrayLike, lipid: ArrayLike, /, *,
                    pixel_um: float, grid_um: float = 1.2, shg_sigma_um: float = 1.5,
                    wall_shg: float = 0.05, free_shg: float = 0.02,
                    tissue_protein: float = 0.06, epithelium_sigma_um: float = 4.0,
                    epithelium_lipid: float = 0.033, leydig_lipid: float = 0.075,
                    core_um: float = 6.0, ring_um: float = 5.0,
                    min_ring_fraction: float = 0.3, merge_um: float = 3.0,
                    wall_max_um: float = 40.0, wall_fraction: float = 0.5,
                    wall_open_um: float = 2.0,
                    min_area_um2: float = MIN_TUBULE_AREA_UM2) -> NDArray[np.int32]:
    """Seminiferous-tubule instance map of one field: lamina propria (SHG ring) included,
    lumen filled.

    Parameters
    ----------
    protein : array (H, W)
        ~2930 cm^-1 SRS image over pure lipid at 2930 (reference units).
    shg : array (H, W)
        SHG image over dense collagen (dense fibrillar collagen = 1).
    lipid : array (H, W)
        ~2850 cm^-1 SRS image over pure lipid at 2850 (pure lipid = 1). Needed to tell
        germinal epithelium (diffuse cytoplasmic lipid ~0.05) from interstitium (~0.02) and
        from lipid-rich Leydig cells.
    pixel_um : float, keyword-only
        Pixel size (um).
    grid_um : float
        Working grid (um): images are block-averaged to about this pixel (1.2 um: 4 x 4 at
        0.3 um) and the map is returned at full resolution. Default 1.2.
    shg_sigma_um : float
        Gaussian sigma (um) of the SHG (and of the wall tests). Default 1.5.
    wall_shg : float
        Smoothed SHG above this (dense-collagen units) is lamina propria: the SHG ring.
        Default 0.05 (wall ~0.15-0.6, normal interstitium ~0.01).
    free_shg : float
        Epithelium is SHG-free: smoothed SHG below this (dense-collagen units); also the
        level above which a tubule may grow into its wall. Must be < ``wall_shg``.
        Default 0.02 (rejects the fibrotic SCO interstitium, SHG ~0.03-0.3).
    tissue_protein : float
        Protein (pure-lipid units at 2930, smoothed by ``epithelium_sigma_um``) above this is
        tissue; below is empty space (lumen, tears, outside the section). Default 0.06.
    epithelium_sigma_um : float
        Gaussian sigma (um) of the lipid/protein maps of the epithelium test. Default 4.
    epithelium_lipid : float
        Smoothed lipid (LD-clipped at 0.15, pure-lipid units) above this is epithelium-like
        tissue. Default 0.033 (epithelium 0.035-0.07, interstitium 0.02-0.03).
    leydig_lipid : float
        A candidate whose 75th percentile of lipid (LD-clipped, 1.5 um smoothing) exceeds
        this is a Leydig-cell cluster, not a tubule (pure-lipid units). Default 0.075
        (32 simulated fields, cores >= 283 um^2: tubules <= 0.063; non-tubule cores that
        pass the ring test, mostly Leydig clusters in fibrotic SCO interstitium, >= 0.091).
    core_um : float
        Epithelium candidates are eroded by this radius (um) and rebuilt within it, which
        cuts thin bridges to Leydig cells through wall gaps. Default 6.
    ring_um : float
        An outline pixel is "on the ring" within this distance (um) of the SHG wall.
        Default 5.
    min_ring_fraction : float
        Least fraction of a candidate's outline (field border and lumen edges excluded) on
        the SHG ring. Default 0.3 (tubule cores >= 283 um^2: 0.42-1, 5th percentile 0.59,
        NOA walls with gaps included; it rejects SHG-free interstitial pieces of normal
        testis, while Leydig clusters inside SCO fibrosis pass it and are rejected by
        ``leydig_lipid``).
    merge_um : float
        Kept epithelium pieces closer than ~2 x this (um) are one tubule (a morphological
        closing of that radius). Default 3 (two tubules are >= 14 um apart: two walls and
        the interstitial gap).
    wall_max_um : float
        A tubule grows at most this far (um) from its epithelium into its wall. Default 40
        (NOA walls up to ~35 um thick locally).
    wall_fraction : float
        Per tubule, wall pixels are those brighter than this fraction of the wall's
        brightness (90th percentile of smoothed SHG within 20 um of the epithelium),
        and at least ``wall_shg``: the outer edge at about half height, and fainter
        interstitial fibrosis excluded. Default 0.5.
    wall_open_um : float
        Radius (um) of the opening applied to each tubule's wall before the hull (removes
        thin fibrotic spurs). Default 2.
    min_area_um2 : float
        Tubules with a smaller (visible) area are dropped (um^2). Default
        :data:`MIN_TUBULE_AREA_UM2` (a 60 um disc).

    Returns
    -------
    ndarray of int32, (H, W)
        0 = not a tubule (interstitium, Leydig cells, empty space); tubules 1..n. All zero
        when no tubule is found (:func:`quantify_field` raises then).

    Notes
    -----
    On the working grid: (1) SHG-free, lipid-containing tissue is the epithelium candidate
    mask; (2) it is eroded by ``core_um``, labelled, and each core is rebuilt within
    ``core_um``; (3) a core is a tubule interior when at least ``min_ring_fraction`` of its
    outline lies within ``ring_um`` of the SHG ring and it is not Leydig-like; close pieces
    are merged; (4) the interiors flood their SHG-positive surroundings (a geodesic
    competition, so a wall goes to the tubule it encloses); (5) each tubule keeps its wall
    pixels above ``wall_fraction`` of its wall brightness, opened by ``wall_open_um``;
    (6) the tubule is the convex hull of epithelium + wall, limited to ``wall_max_um``
    from its epithelium (nearest epithelium wins between tubules); (7) empty space
    (protein below ``tissue_protein``) whose rim, the field border aside, is >= 80 % one
    tubule is that tubule's lumen (a lumen cut by the field border, which the hull of the
    epithelium may not cover). The hull fills enclosed lumens and bridges NOA wall gaps,
    which are too long (tens of um) for a morphological closing that would not also join
    neighbouring tubules (interstitial gaps are >= 6 um). Tubules are convex in section
    (oblique cuts of cylinders), so the hull costs little.

    Fixed design constants: lipid is clipped at 0.15 before the epithelium and Leydig tests
    (droplets do not swamp the means); the wall brightness is the 90th percentile of the
    smoothed SHG within 20 um of the epithelium; a wall piece must reach within 8 um of its
    epithelium; epithelium pieces under 0.1 x ``min_area_um2`` are ignored; the lumen rim
    fraction is 0.8.

    Known limits: a border-cut profile showing only its wall and a few um of epithelium
    can be missed (one of 162 truth tubules on the 32 simulated fields); the convex hull
    overestimates strongly non-convex (folded, damaged) tubules; step (7) could hand empty
    space outside the section to a tubule cut by the section edge if that tubule alone
    bounds it in the field.
    """
    p_img = _images([(protein, "protein"), (shg, "shg"), (lipid, "lipid")])
    pro, sh, lip = p_img
    px = _pixel(pixel_um)
    grid = _positive(grid_um, "grid_um", "um")
    sig_s = _positive(shg_sigma_um, "shg_sigma_um", "um")
    wall_shg = _positive(wall_shg, "wall_shg")
    free_shg = _positive(free_shg, "free_shg")
    if free_shg >= wall_shg:
        raise QuantError(f"free_shg = {free_shg} must be below wall_shg = {wall_shg} "
                         "(SHG-free epithelium vs SHG wall, dense-collagen units)")
    tissue_protein = _number(tissue_protein, "tissue_protein")
    sig_e = _positive(epithelium_sigma_um, "epithelium_sigma_um", "um")
    epithelium_lipid = _number(epithelium_lipid, "epithelium_lipid")
    leydig_lipid = _number(leydig_lipid, "leydig_lipid")
    core_um = _non_negative(core_um, "core_um", "um")
    ring_um = _non_negative(ring_um, "ring_um", "um")
    min_ring = _number(min_ring_fraction, "min_ring_fraction")
    if not 0 <= min_ring <= 1:
        raise QuantError(f"min_ring_fraction = {min_ring_fraction!r}: expected 0..1")
    merge_um = _non_negative(merge_um, "merge_um", "um")
    wall_max = _positive(wall_max_um, "wall_max_um", "um")
    wall_frac = _non_negative(wall_fraction, "wall_fraction")
    wall_open = _non_negative(wall_open_um, "wall_open_um", "um")
    min_area = _non_negative(min_area_um2, "min_area_um2", "um^2")

    shape = pro.shape
    k = max(1, int(round(grid / px)))
    p = k * px  # working pixel (um)
    S = ndimage.gaussian_filter(_block_mean(sh, k), sig_s / p)
    li = _block_mean(np.minimum(lip, _LIPID_CLIP), k)
    L = ndimage.gaussian_filter(li, sig_e / p)
    P = ndimage.gaussian_filter(_block_mean(pro, k), sig_e / p)
    L_cell = ndimage.gaussian_filter(li, _LEYDIG_SIGMA_UM / p)

    wall = S > wall_shg
    epi = (L > epithelium_lipid) & (S < free_shg) & (P > tissue_protein)

    # (2) cores rebuilt within core_um
    if core_um / p >= 1:
        cores = ndimage.binary_erosion(epi, _disk(core_um / p), border_value=1)
    else:
        cores = epi
    lab, n = ndimage.label(cores)
    if n:
        d, (iy, ix) = ndimage.distance_transform_edt(lab == 0, return_indices=True)
        lab = np.where(epi & (d * p <= core_um + p), lab[iy, ix], 0)
    # (3) ring support and Leydig test per core
    keep = np.zeros(n + 1, bool)
    if n:
        idx = np.arange(1, n + 1)
        near_wall = ndimage.binary_dilation(wall, _disk(ring_um / p)) if ring_um / p >= 1 \
            else wall
        # outlines of the hole-filled cores: a lumen's edge is not part of the outline
        holes = ndimage.binary_fill_holes(lab > 0) & (lab == 0)
        if holes.any():
            _, (hy, hx) = ndimage.distance_transform_edt(lab == 0, return_indices=True)
            lab_f = np.where(holes, lab[hy, hx], lab)
        else:
            lab_f = lab
        edge = (lab_f > 0) & ((ndimage.maximum_filter(lab_f, 3) != lab_f)
                              | (ndimage.minimum_filter(lab_f, 3) != lab_f))
        edge[0, :] = edge[-1, :] = False
        edge[:, 0] = edge[:, -1] = False
        n_edge = np.bincount(lab_f[edge], minlength=n + 1)[1:]
        n_ring = np.bincount(lab_f[edge & near_wall], minlength=n + 1)[1:]
        ring = n_ring / np.maximum(n_edge, 1)
        q = ndimage.labeled_comprehension(
            L_cell, lab, idx, lambda v: np.percentile(v, _LEYDIG_PERCENTILE), np.float64, 0.0)
        keep[1:] = (n_edge > 0) & (ring >= min_ring) & (q <= leydig_lipid)
    kept = keep[lab]
    bridge = _padded(ndimage.binary_closing, kept, merge_um / p) & (kept | ~epi)
    merged, m = ndimage.label(bridge)
    interior = np.where(kept, merged, 0)
    ia = np.bincount(interior.ravel(), minlength=m + 1) * p * p
    ok = ia >= _MIN_INTERIOR_FRACTION * min_area
    ok[0] = False
    interior = np.where(ok[interior], interior, 0)
    ids = np.flatnonzero(ok)
    out = np.zeros(interior.shape, np.int64)
    if ids.size:
        d, (iy, ix) = ndimage.distance_transform_edt(interior == 0, return_indices=True)
        near = interior[iy, ix]
        dum = d * p
        # (4) geodesic flood of the interiors through SHG-positive pixels
        flood = interior.copy()
        allowed = (S > free_shg) & (interior == 0)
        cross = ndimage.generate_binary_structure(2, 1)
        for _ in range(int(math.ceil(wall_max / p))):
            g = ndimage.grey_dilation(flood, footprint=cross)
            new = allowed & (flood == 0) & (g > 0)
            if not new.any():
                break
            flood[new] = g[new]
        for j in ids:
            ij = interior == j
            own = (flood == j) & ~ij
            ref_px = own & wall & (dum <= _REF_BAND_UM)
            ref = float(np.percentile(S[ref_px], _REF_PERCENTILE)) if ref_px.any() \
                else wall_shg
            wj = own & (S > max(wall_shg, wall_frac * ref))
            wj = _padded(ndimage.binary_opening, wj, wall_open / p)
            wl, nwl = ndimage.label(wj)
            if nwl:
                touch = np.unique(wl[wj & (dum <= _TOUCH_BAND_UM)])
                wj = np.isin(wl, touch[touch > 0])
            h = _hull_fill(ij | wj)
            h &= _hull_fill(ij) | ((near == j) & (dum <= wall_max))
            out[h & ((out == 0) | (near == j))] = j
        # (7) empty space (lumen) enclosed by one tubule, the field border aside
        dark, nd = ndimage.label(P <= tissue_protein)
        for i, sl in enumerate(ndimage.find_objects(dark), 1):
            if sl is None:
                continue
            sl = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in sl)
            comp = dark[sl] == i
            owners = out[sl][ndimage.binary_dilation(comp) & ~comp]
            if owners.size == 0:
                continue
            votes = np.bincount(owners)
            j = int(np.argmax(votes))
            if j > 0 and votes[j] >= _LUMEN_RIM_FRACTION * owners.size:
                out[sl][comp & (out[sl] == 0)] = j
    # (8) size filter, back to full resolution
    cnt = np.bincount(out.ravel())
    small = cnt * p * p < min_area
    small[0] = False
    out[small[out]] = 0
    out = _relabel(out)
    if k > 1:
        out = np.repeat(np.repeat(out, k, axis=0), k, axis=1)[:shape[0], :shape[1]]
    return np.ascontiguousarray(out, dtype=np.int32)


# ----------------------------------------------------------------------------- droplets

def _otsu(values: NDArray[np.floating], bins: int = 256) -> float:
    """Otsu's threshold of 1-D values (between-class variance maximum; the middle of a
    plateau of maxima)."""
    lo, hi = float(values.min()), float(np.percentile(values, 99.9))
    if not hi > lo:
        return hi
    h, e = np.histogram(values, bins=bins, range=(lo, hi))
    c = 0.5 * (e[:-1] + e[1:])
    w0 = np.cumsum(h, dtype=np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(h * c, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = w0 * w1 * (m0 / w0 - (m0[-1] - m0) / w1) ** 2
    var = np.where(np.isfinite(var), var, -1.0)
    # the middle of the maximum's plateau (separated classes: every bin in the gap ties)
    top = np.flatnonzero(var >= var.max() * (1.0 - 1e-9))
    return float(0.5 * (c[top[0]] + c[top[-1]]))


def _stats_mask(lip: NDArray[np.float32], mask: ArrayLike | None) -> NDArray[np.bool_]:
    if mask is None:
        sel = lip > _TISSUE_LIPID
    else:
        sel = _mask(mask, "mask")
        if sel.shape != lip.shape:
            raise QuantError(f"mask of shape {sel.shape} differs from lipid {lip.shape}")
    if sel.sum() < 16:
        raise QuantError(f"only {int(sel.sum())} tissue pixel(s) for the automatic LD "
                         f"threshold (lipid > {_TISSUE_LIPID} or the given mask): expected "
                         "a field with tissue, or use method='fixed'")
    return sel


def _local_residual(lip: NDArray[np.float32], px: float, background_um: float
                    ) -> NDArray[np.float32]:
    """``lipid`` minus its local median (window ``background_um``), the median taken on a
    grid of >= 0.6 um for speed."""
    k = max(1, int(round(0.6 / px)))
    small = _block_mean(lip, k)
    size = max(3, int(round(background_um / (k * px))) | 1)
    bg = ndimage.median_filter(small, size=size, mode="nearest")
    if k > 1:
        bg = np.repeat(np.repeat(bg, k, axis=0), k, axis=1)[:lip.shape[0], :lip.shape[1]]
    return lip - bg


def droplet_threshold(lipid: ArrayLike, /, *, mask: ArrayLike | None = None) -> float:
    """The automatic LD threshold of ``method="otsu"`` (pure-lipid units).

    Otsu's threshold of ``lipid`` over ``mask`` (default: cellular tissue, ``lipid > 0.04``;
    interstitium and empty space below it would pull the threshold down), the histogram
    (256 bins) clipped at its 99.9th percentile.
    """
    lip = _image(lipid, "lipid")
    return _otsu(lip[_stats_mask(lip, mask)])


def segment_droplets(lipid: ArrayLike, /, *, pixel_um: float,
                     threshold: float | None = None, method: str = "fixed",
                     k: float = 18.0, background_um: float = 5.0,
                     min_area_um2: float = 0.0, mask: ArrayLike | None = None
                     ) -> NDArray[np.bool_]:
    """Lipid-droplet mask: the paper's threshold on the 2850 cm^-1 channel.

    Parameters
    ----------
    lipid : array (H, W)
        ~2850 cm^-1 SRS image over pure lipid (pure lipid = 1).
    pixel_um : float, keyword-only
        Pixel size (um).
    threshold : float, optional
        ``method="fixed"``: LD where ``lipid > threshold`` (pure-lipid units); default
        :data:`DEFAULT_LD_THRESHOLD` (0.26). Not allowed with the automatic methods.
    method : {"fixed", "otsu", "local"}
        ``"fixed"`` (default; best Dice and the same rule for every field, so groups stay
        comparable); ``"otsu"``: Otsu's threshold of the tissue pixels
        (:func:`droplet_threshold`; it follows each field's droplet population, so it
        shifts with the phenotype);
        ``"local"``: ``lipid - median(lipid over background_um) > k x robust SD`` of that
        residual over the tissue (1.4826 x MAD).
    k : float
        Robust-SD multiple of ``"local"``. Default 18 (in-tubule Dice on the tuning
        fields: k = 10 -> 0.82, 12 -> 0.86, 15 -> 0.90, 18 -> 0.91, 20 -> 0.90, 25 -> 0.83).
    background_um : float
        Window (um) of the local median of ``"local"``. Default 5 (a few droplets wide).
    min_area_um2 : float
        Connected droplets (8-connectivity) smaller than this are dropped (um^2). Default 0
        (keep all: on simulated fields dropping droplets < 0.1 um^2, single 0.3 um pixels,
        lowers the in-tubule Dice from 0.930 to 0.916 -- small, partial-volume droplets are
        real; the fixed threshold is ~15 noise SD above the cytoplasm, so noise pixels do
        not pass).
    mask : array of bool (H, W), optional
        Pixels the automatic statistics use (default: ``lipid > 0.04``, cellular tissue).

    Returns
    -------
    ndarray of bool, (H, W)
    """
    lip = _image(lipid, "lipid")
    px = _pixel(pixel_um)
    if method not in LD_METHODS:
        raise QuantError(f"method = {method!r}: expected one of {', '.join(LD_METHODS)}")
    if method != "fixed" and threshold is not None:
        raise QuantError(f"threshold = {threshold!r} given with method = {method!r}: the "
                         "threshold is automatic there; use method='fixed'")
    min_area = _non_negative(min_area_um2, "min_area_um2", "um^2")
    if method == "fixed":
        t = (DEFAULT_LD_THRESHOLD if threshold is None
             else _positive(threshold, "threshold", "x pure lipid"))
        out = lip > t
    elif method == "otsu":
        out = lip > _otsu(lip[_stats_mask(lip, mask)])
    else:
        kk = _positive(k, "k")
        bg_um = _positive(background_um, "background_um", "um")
        sel = _stats_mask(lip, mask)
        r = _local_residual(lip, px, bg_um)
        rs = r[sel]
        sd = 1.4826 * float(np.median(np.abs(rs - np.median(rs))))
        out = r > kk * max(sd, 1e-6)
    if min_area > 0 and out.any():
        lab, n = ndimage.label(out, structure=np.ones((3, 3), bool))
        cnt = np.bincount(lab.ravel())
        good = cnt * px * px >= min_area
        good[0] = False
        out = good[lab]
    return out


# ----------------------------------------------------------------------------- indexes

def tubule_indexes(lipid: ArrayLike, tubules: ArrayLike, droplets: ArrayLike, /, *,
                   pixel_um: float, min_area_um2: float = MIN_TUBULE_AREA_UM2
                   ) -> list[dict[str, Any]]:
    """The paper's two indexes (and context) for every tubule of a field.

    Parameters
    ----------
    lipid : array (H, W)
        ~2850 cm^-1 image over pure lipid (pure lipid = 1).
    tubules : int array (H, W)
        Tubule instance map (0 = not a tubule).
    droplets : bool array (H, W)
        LD mask (droplets outside every tubule, e.g. Leydig cells, are ignored).
    pixel_um : float, keyword-only
        Pixel size (um).
    min_area_um2 : float
        Tubules with a smaller visible area get no row (um^2); default
        :data:`MIN_TUBULE_AREA_UM2`. Border-cut tubules at or above it are kept and
        flagged.

    Returns
    -------
    list of dict, by ``tubule_id``
        ``tubule_id`` (int), ``area_um2`` (float, visible area, wall and lumen included),
        ``ld_count`` (int, connected droplets (8-connectivity) with pixels in the tubule),
        ``ld_area_percent`` (float, 100 x LD pixels in the tubule / tubule pixels, %),
        ``ld_mean_intensity`` (float, mean ``lipid`` over the tubule's LD pixels, pure
        lipid = 1; NaN when the tubule has no LD), ``touches_border`` (bool, the tubule
        reaches the field edge: cut by it), ``centroid_x_um`` / ``centroid_y_um`` (float,
        from the field's top-left corner; x along columns, y along rows).
    """
    lip = _image(lipid, "lipid")
    tub = _labels(tubules, "tubules")
    ld = _mask(droplets, "droplets")
    if tub.shape != lip.shape or ld.shape != lip.shape:
        raise QuantError(f"lipid {lip.shape}, tubules {tub.shape} and droplets {ld.shape}: "
                         "expected the same field shape")
    px = _pixel(pixel_um)
    min_area = _non_negative(min_area_um2, "min_area_um2", "um^2")
    ids, dense = np.unique(tub, return_inverse=True)  # ids may be large and sparse
    dense = dense.reshape(tub.shape)
    nl = ids.size
    area = np.bincount(dense.ravel(), minlength=nl)
    in_ld = ld & (tub > 0)
    ld_px = np.bincount(dense[in_ld], minlength=nl)
    ld_sum = np.bincount(dense[in_ld], weights=lip[in_ld].astype(np.float64), minlength=nl)
    comp, nc = ndimage.label(in_ld, structure=np.ones((3, 3), bool))
    counts = np.zeros(nl, np.int64)
    if nc:
        pairs = np.unique(comp[in_ld].astype(np.int64) * nl + dense[in_ld])
        counts = np.bincount(pairs % nl, minlength=nl)
    border = np.zeros(nl, bool)
    for edge in (dense[0, :], dense[-1, :], dense[:, 0], dense[:, -1]):
        border[np.unique(edge)] = True
    rr, cc = np.indices(tub.shape, dtype=np.float64)
    sum_r = np.bincount(dense.ravel(), weights=rr.ravel(), minlength=nl)
    sum_c = np.bincount(dense.ravel(), weights=cc.ravel(), minlength=nl)
    rows: list[dict[str, Any]] = []
    for t in range(nl):
        a = int(area[t])
        if ids[t] == 0 or a * px * px < min_area:
            continue
        n_ld = int(ld_px[t])
        rows.append({
            "tubule_id": int(ids[t]),
            "area_um2": float(a * px * px),
            "ld_count": int(counts[t]),
            "ld_area_percent": float(100.0 * n_ld / a),
            "ld_mean_intensity": float(ld_sum[t] / n_ld) if n_ld else math.nan,
            "touches_border": bool(border[t]),
            "centroid_x_um": float((sum_c[t] / a + 0.5) * px),
            "centroid_y_um": float((sum_r[t] / a + 0.5) * px),
        })
    return rows


def quantify_field(lipid: ArrayLike, protein: ArrayLike, shg: ArrayLike, /, *,
                   pixel_um: float, ld_threshold: float | None = None,
                   ld_method: str = "fixed", ld_min_area_um2: float = 0.0,
                   min_area_um2: float = MIN_TUBULE_AREA_UM2,
                   tubule_options: Mapping[str, Any] | None = None) -> FieldQuant:
    """Tubules, droplets and the per-tubule indexes of one field.

    Parameters
    ----------
    lipid, protein, shg : arrays (H, W)
        The field in reference units (see the module docstring), same shape, finite.
    pixel_um : float, keyword-only
        Pixel size (um).
    ld_threshold : float, optional
        Fixed LD threshold (pure-lipid units); default :data:`DEFAULT_LD_THRESHOLD`.
        Only with ``ld_method="fixed"``.
    ld_method : {"fixed", "otsu", "local"}
        :func:`segment_droplets` method. Default ``"fixed"``.
    ld_min_area_um2 : float
        Smallest droplet kept (um^2); default 0.
    min_area_um2 : float
        Smallest tubule profile kept and quantified (um^2); default
        :data:`MIN_TUBULE_AREA_UM2`.
    tubule_options : mapping, optional
        Further keyword options of :func:`segment_tubules`.

    Returns
    -------
    FieldQuant

    Raises
    ------
    QuantError
        Bad images or options, or no tubule in the field.
    """
    lip, pro, sh = _images([(lipid, "lipid"), (protein, "protein"), (shg, "shg")])
    px = _pixel(pixel_um)
    opts = dict(tubule_options or {})
    for bad in ("pixel_um", "min_area_um2"):
        if bad in opts:
            raise QuantError(f"tubule_options[{bad!r}]: pass {bad} to quantify_field itself")
    allowed = [n for n, par in inspect.signature(segment_tubules).parameters.items()
               if par.kind is inspect.Parameter.KEYWORD_ONLY
               and n not in ("pixel_um", "min_area_um2")]
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise QuantError(f"tubule_options: unknown option(s) {', '.join(unknown)}; "
                         f"segment_tubules takes {', '.join(allowed)}")
    if ld_method not in LD_METHODS:
        raise QuantError(f"ld_method = {ld_method!r}: expected one of {', '.join(LD_METHODS)}")
    if ld_method != "fixed" and ld_threshold is not None:
        raise QuantError(f"ld_threshold = {ld_threshold!r} given with ld_method = "
                         f"{ld_method!r}: the threshold is automatic there; use "
                         "ld_method='fixed'")
    _non_negative(ld_min_area_um2, "ld_min_area_um2", "um^2")
    tub = segment_tubules(pro, sh, lip, pixel_um=px, min_area_um2=min_area_um2, **opts)
    if not tub.any():
        h, w = lip.shape
        raise QuantError(
            f"no seminiferous tubule found in the {w * px:.0f} x {h * px:.0f} um field: "
            "looked for SHG-free epithelium (lipid > "
            f"{opts.get('epithelium_lipid', 0.033)}, protein > "
            f"{opts.get('tissue_protein', 0.06)}) outlined by a lamina-propria SHG ring "
            f"(SHG > {opts.get('wall_shg', 0.05)}) with a visible area >= "
            f"{float(min_area_um2):.0f} um^2; the field may be interstitium, a tear or "
            "outside the section")
    if ld_method == "otsu":
        t_used = droplet_threshold(lip)
        drops = segment_droplets(lip, pixel_um=px, threshold=t_used,
                                 min_area_um2=ld_min_area_um2)
    else:
        t_used = math.nan if ld_method == "local" else (
            DEFAULT_LD_THRESHOLD if ld_threshold is None else _number(ld_threshold,
                                                                      "ld_threshold"))
        drops = segment_droplets(lip, pixel_um=px, threshold=ld_threshold, method=ld_method,
                                 min_area_um2=ld_min_area_um2)
    rows = tubule_indexes(lip, tub, drops, pixel_um=px, min_area_um2=min_area_um2)
    return FieldQuant(tubules=tub, droplets=drops, rows=rows, pixel_um=px,
                      ld_method=ld_method, ld_threshold=float(t_used))


# ----------------------------------------------------------------------------- scoring

def tubule_dice(pred: ArrayLike, truth_instance: ArrayLike, /, *, pixel_um: float = 0.3,
                min_area_um2: float = MIN_TUBULE_AREA_UM2) -> list[dict[str, Any]]:
    """Dice (and IoU) of the predicted tubule matching each truth tubule.

    Parameters
    ----------
    pred : int array (H, W)
        Predicted instance map (0 = not a tubule), e.g. :attr:`FieldQuant.tubules`.
    truth_instance : int array (H, W)
        Truth instance map (0 = not a tubule; the simulator's ``Composition.instance``,
        which covers wall, epithelium and lumen).
    pixel_um : float, keyword-only
        Pixel size (um); default 0.3 (the SRASH field, 360 um / 1200 px).
    min_area_um2 : float
        Truth tubules with a smaller visible area are not scored (um^2); default
        :data:`MIN_TUBULE_AREA_UM2`.

    Returns
    -------
    list of dict, by ``truth_id``
        ``truth_id``, ``area_um2`` (truth visible area), ``touches_border``, ``pred_id``
        (the predicted instance with the largest overlap; 0 when none overlaps), ``dice``
        and ``iou`` (0 for an unmatched truth tubule).
    """
    pr = _labels(pred, "pred")
    tr = _labels(truth_instance, "truth_instance")
    if pr.shape != tr.shape:
        raise QuantError(f"pred {pr.shape} and truth_instance {tr.shape}: expected the same "
                         "field shape")
    px = _pixel(pixel_um)
    min_area = _non_negative(min_area_um2, "min_area_um2", "um^2")
    _, tr_d = np.unique(tr, return_inverse=True)
    tids = np.unique(tr)
    tr_d = tr_d.reshape(tr.shape)
    pids, pr_d = np.unique(pr, return_inverse=True)
    pr_d = pr_d.reshape(pr.shape)
    nt, npd = tids.size, pids.size
    joint = np.bincount((tr_d * npd + pr_d).ravel(), minlength=nt * npd).reshape(nt, npd)
    t_area = joint.sum(axis=1)
    p_area = joint.sum(axis=0)
    border = set(np.unique(np.concatenate([tr[0], tr[-1], tr[:, 0], tr[:, -1]])).tolist())
    out: list[dict[str, Any]] = []
    for i, t in enumerate(tids):
        if t == 0 or t_area[i] * px * px < min_area:
            continue
        ov = joint[i].copy()
        ov[pids == 0] = 0
        j = int(np.argmax(ov))
        inter = int(ov[j])
        if inter == 0:
            pid, d, iou = 0, 0.0, 0.0
        else:
            pid = int(pids[j])
            d = 2.0 * inter / float(t_area[i] + p_area[j])
            iou = inter / float(t_area[i] + p_area[j] - inter)
        out.append({"truth_id": int(t), "area_um2": float(t_area[i] * px * px),
                    "touches_border": int(t) in border, "pred_id": pid,
                    "dice": float(d), "iou": float(iou)})
    return out


# ----------------------------------------------------------------------------- figure

def quant_overlay_png(path: str | os.PathLike, lipid: ArrayLike, protein: ArrayLike,
                      shg: ArrayLike, quant: FieldQuant, /, *,
                      full_scale: tuple[float, float, float] = DISPLAY_FULL_SCALE,
                      title: str | None = None) -> Path:
    """Composite-like RGB of the field with tubule outlines and droplets, as a PNG.

    R = protein, G = lipid, B = SHG, each divided by its ``full_scale`` (reference units:
    protein and lipid over pure lipid, SHG over dense collagen) and clipped to [0, 1].
    Tubule outlines are white (dashed when cut by the field border), labelled
    ``id: LD area % / LD mean intensity``; droplet outlines are yellow.

    Parameters
    ----------
    path : path-like
        Output PNG (written atomically; parents created).
    lipid, protein, shg : arrays (H, W)
        The field, as given to :func:`quantify_field`.
    quant : FieldQuant
        Its quantification.
    full_scale : (float, float, float), keyword-only
        Full scale of (protein, lipid, SHG); default :data:`DISPLAY_FULL_SCALE`.
    title : str, optional
        Figure title (default: tubule count and LD rule).

    Returns
    -------
    Path
    """
    lip, pro, sh = _images([(lipid, "lipid"), (protein, "protein"), (shg, "shg")])
    if not isinstance(quant, FieldQuant):
        raise QuantError(f"quant: expected a FieldQuant, got {type(quant).__name__}")
    if quant.tubules.shape != lip.shape or quant.droplets.shape != lip.shape:
        raise QuantError(f"quant maps {quant.tubules.shape} do not match the images "
                         f"{lip.shape}: expected the quantification of this field")
    try:
        fs = [float(v) for v in full_scale]
    except (TypeError, ValueError):
        raise QuantError(f"full_scale = {full_scale!r}: expected 3 numbers") from None
    if len(fs) != 3 or not all(math.isfinite(v) and v > 0 for v in fs):
        raise QuantError(f"full_scale = {full_scale!r}: expected 3 positive numbers "
                         "(protein, lipid, SHG)")
    rgb = np.stack([pro / fs[0], lip / fs[1], sh / fs[2]], axis=-1).clip(0.0, 1.0)
    h, w = lip.shape
    px = quant.pixel_um
    extent = (0.0, w * px, h * px, 0.0)
    fig = new_figure((7.2, 7.2 * h / w + 0.4))
    ax = fig.add_subplot()
    ax.imshow(rgb, extent=extent, interpolation="antialiased")
    yy = (np.arange(h) + 0.5) * px
    xx = (np.arange(w) + 0.5) * px
    if quant.droplets.any():
        ax.contour(xx, yy, quant.droplets.astype(np.float32), levels=[0.5],
                   colors="yellow", linewidths=0.4)
    for r in quant.rows:
        m = (quant.tubules == r["tubule_id"]).astype(np.float32)
        ax.contour(xx, yy, m, levels=[0.5], colors="white", linewidths=1.2,
                   linestyles="--" if r["touches_border"] else "-")
        inten = r["ld_mean_intensity"]
        txt = f"{r['tubule_id']}: {r['ld_area_percent']:.2f}% / " + (
            f"{inten:.2f}" if math.isfinite(inten) else "no LD")
        ax.text(r["centroid_x_um"], r["centroid_y_um"], txt, color="white", fontsize=8,
                ha="center", va="center",
                bbox={"facecolor": "black", "alpha": 0.5, "pad": 1.5, "lw": 0})
    rule = (f"LD: lipid > {quant.ld_threshold:.3g}" if math.isfinite(quant.ld_threshold)
            else f"LD: {quant.ld_method}")
    ax.set(xlim=(0, w * px), ylim=(h * px, 0), xlabel="x (um)", ylabel="y (um)",
           title=title if title is not None else
           f"{quant.n_tubules} tubule(s); {rule}; label: LD area % / mean intensity")
    return save_png(fig, path)
