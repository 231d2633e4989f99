"""Collagen of the testis section for SHG: the lamina propria as wavy concentric lamellae
with circumferential fibres, and the loose fibres of the interstitium, with their in-plane
fibre direction (:attr:`~simulators.specimens.base.Composition.fibre_angle`).

Numbers and sources: docs/physics-notes.md (testis phantom, collagen lamellae and fibre
directions). All maps float32, vectorised over the window; every value depends only on the
world point (and the owning tubule), so tiles of a mosaic agree.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from simulators.specimens._raster import noise_grid
from simulators.specimens.base import Window

_F32 = np.float32

#: Radial period (um, unstretched tubule frame) of the collagen lamellae of the lamina
#: propria: 2.5-5 lamellae across a normal 4-8 um wall, more in thickened walls.
LAMELLA_PERIOD_UM: float = 1.6
#: Peak-to-peak radial displacement (um) of a lamella by its waviness (the fine texture
#: noise, ~3.5 um grain): fibres deviate by up to ~15-20 deg from circumferential.
LAMELLA_WAVE_UM: float = 1.0
#: Relative amplitude of the lamellar modulation of the wall's collagen, per tubule state
#: (hyalinised walls lose their lamellar organisation).
LAMELLA_CONTRAST: dict[str, float] = {
    "complete": 0.7, "hypo": 0.7, "arrest_spt": 0.6, "arrest_spg": 0.6, "sco": 0.45,
    "sclerotic": 0.25,
}


def texture_gradient(window: Window, seed: int, scale_um: float
                     ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Gradient (1/um) of the texture noise ``noise_grid(window, seed, scale_um)``: central
    differences on the window grown by one pixel, so edge pixels get the same value in
    every window."""
    n = noise_grid(window.padded(1), seed, scale_um)
    k = _F32(0.5 / window.pixel_um)
    gx = np.subtract(n[1:-1, 2:], n[1:-1, :-2], dtype=_F32)
    gx *= k
    gy = np.subtract(n[2:, 1:-1], n[:-2, 1:-1], dtype=_F32)
    gy *= k
    return gx, gy


def fibre_angle(window: Window, inside: NDArray[np.float32], cx: NDArray[np.float32],
                cy: NDArray[np.float32], tex_grad: tuple[NDArray[np.float32],
                                                         NDArray[np.float32]]
                ) -> NDArray[np.float32]:
    """In-plane fibre direction (rad, image frame, modulo pi), float32 (ny, nx).

    Lamina propria (weight ``inside``, 0..1: the pixel lies in a tubule's outline): the
    fibres run round the tubule. A circumferential fibre of a tubule cut obliquely projects
    on the section plane perpendicular to the in-plane radius from the tubule's centre
    (``cx``, ``cy``: per-pixel centre of the owning tubule, um) whatever the axis ratio; the
    lamellae's waviness tilts it: the direction is perpendicular to
    ``-r_hat + LAMELLA_WAVE_UM grad(tex)`` (the gradient of the lamellar phase, times the
    period). Interstitium: loose fibres along the ridges of the texture noise, i.e.
    perpendicular to ``grad(tex)``.
    """
    gx, gy = tex_grad
    dx = np.subtract(window.xs().astype(_F32)[None, :], cx, dtype=_F32)
    dy = np.subtract(window.ys().astype(_F32)[:, None], cy, dtype=_F32)
    r = np.multiply(dx, dx, dtype=_F32)
    r += dy * dy
    np.sqrt(r, out=r)
    np.maximum(r, _F32(1e-3), out=r)
    np.divide(inside, r, out=r)  # inside / |r|
    u = np.multiply(gx, _F32(LAMELLA_WAVE_UM), dtype=_F32)
    dx *= r
    u -= dx  # x of the phase gradient
    v = np.multiply(gy, _F32(-LAMELLA_WAVE_UM), dtype=_F32)
    dy *= r
    v += dy  # minus y of the phase gradient
    # fibre = perpendicular of the gradient (gx, gy): (-gy, gx), angle atan2(gx, -gy)
    return np.arctan2(u, v, out=u)


def lamellae(depth: NDArray[np.float32], tex: NDArray[np.float32],
             contrast: NDArray[np.float32]) -> NDArray[np.float32]:
    """Radial lamellar profile of the lamina propria, ``1 + m cos(2 pi phase)`` with
    ``phase = (depth + LAMELLA_WAVE_UM tex) / LAMELLA_PERIOD_UM`` (``depth``: um below the
    tubule outline; ``tex``: 0..1 texture noise; ``contrast``: m per pixel); mean 1 over
    whole lamellae, so the wall's mean collagen is unchanged."""
    w = _F32(2.0 * math.pi / LAMELLA_PERIOD_UM)
    ph = np.multiply(tex, _F32(LAMELLA_WAVE_UM) * w, dtype=_F32)
    ph += depth * w
    np.cos(ph, out=ph)
    ph *= contrast
    ph += _F32(1.0)
    return ph
