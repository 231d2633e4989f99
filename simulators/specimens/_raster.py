"""Shared drawing helpers of the procedural specimens, in world coordinates (one copy each).

* value noise: a hash per integer lattice point (:func:`_hash2`), smoothstep-interpolated;
  :func:`noise_points` is the definition, :func:`value_noise` and the faster separable
  :func:`noise_grid` evaluate it on a window's pixels;
* stamping: anti-aliased coverage of ellipses (:func:`ellipse_coverage`, vectorised
  :func:`stamp_ellipses`) and the axial partial volume of spheres (:func:`sphere_map`),
  so objects smaller than a pixel keep their area and edges do not alias;
* lattice and packing: the global pixel lattice of a window (:func:`lattice_of`) and Matern
  type-II hard-core thinning;
* :class:`LRUCache` for lazily generated tiles and blocks.

Every function takes a :class:`~simulators.specimens.base.Window` and world-space shapes in
micrometres; the same world point gives the same value in any window.
"""

from __future__ import annotations

import collections
import math
from typing import Any, Callable, Hashable, Sequence, TypeVar

import numpy as np
from numpy.typing import NDArray

from simulators.optics import axial_fraction
from simulators.specimens.base import Window

_F32 = np.float32
_V = TypeVar("_V")
#: Lattice phase quantum: phases are multiples of 1/2**20 pixel (~1e-6 pixel).
PHASE_QUANTUM = 1 << 20


# ----------------------------------------------------------------------------- value noise
def _seed_bits(seed: int) -> int:
    """The seed's 64-bit term of :func:`_hash2`."""
    return (seed * 0x165667B19E3779F9) & 0xFFFFFFFFFFFFFFFF


def _hash2(ix: NDArray, iy: NDArray, seed: int) -> NDArray[np.float64]:
    """Deterministic uniform [0, 1) per integer lattice point (splitmix64-style)."""
    return _hash2_bits(ix, iy, np.uint64(_seed_bits(seed)))


def _hash2_bits(ix: NDArray, iy: NDArray, seed_bits: NDArray | np.uint64
                ) -> NDArray[np.float64]:
    """:func:`_hash2` with the seed's term(s) :func:`_seed_bits` given (uint64, broadcast
    against ``ix``), so several seeds hash in one call."""
    with np.errstate(over="ignore"):
        h = (ix.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (
            iy.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)) ^ seed_bits
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _smooth(t: NDArray) -> NDArray:
    return t * t * (3.0 - 2.0 * t)


def noise_points(x: NDArray, y: NDArray, seed: int, scale_um: float, octaves: int = 1
                 ) -> NDArray[np.float64]:
    """Value noise in [0, 1] at world points (um), float64 (the definition).

    Lattice of pitch ``scale_um / 2**o`` for octave ``o``, a hash per lattice point
    (seed ``31 seed + o``), smoothstep interpolation; octave amplitudes halve and the sum
    is normalised. ``x`` and ``y`` broadcast.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    total = np.zeros(np.broadcast(x, y).shape)
    norm = 0.0
    amp = 1.0
    for o in range(octaves):
        f = float(2**o)
        gx = (x / scale_um) * f
        gy = (y / scale_um) * f
        ix = np.floor(gx).astype(np.int64)
        iy = np.floor(gy).astype(np.int64)
        tx = _smooth(gx - ix)
        ty = _smooth(gy - iy)
        s = seed * 31 + o
        v00 = _hash2(ix, iy, s)
        v10 = _hash2(ix + 1, iy, s)
        v01 = _hash2(ix, iy + 1, s)
        v11 = _hash2(ix + 1, iy + 1, s)
        total += amp * ((v00 * (1 - tx) + v10 * tx) * (1 - ty) + (v01 * (1 - tx) + v11 * tx) * ty)
        norm += amp
        amp *= 0.5
    return total / norm


_M64 = 0xFFFFFFFFFFFFFFFF


def _hash2_int(ix: int, iy: int, seed_bits: int) -> float:
    """:func:`_hash2` of one lattice point in Python integers (the same bits)."""
    h = ((ix * 0x9E3779B97F4A7C15) & _M64) ^ ((iy * 0xC2B2AE3D27D4EB4F) & _M64) ^ seed_bits
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M64
    h ^= h >> 33
    return (h >> 11) / float(1 << 53)


def noise_point(x: float, y: float, seed: int, scale_um: float, octaves: int = 1) -> float:
    """:func:`noise_points` at one world point (um), in Python floats: the same number
    (the same IEEE operations in the same order), without numpy's per-call cost."""
    total = 0.0
    norm = 0.0
    amp = 1.0
    for o in range(octaves):
        f = float(2**o)
        gx = (x / scale_um) * f
        gy = (y / scale_um) * f
        ix = math.floor(gx)
        iy = math.floor(gy)
        tx = gx - ix
        ty = gy - iy
        tx = tx * tx * (3.0 - 2.0 * tx)
        ty = ty * ty * (3.0 - 2.0 * ty)
        b = _seed_bits(seed * 31 + o)
        v00 = _hash2_int(ix, iy, b)
        v10 = _hash2_int(ix + 1, iy, b)
        v01 = _hash2_int(ix, iy + 1, b)
        v11 = _hash2_int(ix + 1, iy + 1, b)
        total += amp * ((v00 * (1 - tx) + v10 * tx) * (1 - ty) + (v01 * (1 - tx) + v11 * tx) * ty)
        norm += amp
        amp *= 0.5
    return total / norm


