"""Collagen of the testis section for SHG: the lamina propria as wavy concentric lamellae
with circumferential fibres, and the loose fibres of the interstitium, with their in-plane
fibre direction (:attr:`~simulators.specimens.base.Composition.fibre_angle`).

Numbers and sources: docs/physics-notes.md (SHG polarisation and fibre direction: fibre
directions, lamellae). All maps float32, vectorised over the window; every value depends only on the
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


def texture_and_differences(window: Window, seed: int, scale_um: float
                            ) -> tuple[NDArray[np.float32], NDArray[np.float32],
                                       NDArray[np.float32]]:
    """The texture noise ``noise_grid(window, seed, scale_um)`` (0..1) and its central
    differences along x and y (``n(x + p) - n(x - p)``, i.e. ``2 p grad``), from one noise
    grid on the window grown by one pixel, so edge pixels get the same values in every
    window. The texture is a view into that grid."""
    n = noise_grid(window.padded(1), seed, scale_um)
    dx = np.subtract(n[1:-1, 2:], n[1:-1, :-2], dtype=_F32)
    dy = np.subtract(n[2:, 1:-1], n[:-2, 1:-1], dtype=_F32)
    return n[1:-1, 1:-1], dx, dy


def fibre_angle(window: Window, radial_weight: NDArray[np.float32], cx: NDArray[np.float32],
                cy: NDArray[np.float32], tex_diff: tuple[NDArray[np.float32],
                                                         NDArray[np.float32]],
                out: NDArray[np.float32] | None = None) -> NDArray[np.float32]:
    """In-plane fibre direction (rad, image frame, modulo pi), float32 (ny, nx).

    Lamina propria: the fibres run round the tubule. A circumferential fibre of a tubule
    cut obliquely projects on the section plane perpendicular to the in-plane radius
    ``r = (x - cx, y - cy)`` from the tubule's centre (``cx``, ``cy``: per pixel, of the
    owning tubule, um), whatever the axis ratio; the lamellae's waviness tilts it: the
    direction is perpendicular to ``-r / r' + LAMELLA_WAVE_UM grad(tex)`` (the gradient of
    the lamellar phase times the period; ``radial_weight`` = ``inside / r'``, 1/um, with
    ``inside`` 0..1 the weight of being in a tubule and ``r'`` its unstretched radius: equal
    to ``|r|`` on the profile's minor axis, up to the axis ratio smaller on the major axis,
    where the waviness then tilts the fibres correspondingly less). Interstitium
    (``radial_weight`` 0): loose fibres along the ridges of the texture noise, i.e.
    perpendicular to ``grad(tex)``. ``tex_diff``: :func:`texture_and_differences`.
    ``cx``, ``cy`` and ``tex_diff`` are overwritten (scratch); ``out``: where to write.
    """
    k = _F32(LAMELLA_WAVE_UM / (2.0 * window.pixel_um))
    dx = np.subtract(window.xs().astype(_F32)[None, :], cx, out=cx)
    dx *= radial_weight
    u = np.multiply(tex_diff[0], k, out=tex_diff[0])
    u -= dx  # x of the phase gradient
    dy = np.subtract(window.ys().astype(_F32)[:, None], cy, out=cy)
    dy *= radial_weight
    v = np.multiply(tex_diff[1], -k, out=tex_diff[1])
    v += dy  # minus y of the phase gradient
    # fibre = perpendicular of the gradient (gx, gy): (-gy, gx), angle atan2(gx, -gy)
    return np.arctan2(u, v, out=out)


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
