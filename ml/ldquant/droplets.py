"""Lipid droplets of one field: the paper's threshold on the ~2850 cm^-1 channel.

:func:`segment_droplets` thresholds ``lipid`` (pure-lipid units): a fixed threshold
(:data:`DEFAULT_LD_THRESHOLD`), Otsu's threshold of the tissue pixels, or a local-background
rule; :func:`droplet_threshold` gives the automatic (Otsu) threshold alone.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from ml.common import morphology as _morph
from ml.ldquant._base import (
    QuantError,
    _block_mean,
    _image,
    _mask,
    _non_negative,
    _pixel,
    _positive,
)

__all__ = ["DEFAULT_LD_THRESHOLD", "LD_METHODS", "segment_droplets", "droplet_threshold"]

#: Default LD threshold on ``lipid`` (pure-lipid units): the best Dice against the
#: simulator's LD labels among 0.22-0.30 (the scan: ``docs/measured/ldquant-droplets.md``).
#: The truth label is an in-focus droplet volume fraction >= 0.25 of a droplet of density
#: ~0.8-1.3, hence a threshold near 0.25 of pure lipid.
DEFAULT_LD_THRESHOLD: float = 0.26

#: Droplet thresholding methods of :func:`segment_droplets`.
LD_METHODS: tuple[str, ...] = ("fixed", "otsu", "local")


_TISSUE_LIPID = 0.04      # cellular tissue (cytoplasm ~0.05-0.2) for the Otsu / local stats


# ----------------------------------------------------------------------------- droplets

def _otsu(values: NDArray[np.floating]) -> float:
    """Otsu's threshold of the tissue values above which droplets lie: the values above
    their 99.9th percentile (the brightest droplet cores) are left out, the rest go to
    :func:`ml.common.morphology.otsu_threshold` (256 bins)."""
    v = np.asarray(values, dtype=np.float64)
    return _morph.otsu_threshold(v[v <= np.percentile(v, 99.9)], bins=256)


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
    interstitium and empty space below it would pull the threshold down), the values above
    their 99.9th percentile left out, on a 256-bin histogram (scikit-image's Otsu,
    :func:`ml.common.morphology.otsu_threshold`: pixels ``> threshold`` are droplets).
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
        Robust-SD multiple of ``"local"``. Default 18, the best in-tubule Dice of a scan of
        ``k`` (``docs/measured/ldquant-droplets.md``).
    background_um : float
        Window (um) of the local median of ``"local"``. Default 5 (a few droplets wide).
    min_area_um2 : float
        Connected droplets (8-connectivity) smaller than this are dropped (um^2;
        :func:`ml.common.morphology.remove_small_objects`). Default 0 (keep all: small,
        partial-volume droplets are real, and dropping them lowers the in-tubule Dice on
        simulated fields, ``docs/measured/ldquant-droplets.md``; the fixed threshold is far
        above the cytoplasm's noise, so noise pixels do not pass).
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
        out = _morph.remove_small_objects(out, _min_pixels(min_area, px), connectivity=2)
    return out


def _min_pixels(area_um2: float, px: float) -> int:
    """Smallest pixel count ``n`` with ``n * px * px >= area_um2`` (exactly, in floats)."""
    n = max(1, int(math.ceil(area_um2 / (px * px))))
    while n > 1 and (n - 1) * px * px >= area_um2:
        n -= 1
    while n * px * px < area_um2:
        n += 1
    return n