def noise_layers(x: NDArray, y: NDArray, layers: Sequence[tuple[int, float, int]]
                 ) -> list[NDArray[np.float64]]:
    """:func:`noise_points` of several fields ``(seed, scale_um, octaves)`` at the same world
    points (um), bit-identical to calling it per field, with all lattice hashes in one
    call: fewer numpy calls, for the few points of a rejection test."""
    x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
    shape = x.shape
    x, y = x.reshape(-1), y.reshape(-1)
    rows = [(seed * 31 + o, scale, float(2**o)) for seed, scale, octaves in layers
            for o in range(octaves)]
    sc = np.array([r[1] for r in rows], float)[:, None]
    f = np.array([r[2] for r in rows], float)[:, None]
    gx = (x[None, :] / sc) * f
    gy = (y[None, :] / sc) * f
    ix = np.floor(gx).astype(np.int64)
    iy = np.floor(gy).astype(np.int64)
    tx = _smooth(gx - ix)
    ty = _smooth(gy - iy)
    bits = np.array([_seed_bits(r[0]) for r in rows], np.uint64)[None, :, None]
    v = _hash2_bits(np.stack([ix, ix + 1, ix, ix + 1]), np.stack([iy, iy, iy + 1, iy + 1]),
                    bits)
    val = (v[0] * (1 - tx) + v[1] * tx) * (1 - ty) + (v[2] * (1 - tx) + v[3] * tx) * ty
    out = []
    r = 0
    for _, _, octaves in layers:
        total = np.zeros(x.shape)
        norm = 0.0
        amp = 1.0
        for _ in range(octaves):
            total += amp * val[r]
            r += 1
            norm += amp
            amp *= 0.5
        out.append((total / norm).reshape(shape))
    return out


def value_noise(window: Window, seed: int, scale_um: float, *, octaves: int = 1
                ) -> NDArray[np.float32]:
    """Smooth procedural noise in [0, 1] on a window's pixel centres (float32, (ny, nx)).

    :func:`noise_points` on the pixel grid: value noise on a lattice of pitch ``scale_um``
    with smoothstep interpolation; extra ``octaves`` add detail at half the pitch each
    (amplitudes halve). Identical world points give identical values in any window.
    """
    x = window.xs()[None, :]
    y = window.ys()[:, None]
    return noise_points(x, y, seed, scale_um, octaves).astype(np.float32)


