"""Axial response of the instrument to a section of finite thickness: where the focal plane
sits in the slab, and how much of the axial PSF the tissue fills (docs/physics-notes.md,
Focus and section thickness).

Heights in um, 0 = the focal plane at stage z = 0, which is the mid-plane of the specimen's
nominal slab (:attr:`~simulators.specimens.base.Specimen.nominal_thickness_um`): the slab
lies on the glass from ``-T0/2`` up to ``T(x, y) - T0/2``. The focal plane of a field is
``z_f(x, y) = z + s_x (x - x_c) + s_y (y - y_c)`` (:class:`FocalPlane`). Every tissue map of
the composition is weighted by the fraction of the axial PSF inside the slab
(:func:`~simulators.optics.slab_fraction`); the mounting medium, which the specimens render
as background (zero), fills the rest.
"""

from __future__ import annotations

import dataclasses
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf

from simulators.config import ConfigMixin
from simulators.optics import FWHM_TO_SIGMA
from simulators.specimens.base import Composition, Specimen, Window
from simulators.threads import worker_pool

_F32 = np.float32
#: Weights above 1 - 1e-4 are taken as 1: a surface farther than 3.72 sigma from the focal
#: plane (1/2 erfc(3.72 / sqrt 2) = 1.0e-4) is not evaluated, so blocks of a window whose
#: surfaces are all that far cost nothing.
TOLERANCE_SIGMAS = 3.72
#: Side (px) of the blocks a window is checked in.
BLOCK_PX = 256
def _pool() -> ThreadPoolExecutor:
    """This module's worker pool (:func:`simulators.threads.worker_pool`)."""
    return worker_pool("srash-focus", min(2, os.cpu_count() or 1))


@dataclasses.dataclass(frozen=True)
class FocalPlane(ConfigMixin):
    """The focal plane over a field: ``z_um`` at the field's centre ``center_um`` and
    slopes ``slope_x``, ``slope_y`` (um of height per um across the field: slide tilt)."""

    z_um: float = 0.0
    slope_x: float = 0.0
    slope_y: float = 0.0
    center_um: tuple[float, float] = (0.0, 0.0)

    def heights(self, window: Window) -> NDArray[np.float32]:
        """Focal height (um) at the window's pixel centres, float32 (ny, nx)."""
        cx, cy = self.center_um
        hx = (self.slope_x * (window.xs() - cx)).astype(_F32)
        hy = (self.z_um + self.slope_y * (window.ys() - cy)).astype(_F32)
        return hy[:, None] + hx[None, :]

    def range_um(self, window: Window) -> tuple[float, float]:
        """(lowest, highest) focal height over the window's edges (um)."""
        x0, x1, y0, y1 = window.extent_um
        cx, cy = self.center_um
        dx = sorted((self.slope_x * (x0 - cx), self.slope_x * (x1 - cx)))
        dy = sorted((self.slope_y * (y0 - cy), self.slope_y * (y1 - cy)))
        return self.z_um + dx[0] + dy[0], self.z_um + dx[1] + dy[1]


def slab_weights(above: NDArray[np.float32], below: NDArray[np.float32] | None,
                 fwhm_z_um: float) -> NDArray[np.float32]:
    """Float32 :func:`~simulators.optics.slab_fraction` from the heights (um) of the top
    surface above the focal plane (``above``) and of the focal plane above the bottom
    surface (``below``; None: the bottom infinitely far below)."""
    k = _F32(1.0 / (math.sqrt(2.0) * fwhm_z_um * FWHM_TO_SIGMA))
    w = erf(above * k)
    w += erf(below * k) if below is not None else _F32(1.0)
    w *= _F32(0.5)
    return np.clip(w, 0.0, 1.0, out=w)


def apply_focus(comp: Composition, specimen: Specimen, plane: FocalPlane, *,
                fwhm_srs_z_um: float, fwhm_shg_z_um: float) -> float:
    """Weight ``comp`` (in place) by the part of the axial PSF that the slab fills.

    Species concentrations and pigment (SRS and pump-probe: the SRS axial PSF,
    ``fwhm_srs_z_um``) and chi2 (SHG amplitude: the pump's one-photon axial PSF,
    ``fwhm_shg_z_um``) are multiplied by their weight ``w``: ``w tissue + (1 - w) medium``,
    the mounting medium rendered as the specimens render their background (all
    concentrations 0; its water adds no CH signal). Labels and instances are kept (the
    truth of the tissue at that x, y). The window is checked in blocks of
    :data:`BLOCK_PX`; a block is evaluated only where the focal plane may come within
    :data:`TOLERANCE_SIGMAS` of a surface (the specimen's :meth:`thickness_floor_um`);
    blocks are independent (disjoint pixels) and run on two threads. Returns the fraction
    of the window's pixels evaluated (0: the composition untouched).
    """
    nominal = specimen.nominal_thickness_um
    if nominal is None:
        return 0.0
    window = comp.window
    bottom = -0.5 * nominal
    reach = TOLERANCE_SIGMAS * FWHM_TO_SIGMA * max(fwhm_srs_z_um, fwhm_shg_z_um)
    lo_z, hi_z = plane.range_um(window)
    floor = specimen.thickness_floor_um(window)
    if lo_z - bottom > reach and floor is not None and floor + bottom - hi_z > reach:
        return 0.0
    has_chi2 = bool(comp.chi2.any())
    p = window.pixel_um
    maps = (*comp.concentrations.values(), comp.pigment)

    def block(r0: int, c0: int) -> int:
        sub = Window(window.x_um + c0 * p, window.y_um + r0 * p,
                     min(BLOCK_PX, window.nx - c0), min(BLOCK_PX, window.ny - r0), p)
        lo_z, hi_z = plane.range_um(sub)
        near_bottom = lo_z - bottom <= reach
        floor = specimen.thickness_floor_um(sub)
        if not near_bottom and floor is not None and floor + bottom - hi_z > reach:
            return 0
        t = specimen.thickness_map(sub)
        if t is None:
            return 0
        t += _F32(bottom)  # top surface height
        if not near_bottom and float(t.min()) - hi_z > reach:
            return 0
        h = plane.heights(sub)
        t -= h  # top surface above the focal plane
        if near_bottom:
            h -= _F32(bottom)  # focal plane above the bottom surface
        below = h if near_bottom else None
        sl = (slice(r0, r0 + sub.ny), slice(c0, c0 + sub.nx))
        w = slab_weights(t, below, fwhm_srs_z_um)
        for v in maps:
            v[sl] *= w
        if has_chi2:
            comp.chi2[sl] *= (w if math.isclose(fwhm_shg_z_um, fwhm_srs_z_um) else
                              slab_weights(t, below, fwhm_shg_z_um))
        return sub.nx * sub.ny

    starts = [(r0, c0) for r0 in range(0, window.ny, BLOCK_PX)
              for c0 in range(0, window.nx, BLOCK_PX)]
    if len(starts) > 1 and (os.cpu_count() or 1) > 1:
        done = sum(_pool().map(lambda rc: block(*rc), starts))
    else:
        done = sum(block(*rc) for rc in starts)
    return done / (window.nx * window.ny)
