"""The two LD indexes of each tubule: LD area percentage and mean LD lipid intensity.

:func:`tubule_indexes` gives one row per tubule (area, LD count, ``ld_area_percent``,
``ld_mean_intensity``, border flag, centroid) from a tubule instance map and an LD mask.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from ml.ldquant._base import QuantError, _image, _labels, _mask, _non_negative, _pixel
from ml.ldquant.tubules import MIN_TUBULE_AREA_UM2

__all__ = ["tubule_indexes"]


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
