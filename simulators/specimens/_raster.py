"""Drawing primitives in world coordinates for procedural specimens.

All functions take a :class:`~simulators.specimens.base.Window` and world-space shapes in
micrometres and return anti-aliased coverage (0..1, float32) on the window's pixels, so that
objects smaller than a pixel keep their area (partial volume) and edges do not alias.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from simulators.optics import axial_fraction
from simulators.specimens.base import Window


def ellipse_coverage(window: Window, cx: float, cy: float, a: float, b: float,
                     angle_rad: float = 0.0, *, grow_um: float = 0.0
                     ) -> tuple[tuple[slice, slice], NDArray[np.float32]] | None:
    """Anti-aliased coverage of a filled ellipse (semi-axes ``a``, ``b`` um, rotated).

    Returns ``((rows, cols), coverage)`` for the pixel box the ellipse can touch, or None
    when it misses the window. Coverage uses the approximate signed distance
    ``(1 - rho) * r_local`` (``rho`` the normalised radius), ramped over one pixel.
    ``grow_um`` (may be negative) offsets the boundary outwards.
    """
    a, b = a + grow_um, b + grow_um
    if a <= 0 or b <= 0:
        return None
    p = window.pixel_um
    r = max(a, b) + p
    sl = window.pixel_slices(cx - r, cx + r, cy - r, cy + r)
    if sl is None:
        return None
    rs, cs = sl
    xs = window.x_um + (np.arange(cs.start, cs.stop) + 0.5) * p - cx
    ys = window.y_um + (np.arange(rs.start, rs.stop) + 0.5) * p - cy
    ca, sa = math.cos(angle_rad), math.sin(angle_rad)
    u = xs[None, :] * ca + ys[:, None] * sa
    v = -xs[None, :] * sa + ys[:, None] * ca
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    # local radius of the ellipse along the pixel's direction
    with np.errstate(invalid="ignore", divide="ignore"):
        rloc = a * b / np.sqrt((b * u) ** 2 + (a * v) ** 2) * np.hypot(u, v)
    rloc = np.where(np.isfinite(rloc), rloc, min(a, b))
    dist = (1.0 - rho) * rloc
    cov = np.clip(dist / p + 0.5, 0.0, 1.0).astype(np.float32)
    return (rs, cs), cov


def paint(target: NDArray, sl: tuple[slice, slice], coverage: NDArray, value: float,
          *, mode: str = "over") -> None:
    """Composite ``value`` into ``target[sl]`` with ``coverage`` as alpha.

    ``mode="over"`` replaces (alpha blend), ``"add"`` adds ``value * coverage``,
    ``"max"`` keeps the larger of target and ``value * coverage``.
    """
    t = target[sl]
    if mode == "over":
        t += coverage * (value - t)
    elif mode == "add":
        t += coverage * value
    elif mode == "max":
        np.maximum(t, coverage * value, out=t)
    else:  # pragma: no cover - programming error
        raise ValueError(f"unknown paint mode {mode!r}")


def sphere_map(window: Window, xs: NDArray, ys: NDArray, radii: NDArray, *,
               fwhm_z_um: float, z_um: NDArray | None = None,
               weights: NDArray | None = None) -> NDArray[np.float32]:
    """Axial-partial-volume map of many small spheres (lipid droplets, beads, granules).

    Each sphere (centre ``xs, ys`` um, radius ``radii`` um, optional focus offset ``z_um``)
    contributes, at every pixel within its radius, the fraction of the axial PSF it fills:
    ``erf(h / (2 sqrt 2 sigma_z))`` with the chord ``h = 2 sqrt(r^2 - rho^2)`` (shortened by
    an axial offset). Contributions add, times ``weights`` (default 1), and the result is
    clipped to 1 per unit weight. Vectorised over spheres; pixels are sub-sampled 2x2 so
    sub-pixel spheres keep their area. Returns float32 (ny, nx).
    """
    xs = np.asarray(xs, float)
    ys = np.asarray(ys, float)
    radii = np.asarray(radii, float)
    n = xs.size
    out = np.zeros(window.shape, np.float32)
    if n == 0:
        return out
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    z = np.zeros(n) if z_um is None else np.asarray(z_um, float)
    p = window.pixel_um
    # keep spheres that can touch the window
    x0, x1, y0, y1 = window.extent_um
    keep = (xs + radii > x0 - p) & (xs - radii < x1 + p) & (ys + radii > y0 - p) & (ys - radii < y1 + p)
    xs, ys, radii, w, z = xs[keep], ys[keep], radii[keep], w[keep], z[keep]
    if xs.size == 0:
        return out
    half = int(math.ceil(radii.max() / p)) + 1
    offs = np.arange(-half, half + 1)
    ci = np.floor((xs - window.x_um) / p).astype(np.int64)
    ri = np.floor((ys - window.y_um) / p).astype(np.int64)
    # (n, k, k) neighbourhood pixel indices
    cc = ci[:, None, None] + offs[None, None, :]
    rr = ri[:, None, None] + offs[None, :, None]
    acc = np.zeros((xs.size, offs.size, offs.size), np.float64)
    for sy in (0.25, 0.75):  # 2x2 sub-samples per pixel
        for sx in (0.25, 0.75):
            px = window.x_um + (cc + sx) * p - xs[:, None, None]
            py = window.y_um + (rr + sy) * p - ys[:, None, None]
            rho2 = px * px + py * py
            chord = 2.0 * np.sqrt(np.maximum(radii[:, None, None] ** 2 - rho2, 0.0))
            # axial offset: the part of the chord inside +-|z| of focus shrinks symmetrically
            chord = np.maximum(chord - 2.0 * np.abs(z)[:, None, None], 0.0)
            acc += 0.25 * axial_fraction(chord, fwhm_z_um)
    acc *= w[:, None, None]
    valid = (cc >= 0) & (cc < window.nx) & (rr >= 0) & (rr < window.ny) & (acc > 0)
    flat = (rr * window.nx + cc)[valid]
    sums = np.bincount(flat, weights=acc[valid], minlength=window.nx * window.ny)
    out[:] = sums.reshape(window.shape)
    return out


def _hash2(ix: NDArray, iy: NDArray, seed: int) -> NDArray[np.float64]:
    """Deterministic uniform [0, 1) per integer lattice point (splitmix64-style)."""
    with np.errstate(over="ignore"):
        h = (ix.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (
            iy.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)) ^ np.uint64(
            (seed * 0x165667B19E3779F9) & 0xFFFFFFFFFFFFFFFF)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def value_noise(window: Window, seed: int, scale_um: float, *, octaves: int = 1
                ) -> NDArray[np.float32]:
    """Smooth procedural noise in [0, 1] defined in world coordinates (window independent).

    Value noise on a lattice of pitch ``scale_um`` with smoothstep interpolation; extra
    ``octaves`` add detail at half the pitch each (amplitudes halve). Identical world points
    give identical values in any window.
    """
    xs = window.xs() / scale_um
    ys = window.ys() / scale_um
    total = np.zeros(window.shape, np.float64)
    norm = 0.0
    amp = 1.0
    for o in range(octaves):
        f = float(2**o)
        gx, gy = xs * f, ys * f
        ix0, iy0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
        tx, ty = gx - ix0, gy - iy0
        tx = tx * tx * (3 - 2 * tx)
        ty = ty * ty * (3 - 2 * ty)
        IX, IY = np.meshgrid(ix0, iy0)
        s = seed * 31 + o
        v00 = _hash2(IX, IY, s)
        v10 = _hash2(IX + 1, IY, s)
        v01 = _hash2(IX, IY + 1, s)
        v11 = _hash2(IX + 1, IY + 1, s)
        TX, TY = tx[None, :], ty[:, None]
        total += amp * ((v00 * (1 - TX) + v10 * TX) * (1 - TY) + (v01 * (1 - TX) + v11 * TX) * TY)
        norm += amp
        amp *= 0.5
    return (total / norm).astype(np.float32)