def noise_grid(window: Window, seed: int, scale_um: float, octaves: int = 1
               ) -> NDArray[np.float32]:
    """:func:`value_noise` on a window, computed separably (float32, (ny, nx)).

    Hashes only the lattice points that cover the window and interpolates rows then
    columns with gathers, about 5 full-window operations per octave instead of ~60.
    Values agree with :func:`value_noise` to float32 rounding.
    """
    total = None
    norm = 0.0
    amp = 1.0
    for o in range(octaves):
        f = float(2**o)
        gx = (window.xs() / scale_um) * f
        gy = (window.ys() / scale_um) * f
        ix = np.floor(gx).astype(np.int64)
        iy = np.floor(gy).astype(np.int64)
        tx = _smooth(gx - ix)
        ty = _smooth(gy - iy).astype(_F32)[:, None]
        lx, ly = ix.min(), iy.min()
        IX, IY = np.meshgrid(np.arange(lx, ix.max() + 2), np.arange(ly, iy.max() + 2))
        h = _hash2(IX, IY, seed * 31 + o)  # (Ly, Lx)
        cx = ix - lx
        g = (h[:, cx] * (1.0 - tx) + h[:, cx + 1] * tx).astype(_F32)  # (Ly, nx)
        ry = iy - ly
        n = g[ry]
        n *= (1.0 - ty)
        g1 = g[ry + 1]
        g1 *= ty
        n += g1
        del g1
        if total is None:
            total = n if amp == 1.0 else n * _F32(amp)
        else:
            total += _F32(amp) * n
        norm += amp
        amp *= 0.5
    assert total is not None
    if octaves > 1:
        total *= _F32(1.0 / norm)
    return total


def noise_max(window: Window, seed: int, scale_um: float) -> float:
    """Upper bound of one-octave noise on a window (max over the lattice points used)."""
    x0, x1, y0, y1 = window.extent_um
    ix = np.arange(math.floor(x0 / scale_um), math.floor(x1 / scale_um) + 2)
    iy = np.arange(math.floor(y0 / scale_um), math.floor(y1 / scale_um) + 2)
    IX, IY = np.meshgrid(ix, iy)
    return float(_hash2(IX, IY, seed * 31).max())


#: Quantiles (0, 0.05, ..., 1) of one-octave value noise, measured on 4e6 samples; turns an
#: "area fraction above the level" into a noise level.
_NOISE_Q = np.array([0.0013, 0.1481, 0.2095, 0.2579, 0.2991, 0.337, 0.3721, 0.4055, 0.4378,
                     0.4696, 0.501, 0.5322, 0.5636, 0.5954, 0.6285, 0.6636, 0.7012, 0.7425,
                     0.7904, 0.8513, 0.9996])


def noise_level(fraction_above: float) -> float:
    """Noise level exceeded on ``fraction_above`` of the plane (one-octave value noise)."""
    return float(np.interp(1.0 - fraction_above, np.linspace(0.0, 1.0, 21), _NOISE_Q))


# ----------------------------------------------------------------------------- stamping
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


#: Stamp half-widths (pixels): ~15 % steps, so a stamp box wastes at most ~30 % of its area.
_BUCKETS = np.unique(np.concatenate([np.arange(1, 9), np.round(8 * 1.15 ** np.arange(1, 40))])
                     ).astype(np.int64)


