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

The defaults were chosen on simulated 360 um ``testis`` fields of patient seeds 1-4 per
phenotype and checked on seeds 5-8 (held out). Tubule and droplet Dice against simulator
truth, the droplet-threshold comparison behind the default, the group pattern and run
times (measured: see docs/measured/ldquant.md).

Bad input raises :class:`QuantError` (a :class:`ValueError`).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.common.plotting import new_figure, save_png
from ml.ldquant._base import QuantError, _images, _non_negative, _number, _pixel
from ml.ldquant.droplets import (
    DEFAULT_LD_THRESHOLD,
    LD_METHODS,
    droplet_threshold,
    segment_droplets,
)
from ml.ldquant.indexes import tubule_indexes
from ml.ldquant.tubules import MIN_TUBULE_AREA_UM2, segment_tubules

__all__ = ["QuantError", "FieldQuant", "DISPLAY_FULL_SCALE", "quantify_field",
           "quant_overlay_png"]

#: Full scale of the overlay composite (reference units): (protein, lipid, SHG) -> R, G, B.
DISPLAY_FULL_SCALE: tuple[float, float, float] = (0.5, 0.5, 0.5)


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
            f"{opts.get('tissue_protein', 0.06)} after scaling the field's SRS to the "
            "reference level) outlined by a lamina-propria SHG ring "
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
