"""Stage 1 of the forward model: the specimen under the scanner -> concentration maps.

The scanner's field (:class:`~simulators.specimens.base.Window`) is rendered with a margin
wide enough that neither the PSF blur nor the registration shift of a raster sees the
window's edge, and the cross-phase-modulation (XPM) edge map is derived from the
refractive-index map once per window. The composition is weighted by the part of the
axial PSF that the section fills at the field's focal plane (:mod:`.focus`). Renders are
kept in a small LRU cache, so the Raman channels of one field render the specimen once.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from simulators.instrument.focus import FocalPlane, apply_focus
from simulators.optics import Objective
from simulators.specimens.base import Composition, Specimen, Window
from simulators.spectra import SPECIES

#: Refractive-index increment per unit concentration (for the XPM edge term).
_DN = {"lipid": 0.14, "protein": 0.18, "collagen": 0.18, "dna": 0.20, "water": 0.0}


def margin_px(objective: Objective, stokes_nm: float, pixel_um: float) -> int:
    """Render margin (px) so PSF blur and registration shifts never see the window edge:
    twice the widest (Stokes) illumination PSF FWHM, plus 3 pixels."""
    widest = objective.ipsf_fwhm_um(stokes_nm)[0]
    return int(math.ceil(2.0 * widest / pixel_um)) + 3


def xpm_edges(comp: Composition, pixel_um: float) -> NDArray[np.float32]:
    """High-pass of the refractive-index map: index minus its ~2 um local mean."""
    n_map = sum(_DN[s] * comp.concentrations[s] for s in SPECIES if _DN[s])
    size = max(3, int(round(2.0 / pixel_um)) | 1)
    return (n_map - ndimage.uniform_filter(n_map, size)).astype(np.float32)


_Key = tuple[Window, FocalPlane | None, tuple[float, float]]


class CompositionCache:
    """LRU cache of ``(composition, XPM edges)`` of padded windows, keyed by window, focal
    plane and axial PSF widths."""

    def __init__(self, size: int = 2) -> None:
        self.size = int(size)
        self._items: OrderedDict[_Key, tuple[Composition, NDArray[np.float32]]] = OrderedDict()

    def get(self, specimen: Specimen, window: Window, margin: int,
            plane: FocalPlane | None = None, fwhm_z_um: tuple[float, float] = (1.0, 1.0)
            ) -> tuple[Composition, NDArray[np.float32]]:
        """Ground truth of ``window`` padded by ``margin`` pixels at the focal ``plane``
        (None: no axial weighting), and its XPM edge map. ``fwhm_z_um``: (SRS, SHG
        amplitude) axial FWHMs (um) of :func:`~.focus.apply_focus`."""
        key = (window, plane, fwhm_z_um)
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
            return hit
        comp = specimen.render(window.padded(margin))
        if plane is not None:
            apply_focus(comp, specimen, plane, fwhm_srs_z_um=fwhm_z_um[0],
                        fwhm_shg_z_um=fwhm_z_um[1])
        out = (comp, xpm_edges(comp, window.pixel_um))
        self._items[key] = out
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return out
