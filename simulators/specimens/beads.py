"""Sub-resolution calibration beads on a slide in water (PSF measurement).

Two bead types, mixed at random: lipid beads (a ``lipid`` concentration blob, SRS-visible)
and SHG nanocrystals (BaTiO3-like: ``chi2`` only, no Raman species). Beads lie in one plane
(the focal plane) and keep at least ``min_spacing_um`` apart so their PSFs do not overlap.

Placement: square tiles, a Poisson number of candidates per tile from ``rng_for(0, i, j)``,
Matern type-II thinning with hard core ``min_spacing_um`` (the intensity is chosen so the
retained density equals :attr:`BeadsConfig.density_per_100um2`). Bead type is drawn with the
candidate, so it does not depend on the window.

Rendering keeps a bead's *integrated* signal right at any pixel size: each bead's axial
partial-volume profile ``f(rho) = erf(h / (2 sqrt 2 sigma_z))``, ``h = 2 sqrt(r^2 - rho^2)``
(the same law as :func:`~.raster.sphere_map`) is box-averaged over every pixel with an
adaptive sub-grid of pitch <= r / 8 laid on the global pixel lattice, so
``sum(map) * pixel_um**2`` equals ``integral f dA`` (:meth:`Beads.integrated_signal_um2`) to
well under 1 % from 0.01 to 1 um pixels, and overlapping windows agree exactly. For a bead
much smaller than the axial PSF, ``integral f dA ~= pi r^2 * (4 r / 3) / (sqrt(2 pi) sigma_z)``:
cross-section times the axial fraction of a slab of the bead's mean thickness.

Labels: ``LIPID_DROPLET`` (lipid bead) or ``COLLAGEN`` (SHG bead) on pixels whose area the
bead's cross-section covers by at least half, and always on the pixel holding the bead's
centre (so every bead is labelled at every pixel size); ``BACKGROUND`` elsewhere. The medium
is water 1.0; a bead displaces water by its partial volume. ``instance`` is the bead id.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterator, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.integrate import quad

from simulators.config import ConfigMixin
from simulators.errors import SettingsError, check_positive, check_range
from simulators.optics import FWHM_TO_SIGMA, SRS_AXIAL_FWHM_UM, axial_fraction
from simulators.specimens._raster import (
    PHASE_QUANTUM,
    LRUCache,
    lattice_of,
    matern_ii_intensity,
    matern_ii_keep,
)
from simulators.specimens.base import Composition, Label, Specimen, Window

BeadKind = Literal["lipid", "shg"]


@dataclasses.dataclass(frozen=True)
class BeadsConfig(ConfigMixin):
    """Settings of :class:`Beads`.

    ``density_per_100um2``: mean beads per 100 um^2 (0.25: ~25 in a 100 um field);
    ``diameter_um``: bead diameter (0.1 um: far below the 0.29 um lateral PSF);
    ``fraction_shg``: share of SHG nanocrystals (the rest are lipid beads);
    ``min_spacing_um``: least centre distance (hard core); ``lipid``: lipid density of a
    lipid bead; ``chi2``: SHG amplitude density of a nanocrystal; ``extent_um``: side of the
    square bead area centred on (0, 0); ``axial_fwhm_um``: axial PSF FWHM for the partial
    volume.
    """

    density_per_100um2: float = 0.25
    diameter_um: float = 0.1
    fraction_shg: float = 0.5
    min_spacing_um: float = 5.0
    lipid: float = 1.0
    chi2: float = 1.0
    extent_um: float = 4000.0
    axial_fwhm_um: float = SRS_AXIAL_FWHM_UM

    def __post_init__(self) -> None:
        check_positive("bead density", self.density_per_100um2, "per 100 um^2")
        check_range("bead diameter", self.diameter_um, 0.01, 10.0, "um")
        check_range("SHG bead fraction", self.fraction_shg, 0.0, 1.0)
        check_range("bead spacing", self.min_spacing_um, 0.5, 500.0, "um")
        if self.min_spacing_um < 2.0 * self.diameter_um:
            raise SettingsError(f"bead spacing {self.min_spacing_um:g} um must be at least two "
                                f"bead diameters ({2 * self.diameter_um:g} um)")
        check_range("lipid bead density", self.lipid, 0.0, 1.0)
        check_range("SHG bead chi2", self.chi2, 0.0, 10.0)
        check_range("bead area extent", self.extent_um, 10.0, 100_000.0, "um")
        check_positive("axial PSF FWHM", self.axial_fwhm_um, "um")
        fill = self.density_per_100um2 / 100.0 * math.pi * self.min_spacing_um**2
        if fill >= 0.9:
            limit = 0.9 * 100.0 / (math.pi * self.min_spacing_um**2)
            raise SettingsError(f"bead density {self.density_per_100um2:g} per 100 um^2 too "
                                f"high for {self.min_spacing_um:g} um spacing; allowed: below "
                                f"{limit:.3g} per 100 um^2")


@dataclasses.dataclass(frozen=True)
class BeadRecord:
    """One bead: id (> 0), centre (world um), diameter (um) and kind ("lipid" or "shg")."""

    bead_id: int
    x_um: float
    y_um: float
    diameter_um: float
    kind: BeadKind

    @property
    def center_um(self) -> tuple[float, float]:
        return (self.x_um, self.y_um)


def sphere_pixel_average(x_um: float, y_um: float, radius_um: float, *, pixel_um: float,
                         qx: int = 0, qy: int = 0, fwhm_z_um: float = SRS_AXIAL_FWHM_UM
                         ) -> tuple[int, int, NDArray[np.float64], NDArray[np.float64]]:
    """Pixel-averaged axial partial volume of one sphere centred on the focal plane.

    Lattice pixel ``G`` spans ``[(G + q/2**20) p, (G + 1 + q/2**20) p)`` (``qx, qy`` from
    :func:`~._raster.lattice_of`). Sub-samples of pitch ``p / n``, ``n = max(2, ceil(8 p / r))``,
    sit on that lattice, so the result depends on the lattice only, not on a window. Returns
    ``(gx, gy, pv, footprint)``: the global index of the first column/row of the box the
    sphere touches, the box-mean of ``erf(h / (2 sqrt 2 sigma_z))`` (``h`` the chord) and the
    fraction of each pixel covered by the sphere's cross-section, both shaped (ky, kx).
    ``pv.sum() * p**2`` approximates ``integral erf(h / (2 sqrt 2 sigma_z)) dA``.
    """
    p, r = pixel_um, radius_um
    fx, fy = qx / PHASE_QUANTUM, qy / PHASE_QUANTUM
    n = max(2, int(math.ceil(8.0 * p / r)))
    ax0, ax1 = math.floor((x_um - r) / p - fx), math.floor((x_um + r) / p - fx)
    ay0, ay1 = math.floor((y_um - r) / p - fy), math.floor((y_um + r) / p - fy)
    kx, ky = ax1 - ax0 + 1, ay1 - ay0 + 1
    # fine sub-sample centres on the global lattice (depend only on indices, not the window)
    u = ((np.arange(ax0 * n, (ax1 + 1) * n) + 0.5) / n + fx) * p - x_um
    v = ((np.arange(ay0 * n, (ay1 + 1) * n) + 0.5) / n + fy) * p - y_um
    rho2 = v[:, None] ** 2 + u[None, :] ** 2
    inside = rho2 < r * r
    chord = 2.0 * np.sqrt(np.maximum(r * r - rho2, 0.0))
    f = np.where(inside, axial_fraction(chord, fwhm_z_um), 0.0)
    pv = f.reshape(ky, n, kx, n).mean(axis=(1, 3))
    foot = inside.reshape(ky, n, kx, n).mean(axis=(1, 3))
    return ax0, ay0, pv, foot


class Beads(Specimen):
    """Sparse sub-resolution lipid and SHG beads in water (see module docstring)."""

    kind = "beads"

    def __init__(self, seed: int, config: BeadsConfig | None = None) -> None:
        super().__init__(seed)
        if config is None:
            config = BeadsConfig()
        if not isinstance(config, BeadsConfig):
            raise SettingsError(f"config must be a BeadsConfig, got {type(config).__name__}")
        self.config = config
        c = config
        self._tile_um = float(max(50.0, 3.0 * c.min_spacing_um))
        self._lam = matern_ii_intensity(c.density_per_100um2 / 100.0, c.min_spacing_um)
        self._ntiles = int(math.ceil(c.extent_um / 2.0 / self._tile_um)) + 1
        if (2 * self._ntiles) ** 2 * 4096 >= 2**31:
            raise SettingsError("bead area too large for 32-bit bead ids; allowed: smaller "
                                "extent_um or larger min_spacing_um")
        self._candidates = LRUCache(512)
        self._sites = LRUCache(512)
        self._maps = LRUCache(4096)

    @property
    def extent_um(self) -> tuple[float, float, float, float]:
        h = self.config.extent_um / 2.0
        return (-h, h, -h, h)

    # -- placement ---------------------------------------------------------------------
    def _tile_candidates(self, i: int, j: int) -> tuple[NDArray, ...]:
        def make() -> tuple[NDArray, ...]:
            t = self._tile_um
            rng = self.rng_for(0, i, j)
            n = min(int(rng.poisson(self._lam * t * t)), 4095)
            x = (i + rng.random(n)) * t
            y = (j + rng.random(n)) * t
            prio = rng.random(n)
            shg = rng.random(n) < self.config.fraction_shg
            ids = ((i + self._ntiles) * (2 * self._ntiles) + (j + self._ntiles)) * 4096 \
                + np.arange(n) + 1
            h = self.config.extent_um / 2.0
            inside = (np.abs(x) <= h) & (np.abs(y) <= h)
            return x[inside], y[inside], prio[inside], shg[inside], ids[inside]

        return self._candidates.get_or((i, j), make)

    def _tile_beads(self, i: int, j: int) -> list[BeadRecord]:
        def make() -> list[BeadRecord]:
            parts = [self._tile_candidates(i + di, j + dj)
                     for dj in (-1, 0, 1) for di in (-1, 0, 1)]
            x, y, prio, shg, ids = (np.concatenate([p[k] for p in parts]) for k in range(5))
            own = np.concatenate([np.full(p[0].size, k == 4) for k, p in enumerate(parts)])
            keep = matern_ii_keep(x, y, prio, self.config.min_spacing_um) & own
            d = self.config.diameter_um
            return [BeadRecord(int(ids[k]), float(x[k]), float(y[k]), d,
                               "shg" if shg[k] else "lipid") for k in np.flatnonzero(keep)]

        return self._sites.get_or((i, j), make)

    def _tiles_over(self, x0: float, x1: float, y0: float, y1: float
                    ) -> Iterator[tuple[int, int]]:
        t, n = self._tile_um, self._ntiles
        i0, i1 = max(-n, math.floor(x0 / t)), min(n - 1, math.floor(x1 / t))
        j0, j1 = max(-n, math.floor(y0 / t)), min(n - 1, math.floor(y1 / t))
        for j in range(j0, j1 + 1):
            for i in range(i0, i1 + 1):
                yield i, j

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in ("lipid", "shg", "any"):
            raise SettingsError(f"bead kind {kind!r} unknown; allowed: 'lipid', 'shg', 'any'")

    def beads_in(self, x0: float, x1: float, y0: float, y1: float, *, kind: str = "any"
                 ) -> list[BeadRecord]:
        """Beads whose centre lies in ``[x0, x1) x [y0, y1)`` (world um), sorted by id."""
        self._check_kind(kind)
        out = [b for i, j in self._tiles_over(x0, x1, y0, y1) for b in self._tile_beads(i, j)
               if x0 <= b.x_um < x1 and y0 <= b.y_um < y1 and kind in ("any", b.kind)]
        out.sort(key=lambda b: b.bead_id)
        return out

    def nearest_bead(self, x_um: float = 0.0, y_um: float = 0.0, kind: str = "lipid"
                     ) -> BeadRecord:
        """The bead of ``kind`` ("lipid", "shg" or "any") nearest to ``(x_um, y_um)``."""
        self._check_kind(kind)
        t, n = self._tile_um, self._ntiles
        ci, cj = math.floor(x_um / t), math.floor(y_um / t)
        best: tuple[float, BeadRecord] | None = None
        for ring in range(0, 2 * n + 2 + abs(ci) + abs(cj)):
            if best is not None and best[0] < (ring - 1) * t:
                break
            for i in range(ci - ring, ci + ring + 1):
                for j in range(cj - ring, cj + ring + 1):
                    if max(abs(i - ci), abs(j - cj)) != ring or not (-n <= i < n and -n <= j < n):
                        continue
                    for b in self._tile_beads(i, j):
                        if kind in ("any", b.kind):
                            d = math.hypot(b.x_um - x_um, b.y_um - y_um)
                            if best is None or d < best[0]:
                                best = (d, b)
        if best is None:
            raise SettingsError(f"this specimen has no {kind} beads; raise density_per_100um2 "
                                "or change fraction_shg")
        return best[1]

    def default_center_um(self) -> tuple[float, float]:
        """Centre (x, y) um of the lipid bead nearest the slide centre (of any bead when
        there is no lipid bead; the slide centre when there is no bead)."""
        for kind in ("lipid", "any"):
            try:
                return self.nearest_bead(0.0, 0.0, kind).center_um
            except SettingsError:
                continue
        return super().default_center_um()

    def integrated_signal_um2(self) -> float:
        """Exact ``integral f dA`` (um^2) of one bead's partial-volume map (see module doc)."""
        r = self.config.diameter_um / 2.0
        fw = self.config.axial_fwhm_um
        val, _ = quad(lambda rho: float(axial_fraction(2.0 * math.sqrt(max(r * r - rho * rho,
                                                                           0.0)), fw))
                      * 2.0 * math.pi * rho, 0.0, r, epsabs=0.0, epsrel=1e-10, limit=200)
        return float(val)

    def thin_bead_signal_um2(self) -> float:
        """Small-bead approximation ``pi r^2 * (4 r / 3) / (sqrt(2 pi) sigma_z)`` (um^2)."""
        r = self.config.diameter_um / 2.0
        sigma = self.config.axial_fwhm_um * FWHM_TO_SIGMA
        return math.pi * r * r * (4.0 * r / 3.0) / (math.sqrt(2.0 * math.pi) * sigma)

    # -- rendering ---------------------------------------------------------------------
    def render(self, window: Window) -> Composition:
        """Ground truth of ``window``: lipid / chi2 blobs, water medium, bead labels."""
        c = self.config
        gx, gy, qx, qy = lattice_of(window)
        p = window.pixel_um
        comp = Composition.empty(window)
        comp.concentrations["water"][:] = 1.0
        r = c.diameter_um / 2.0
        m = r + 2 * p
        x0, x1, y0, y1 = window.extent_um
        for b in self.beads_in(x0 - m, x1 + m, y0 - m, y1 + m):
            bx, by, pv, foot = self._maps.get_or(
                (b.bead_id, p, qx, qy),
                lambda: sphere_pixel_average(b.x_um, b.y_um, r, pixel_um=p, qx=qx, qy=qy,
                                             fwhm_z_um=c.axial_fwhm_um))
            ky, kx = pv.shape
            c0, c1 = max(bx, gx), min(bx + kx, gx + window.nx)
            r0, r1 = max(by, gy), min(by + ky, gy + window.ny)
            if c0 >= c1 or r0 >= r1:
                continue
            src = (slice(r0 - by, r1 - by), slice(c0 - bx, c1 - bx))
            dst = (slice(r0 - gy, r1 - gy), slice(c0 - gx, c1 - gx))
            pvs = pv[src]
            comp.concentrations["water"][dst] -= pvs.astype(np.float32)
            if b.kind == "lipid":
                comp.concentrations["lipid"][dst] += (c.lipid * pvs).astype(np.float32)
                label = Label.LIPID_DROPLET
            else:
                comp.chi2[dst] += (c.chi2 * pvs).astype(np.float32)
                label = Label.COLLAGEN
            mark = foot[src] >= 0.5
            # the pixel holding the centre is always labelled
            ccx = math.floor(b.x_um / p - qx / PHASE_QUANTUM) - bx
            ccy = math.floor(b.y_um / p - qy / PHASE_QUANTUM) - by
            full = np.zeros(pv.shape, bool)
            if 0 <= ccx < kx and 0 <= ccy < ky:
                full[ccy, ccx] = True
            mark |= full[src]
            comp.labels[dst][mark] = label
            comp.instance[dst][mark] = b.bead_id
        np.clip(comp.concentrations["water"], 0.0, 1.0, out=comp.concentrations["water"])
        return comp

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["integrated_signal_um2"] = self.integrated_signal_um2()
        return d
