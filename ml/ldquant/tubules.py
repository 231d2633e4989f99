"""Seminiferous tubules of one field: the instance map and its score against truth.

:func:`segment_tubules` finds the tubules (a tubule is the region a lamina-propria SHG ring
delimits, wall included, lumen filled; details in its notes); :func:`tubule_dice` scores an
instance map against a truth instance map. Inputs and units: :mod:`ml.ldquant.quantify`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from ml.common.morphology import convex_fill, disk
from ml.ldquant._base import (
    QuantError,
    _block_mean,
    _images,
    _labels,
    _non_negative,
    _number,
    _pixel,
    _positive,
)

__all__ = ["MIN_TUBULE_AREA_UM2", "SRS_REFERENCE_LEVEL", "estimate_srs_gain", "field_srs_gain",
           "segment_tubules", "tubule_dice"]

#: Smallest tubule profile kept and scored (um^2): a disc of 60 um equivalent diameter.
#: Seminiferous tubules are 150-250 um across (SCO 100-150 um); smaller profiles are
#: border slivers or not tubules.
MIN_TUBULE_AREA_UM2: float = math.pi / 4.0 * 60.0**2

# --- fixed design constants of segment_tubules (documented there) ---
_LIPID_CLIP = 0.15        # lipid clipped here before smoothing: LDs do not swamp the means
_LEYDIG_SIGMA_UM = 1.5    # smoothing of the Leydig test (cell scale)
_LEYDIG_PERCENTILE = 75.0
_REF_BAND_UM = 20.0       # wall brightness is measured within this of the epithelium
_REF_PERCENTILE = 90.0
_TOUCH_BAND_UM = 8.0      # a wall piece belongs to a tubule if it reaches this close
_MIN_INTERIOR_FRACTION = 0.1  # epithelium pieces below this x min_area_um2 are ignored
_LUMEN_RIM_FRACTION = 0.8  # empty space whose rim is this much one tubule is its lumen
# field SRS gain (srs_gain=None): tissue is smoothed protein above this x its 99th percentile
_GAIN_TISSUE_FRACTION = 0.25
_GAIN_PERCENTILE = 75.0    # of the smoothed protein of SHG-free tissue ...
_GAIN_MIN_PIXELS = 200     # ... over at least this many working-grid pixels
#: The field SRS level (75th percentile of the smoothed protein of SHG-free tissue, 2930 cm^-1
#: over pure lipid) the thresholds of :func:`segment_tubules` are stated for: the median of
#: the training cohort's fields (docs/measured/ldquant-tubules.md).
SRS_REFERENCE_LEVEL: float = 0.176


# ----------------------------------------------------------------------------- morphology

def _padded(op: Any, m: NDArray[np.bool_], radius_px: float) -> NDArray[np.bool_]:
    """Binary opening/closing with the field edge extended (edge-replicated), so that
    shapes cut by the border are not eroded from the border."""
    if radius_px < 1:
        return m.copy()
    r = int(math.ceil(radius_px)) + 1
    return op(np.pad(m, r, mode="edge"), disk(radius_px))[r:-r, r:-r]


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

def field_srs_gain(protein_smoothed: NDArray, shg_smoothed: NDArray, *, free_shg: float
                   ) -> float:
    """Factor that brings a field's SRS images to :data:`SRS_REFERENCE_LEVEL`.

    The SRS level of tissue differs between patients and sessions by a factor of about 3
    (section thickness, focus, the session's SRS gain; docs/physics-notes.md), so that no
    fixed threshold separates epithelium from interstitium in every field. The level is the
    75th percentile of the smoothed protein image over SHG-free tissue (smoothed SHG below
    ``free_shg``, protein above 0.25 x the field's 99th percentile: no walls, no empty
    space), which is mostly germinal epithelium. Returns 1.0 when fewer than 200 pixels
    qualify (a field of interstitium or empty space: nothing to normalise on).
    """
    hi = float(np.percentile(protein_smoothed, 99.0))
    tissue = (shg_smoothed < free_shg) & (protein_smoothed > _GAIN_TISSUE_FRACTION * hi)
    if hi <= 0 or int(tissue.sum()) < _GAIN_MIN_PIXELS:
        return 1.0
    level = float(np.percentile(protein_smoothed[tissue], _GAIN_PERCENTILE))
    return SRS_REFERENCE_LEVEL / level if level > 0 else 1.0


def _working_maps(pro: NDArray, sh: NDArray, *, pixel_um: float, grid_um: float,
                  shg_sigma_um: float, protein_sigma_um: float
                  ) -> tuple[int, float, NDArray, NDArray]:
    """``(k, working pixel um, smoothed SHG, smoothed protein)`` on the working grid
    (``k`` x ``k`` block means)."""
    k = max(1, int(round(grid_um / pixel_um)))
    p = k * pixel_um
    return (k, p, ndimage.gaussian_filter(_block_mean(sh, k), shg_sigma_um / p),
            ndimage.gaussian_filter(_block_mean(pro, k), protein_sigma_um / p))


def estimate_srs_gain(protein: ArrayLike, shg: ArrayLike, /, *, pixel_um: float,
                      grid_um: float = 1.2, shg_sigma_um: float = 1.5,
                      epithelium_sigma_um: float = 4.0, free_shg: float = 0.02) -> float:
    """The gain :func:`segment_tubules` applies to a field with the same settings (its
    defaults here), from the full-resolution protein and SHG images (reference units)."""
    pro, sh = _images([(protein, "protein"), (shg, "shg")])
    _, _, S, P = _working_maps(pro, sh, pixel_um=_pixel(pixel_um),
                               grid_um=_positive(grid_um, "grid_um", "um"),
                               shg_sigma_um=_positive(shg_sigma_um, "shg_sigma_um", "um"),
                               protein_sigma_um=_positive(epithelium_sigma_um,
                                                          "epithelium_sigma_um", "um"))
    return field_srs_gain(P, S, free_shg=_positive(free_shg, "free_shg"))


def segment_tubules(protein: ArrayLike, shg: ArrayLike, lipid: ArrayLike, /, *,
                    pixel_um: float, grid_um: float = 1.2, shg_sigma_um: float = 1.5,
                    wall_shg: float = 0.05, free_shg: float = 0.02,
                    tissue_protein: float = 0.06, epithelium_sigma_um: float = 4.0,
                    epithelium_lipid: float = 0.033, leydig_lipid: float = 0.075,
                    core_um: float = 6.0, ring_um: float = 5.0,
                    min_ring_fraction: float = 0.3, merge_um: float = 3.0,
                    wall_max_um: float = 40.0, wall_fraction: float = 0.5,
                    wall_open_um: float = 2.0,
                    min_area_um2: float = MIN_TUBULE_AREA_UM2,
                    srs_gain: float | None = None) -> NDArray[np.int32]:
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
        this is a Leydig-cell cluster, not a tubule (pure-lipid units). Default 0.075,
        between the tubules' and the Leydig clusters' values on simulated fields
        (``docs/measured/ldquant-tubules.md``).
    core_um : float
        Epithelium candidates are eroded by this radius (um) and rebuilt within it, which
        cuts thin bridges to Leydig cells through wall gaps. Default 6.
    ring_um : float
        An outline pixel is "on the ring" within this distance (um) of the SHG wall.
        Default 5.
    min_ring_fraction : float
        Least fraction of a candidate's outline (field border and lumen edges excluded) on
        the SHG ring. Default 0.3, below every tubule core's fraction on simulated fields,
        NOA walls with gaps included (``docs/measured/ldquant-tubules.md``); it rejects
        SHG-free interstitial pieces of normal testis, while Leydig clusters inside SCO
        fibrosis pass it and are rejected by ``leydig_lipid``.
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
    srs_gain : float, optional
        Factor applied to ``protein`` and ``lipid`` before every threshold above (which are
        stated for a field at :data:`SRS_REFERENCE_LEVEL`). Default None: estimated from
        the field (:func:`field_srs_gain`, the number :func:`estimate_srs_gain` gives);
        1.0 keeps the images' own scale (the behaviour before 2026-12-01).

    Returns
    -------
    ndarray of int32, (H, W)
        0 = not a tubule (interstitium, Leydig cells, empty space); tubules 1..n. All zero
        when no tubule is found (:func:`quantify_field` raises then).

    Notes
    -----
    On the working grid: (0) protein and lipid are scaled by ``srs_gain`` (estimated from
    the field by default); (1) SHG-free, lipid-containing tissue is the epithelium candidate
    mask; (2) it is eroded by ``core_um``, labelled, and each core is rebuilt within
    ``core_um``; (3) a core is a tubule interior when at least ``min_ring_fraction`` of its
    outline lies within ``ring_um`` of the SHG ring and it is not Leydig-like; close pieces
    are merged; (4) the interiors flood their SHG-positive surroundings (a geodesic
    competition, so a wall goes to the tubule it encloses); (5) each tubule keeps its wall
    pixels above ``wall_fraction`` of its wall brightness, opened by ``wall_open_um``;
    (6) the tubule is the convex hull of epithelium + wall
    (:func:`ml.common.morphology.convex_fill`), limited to ``wall_max_um``
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
    can be missed (how often: ``docs/measured/ldquant-tubules.md``); the convex hull
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
    if srs_gain is not None:
        srs_gain = _positive(srs_gain, "srs_gain")

    shape = pro.shape
    k, p, S, P = _working_maps(pro, sh, pixel_um=px, grid_um=grid, shg_sigma_um=sig_s,
                               protein_sigma_um=sig_e)
    gain = field_srs_gain(P, S, free_shg=free_shg) if srs_gain is None else srs_gain
    P *= gain
    # min(gain x lipid, clip) = gain x min(lipid, clip / gain): scaled on the working grid
    li = _block_mean(np.minimum(lip, np.float32(_LIPID_CLIP / gain)), k) * np.float32(gain)
    L = ndimage.gaussian_filter(li, sig_e / p)
    L_cell = ndimage.gaussian_filter(li, _LEYDIG_SIGMA_UM / p)

    wall = S > wall_shg
    epi = (L > epithelium_lipid) & (S < free_shg) & (P > tissue_protein)

    # (2) cores rebuilt within core_um
    if core_um / p >= 1:
        cores = ndimage.binary_erosion(epi, disk(core_um / p), border_value=1)
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
        near_wall = ndimage.binary_dilation(wall, disk(ring_um / p)) if ring_um / p >= 1 \
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
            h = convex_fill(ij | wj)
            h &= convex_fill(ij) | ((near == j) & (dum <= wall_max))
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