def stamp_ellipses(window: Window, x: NDArray, y: NDArray, a: NDArray, b: NDArray,
                   angle: NDArray, weights: Sequence[NDArray]
                   ) -> tuple[tuple[slice, slice], list[NDArray[np.float32]]] | None:
    """Anti-aliased coverage of many filled ellipses, summed with per-ellipse weights.

    Vectorised counterpart of :func:`ellipse_coverage` for thousands of small
    ellipses (nuclei, cells): each ellipse is evaluated on its own square pixel box (boxes
    grouped by size), with the edge ramped over one pixel using the normalised radius
    ``rho^2`` and the ellipse's mean radius, and scattered with ``np.add.at`` (sequential,
    so the result is deterministic and the same world pixel gets the same sum in any window).

    Parameters
    ----------
    window : Window
    x, y, a, b, angle : (n,) arrays
        Centres (um), semi-axes (um) and rotation of the ``a`` axis from +x (rad).
    weights : sequence of (n,) arrays
        One output map per weight vector: ``sum_i coverage_i * w_i``.

    Returns
    -------
    ``((rows, cols), maps)``: float32 maps over the pixel box the ellipses touch, or None
    when none touches the window.
    """
    p = window.pixel_um
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    angle = np.asarray(angle, float)
    # farthest reach of the edge ramp: rho^2 < 1 + p / sqrt(a b) along the long axis
    rmax = np.maximum(a, b) * np.sqrt(1.0 + p / np.sqrt(a * b))
    x0, x1, y0, y1 = window.extent_um
    keep = (x + rmax > x0 - p) & (x - rmax < x1 + p) & (y + rmax > y0 - p) & (y - rmax < y1 + p)
    if not keep.any():
        return None
    x, y, a, b, angle, rmax = x[keep], y[keep], a[keep], b[keep], angle[keep], rmax[keep]
    ws = [np.asarray(w, float)[keep] for w in weights]
    ci = np.floor((x - window.x_um) / p).astype(np.int64)
    ri = np.floor((y - window.y_um) / p).astype(np.int64)
    half = np.ceil(rmax / p).astype(np.int64) + 1
    c_lo = max(0, int((ci - half).min()))
    c_hi = min(window.nx, int((ci + half).max()) + 1)
    r_lo = max(0, int((ri - half).min()))
    r_hi = min(window.ny, int((ri + half).max()) + 1)
    if c_lo >= c_hi or r_lo >= r_hi:
        return None
    bucket = _BUCKETS[np.minimum(np.searchsorted(_BUCKETS, half), _BUCKETS.size - 1)]
    # padded canvas: every stamp pixel has a valid index (a touching stamp's centre lies
    # within half + 1 pixels of the box), the border is cropped at the end
    pad = 2 * int(bucket.max()) + 2
    cw = (c_hi - c_lo) + 2 * pad
    ch = (r_hi - r_lo) + 2 * pad
    canvases = [np.zeros(ch * cw, _F32) for _ in ws]
    ca = np.cos(angle)
    sa = np.sin(angle)
    # edge ramp: 1 - rho^2 ~ 2 (1 - rho) near the edge; distance ~ (1 - rho) sqrt(a b)
    kk = np.sqrt(a * b) / (2.0 * p)
    for hb in np.unique(bucket):
        sel = np.nonzero(bucket == hb)[0]
        k = 2 * int(hb) + 1
        step = max(1, int(2_000_000 // (k * k)))
        offs = np.arange(-hb, hb + 1)
        for s0 in range(0, sel.size, step):
            g = sel[s0:s0 + step]
            cc = ci[g][:, None] + offs[None, :]  # (n, k)
            rr = ri[g][:, None] + offs[None, :]
            dx = (window.x_um + (cc + 0.5) * p - x[g][:, None])[:, None, :]  # (n, 1, k)
            dy = (window.y_um + (rr + 0.5) * p - y[g][:, None])[:, :, None]  # (n, k, 1)
            ia = (1.0 / a[g])[:, None, None]
            ib = (1.0 / b[g])[:, None, None]
            cg, sg = ca[g][:, None, None], sa[g][:, None, None]
            u = (dx * (cg * ia)).astype(_F32) + (dy * (sg * ia)).astype(_F32)
            v = (dy * (cg * ib)).astype(_F32) - (dx * (sg * ib)).astype(_F32)
            u *= u
            v *= v
            u += v  # rho^2
            kg = kk[g].astype(_F32)[:, None, None]
            u *= -kg
            u += kg + _F32(0.5)
            cov = np.clip(u, 0.0, 1.0, out=u)
            flat = ((rr - r_lo + pad) * cw)[:, :, None] + (cc - c_lo + pad)[:, None, :]
            nz = np.flatnonzero(cov != 0)  # (a bool mask: faster than a float one)
            flat = flat.reshape(-1)[nz]
            cov = cov.reshape(-1)[nz]
            own = nz // (k * k)  # stamp of each element
            for canvas, w in zip(canvases, ws):
                wg = w[g].astype(_F32)
                np.add.at(canvas, flat, cov if np.all(wg == 1) else cov * wg[own])
    bh, bw = r_hi - r_lo, c_hi - c_lo
    maps = [cv.reshape(ch, cw)[pad:pad + bh, pad:pad + bw] for cv in canvases]
    return (slice(r_lo, r_hi), slice(c_lo, c_hi)), maps


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
    keep = ((xs + radii > x0 - p) & (xs - radii < x1 + p) & (ys + radii > y0 - p)
            & (ys - radii < y1 + p))
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
    if flat.size:  # the sums over the span of touched pixels only (the same sums)
        lo, hi = int(flat.min()), int(flat.max()) + 1
        out.reshape(-1)[lo:hi] = np.bincount(flat - lo, weights=acc[valid], minlength=hi - lo)
    return out


# ------------------------------------------------------------------ lattice, packing, LRU
def lattice_of(window: Window) -> tuple[int, int, int, int]:
    """Global lattice position of a window: ``(gx, gy, qx, qy)``.

    The window's first column is global pixel ``gx`` of the lattice whose pixel ``G`` has its
    left edge at ``(G + qx / 2**20) * pixel_um`` (same for rows). Windows that differ by whole
    pixels get the same phase ``(qx, qy)``, so content computed on the lattice is identical
    for them (float round-off of ``x_um`` is absorbed by the 1e-6-pixel phase quantum).
    """
    p = window.pixel_um
    ax = int(round(window.x_um / p * PHASE_QUANTUM))
    ay = int(round(window.y_um / p * PHASE_QUANTUM))
    gx, qx = divmod(ax, PHASE_QUANTUM)
    gy, qy = divmod(ay, PHASE_QUANTUM)
    return gx, gy, qx, qy


def lattice_window(gx: int, gy: int, qx: int, qy: int, nx: int, ny: int, pixel_um: float
                   ) -> Window:
    """The canonical :class:`Window` of ``nx x ny`` lattice pixels starting at ``(gx, gy)``."""
    return Window((gx + qx / PHASE_QUANTUM) * pixel_um, (gy + qy / PHASE_QUANTUM) * pixel_um,
                  int(nx), int(ny), pixel_um)


class LRUCache:
    """A small least-recently-used cache (``get_or(key, factory)``)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = int(maxsize)
        self._d: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()

    def get_or(self, key: Hashable, factory: Callable[[], _V]) -> _V:
        d = self._d
        if key in d:
            d.move_to_end(key)
            return d[key]
        value = factory()
        d[key] = value
        if len(d) > self.maxsize:
            d.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._d)

    def clear(self) -> None:
        self._d.clear()


def matern_ii_keep(x: NDArray, y: NDArray, prio: NDArray, hard_core_um: float) -> NDArray:
    """Matern type-II thinning: keep a point unless a point within ``hard_core_um`` has a
    higher priority (ties broken by index). Returns a boolean mask."""
    n = x.size
    if n == 0:
        return np.zeros(0, bool)
    d2 = (x[:, None] - x[None, :]) ** 2 + (y[:, None] - y[None, :]) ** 2
    close = d2 < hard_core_um**2
    np.fill_diagonal(close, False)
    idx = np.arange(n)
    beats = (prio[None, :] > prio[:, None]) | ((prio[None, :] == prio[:, None])
                                                & (idx[None, :] > idx[:, None]))
    return ~np.any(close & beats, axis=1)


def matern_ii_intensity(density: float, hard_core_um: float) -> float:
    """Candidate intensity (per um^2) whose Matern-II thinning retains ``density`` per um^2.

    Inverts ``density = (1 - exp(-lambda V)) / V`` with ``V = pi d^2``; needs ``density V < 1``.
    """
    v = math.pi * hard_core_um**2
    return -math.log1p(-density * v) / v
