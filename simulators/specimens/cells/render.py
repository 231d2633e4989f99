"""Exfoliated epithelial cells (gastric brushing cytology) in aqueous medium.

The hyperspectral-SRS specimen (docs/physics-notes.md, exfoliated-cell phantom): flat,
irregular cells of 15-40 um lying apart on a slide in water, each with a nucleus (DNA +
protein, a little less lipid than the cytoplasm, chromatin texture, often a nucleolus), a
protein-rich textured cytoplasm and 5-60 lipid droplets (0.4-2.5 um, partly clustered,
slightly out of focus), sometimes a few pigment granules. Collagen (chi2) is zero everywhere.
Settings: :mod:`.config`; one cell's geometry: :mod:`.geometry`.

Placement (lazy, deterministic). The slide is cut into square tiles; tile ``(i, j)`` draws a
Poisson number of candidate cells from ``rng_for(0, i, j)``. Candidates are thinned by a
Matern type-II hard core (a candidate dies when another one within ``min diameter + gap``
has a higher random priority), which is local and gives the retained density
``(1 - exp(-lambda V)) / V`` exactly, so ``lambda`` is chosen to hit
:attr:`CellsConfig.density_per_mm2`. Each survivor's drawn diameter is then reduced where
needed so that no two cells come closer than ``gap_um`` (pairwise allocation, never below the
minimum diameter). A cell's content (shape, nucleus, droplets...) comes from its own
generator ``rng_for(1, cell_id)`` and is cached.

Rendering (exact window agreement). Pixels are drawn in canonical blocks of 128 x 128 pixels
on a global lattice (pixel ``G`` has its left edge at ``(G + phase) * pixel_um``); a block's
content depends only on (seed, pixel size, lattice phase, block index), so any two windows on
the same lattice (integer-pixel offsets) agree bit for bit on shared pixels. Blocks are
cached (LRU), so mosaics and repeated fields only copy memory.

Truth labels (per pixel): ``CYTOPLASM`` where the cell's anti-aliased coverage is >= 0.5,
``NUCLEUS`` where in addition the nucleus coverage is >= 0.5, ``LIPID_DROPLET`` where the
droplets' axial partial-volume map (:func:`~simulators.specimens._raster.sphere_map`,
clipped to 1) is >= 0.5, i.e. lipid fills at least half of the axial PSF there (droplets
under ~0.6 um, or far out of focus, stay unlabelled: they are too faint to be called
droplets). ``instance`` is the cell id (> 0, stable) wherever the cell coverage is >= 0.5.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from simulators.errors import SettingsError
from simulators.optics import FWHM_TO_SIGMA, Objective, slab_fraction
from simulators.specimens._raster import (
    LRUCache,
    ellipse_coverage,
    lattice_of,
    lattice_window,
    matern_ii_intensity,
    matern_ii_keep,
    sphere_map,
    value_noise,
)
from simulators.specimens.base import Composition, Label, Specimen, Window
from simulators.specimens.cells.config import CellsConfig
from simulators.specimens.cells.geometry import CellRecord, Site, shape_factor

#: Pixels per side of a canonical render block.
BLOCK_PX = 128
#: Lateral s.d. of the SRS PSF at the lipid channel (um) and the cap on the extra
#: out-of-focus blur of a cell (um).
LATERAL_SIGMA_UM = float(Objective().srs_fwhm_um(795.9, 1031.0)[0]) * FWHM_TO_SIGMA
MAX_BLUR_UM = 1.5
#: Bacteria: (protein, lipid, nucleic acid) mass fractions: ~30 % dry mass, of which ~55 %
#: protein, ~9 % lipid (+ LPS), ~23 % RNA + DNA (E. coli; docs/physics-notes.md).
BACTERIA_COMPOSITION = (0.165, 0.04, 0.07)


# ----------------------------------------------------------------------------- specimen
class ExfoliatedCells(Specimen):
    """Exfoliated gastric epithelial cells in water on a slide (see module docstring).

    ``ExfoliatedCells(seed, config)``; :meth:`render` any window; :meth:`cells_in` lists the
    cells touching a box; :meth:`nearest_cell` / :meth:`first_cell_center` find a field with
    a cell in it.
    """

    kind = "cells"

    def __init__(self, seed: int, config: CellsConfig | None = None) -> None:
        super().__init__(seed)
        if config is None:
            config = CellsConfig()
        if not isinstance(config, CellsConfig):
            raise SettingsError(f"config must be a CellsConfig, got {type(config).__name__}")
        self.config = config
        c = config
        self._tile_um = float(max(100.0, 2.0 * (c.diameter_um[1] + c.gap_um) + 1.0))
        self._lam = matern_ii_intensity(c.density_per_mm2 * 1e-6, c.hard_core_um)
        half = c.extent_um / 2.0
        self._ntiles = int(math.ceil(half / self._tile_um)) + 1  # tiles -n..n-1 per axis
        if (2 * self._ntiles) ** 2 * 256 >= 2**27:
            raise SettingsError("slide extent too large for 32-bit cell ids; allowed: smaller "
                                "extent_um or a larger minimum cell diameter")
        rmax = c.diameter_um[1] / 2.0
        # farthest a clump cell's outline reaches from its founder's centre
        self._reach_um = rmax + c.clump_size[1] * c.clump_overlap[1] * 2.0 * rmax \
            if c.clump_probability > 0 else rmax
        self._candidates = LRUCache(256)
        self._extras = LRUCache(256)
        self._sites = LRUCache(256)
        self._records = LRUCache(4096)
        self._blocks = LRUCache(160)

    # -- geometry ---------------------------------------------------------------------
    @property
    def extent_um(self) -> tuple[float, float, float, float]:
        h = self.config.extent_um / 2.0
        return (-h, h, -h, h)

    def _tile_candidates(self, i: int, j: int) -> tuple[NDArray, ...]:
        def make() -> tuple[NDArray, ...]:
            c, t = self.config, self._tile_um
            rng = self.rng_for(0, i, j)
            n = min(int(rng.poisson(self._lam * t * t)), 255)
            x = (i + rng.random(n)) * t
            y = (j + rng.random(n)) * t
            prio = rng.random(n)
            r0 = rng.uniform(c.diameter_um[0], c.diameter_um[1], n) / 2.0
            ids = ((i + self._ntiles) * (2 * self._ntiles) + (j + self._ntiles)) * 256 \
                + np.arange(n) + 1
            h = c.extent_um / 2.0
            inside = (np.abs(x) <= h) & (np.abs(y) <= h)
            if abs(i) > self._ntiles or abs(j) > self._ntiles:
                inside[:] = False
            return x[inside], y[inside], prio[inside], r0[inside], ids[inside]

        return self._candidates.get_or((i, j), make)

    def _tile_sites(self, i: int, j: int) -> list[Site]:
        """Retained, size-adjusted cells whose centre lies in tile ``(i, j)``."""

        def make() -> list[Site]:
            c = self.config
            parts = [self._tile_candidates(i + di, j + dj)
                     for dj in (-1, 0, 1) for di in (-1, 0, 1)]
            x, y, prio, r0, ids = (np.concatenate([p[k] for p in parts]) for k in range(5))
            own = np.concatenate([np.full(p[0].size, k == 4) for k, p in enumerate(parts)])
            keep = matern_ii_keep(x, y, prio, c.hard_core_um)
            x, y, r0, ids, own = x[keep], y[keep], r0[keep], ids[keep], own[keep]
            rmin = c.diameter_um[0] / 2.0
            sites = []
            for k in np.flatnonzero(own):
                r = r0[k]
                d = np.hypot(x - x[k], y - y[k])
                for m in np.flatnonzero((d < r0[k] + r0 + c.gap_um) & (ids != ids[k])):
                    avail = d[m] - c.gap_um
                    # pair allocation, computed identically from both sides
                    (rs, is_), (rl, _) = sorted([(r0[k], ids[k]), (r0[m], ids[m])])
                    small = min(rs, max(rmin, avail * rs / (rs + rl)))
                    r = min(r, small if ids[k] == is_ else avail - small)
                sites.extend(self._clump(int(ids[k]), float(x[k]), float(y[k]), float(r)))
            return sites

        return self._sites.get_or((i, j), make)

    def _clump(self, cid: int, x: float, y: float, r: float) -> list[Site]:
        """A founder cell and its satellites (issue 15): heights, thicknesses, overlaps.

        The founder's mid-plane lies ``N(0, focus_sd_um)`` from the focal plane; each
        satellite overlaps a cell of the clump (centre distance ``clump_overlap`` x the sum
        of the radii) and is stacked directly above or below the clump, so slabs never
        interpenetrate. Ids: ``founder + j * 2**27``. Drawn from ``rng_for(2, founder id)``.
        """
        c = self.config
        rng = self.rng_for(2, cid)
        t0, t1 = c.cell_thickness_um
        th = float(rng.uniform(t0, t1))
        z = float(rng.normal(0.0, c.focus_sd_um)) if c.focus_sd_um else 0.0
        out = [Site(cid, x, y, r, z, th, cid)]
        if rng.random() >= c.clump_probability:
            return out
        n = int(rng.integers(c.clump_size[0], c.clump_size[1] + 1))
        top, bottom = z + th / 2, z - th / 2
        rmin, rmax = c.diameter_um[0] / 2.0, c.diameter_um[1] / 2.0
        for j in range(1, n + 1):
            host = out[int(rng.integers(len(out)))]
            rs = float(rng.uniform(rmin, rmax))
            d = float(rng.uniform(*c.clump_overlap)) * (host.radius_um + rs)
            a = float(rng.uniform(0.0, 2.0 * math.pi))
            ts = float(rng.uniform(t0, t1))
            if rng.random() < 0.5:
                zs, top = top + ts / 2, top + ts
            else:
                zs, bottom = bottom - ts / 2, bottom - ts
            out.append(Site(cid + j * 2**27, host.x_um + d * math.cos(a),
                            host.y_um + d * math.sin(a), rs, zs, ts, cid))
        return out

    def _record(self, site: Site) -> CellRecord:
        return self._records.get_or(site.cell_id, lambda: self._make_record(site))

    def _make_record(self, site: Site) -> CellRecord:
        c = self.config
        rng = self.rng_for(1, site.cell_id)
        cx, cy, R = site.x_um, site.y_um, site.radius_um
        aspect = float(rng.uniform(*c.aspect))
        angle = float(rng.uniform(0, math.pi))
        ks = (2, 3, 4, 5)
        amps = c.irregularity * rng.uniform(0.2, 1.0, len(ks)) / np.sqrt(np.arange(1, 5))
        phs = rng.uniform(0, 2 * math.pi, len(ks))
        harm = tuple((k, float(a), float(p)) for k, a, p in zip(ks, amps, phs))
        th = np.linspace(0, 2 * math.pi, 1440, endpoint=False)
        f = shape_factor(th, aspect, angle, harm)
        scale = R / float(f.max())
        rin = scale * float(f.min())
        # nucleus
        dn = min(float(rng.uniform(*c.nucleus_diameter_um)), 2 * c.nucleus_max_fraction * rin)
        an = dn / 2.0
        bn = an * float(rng.uniform(0.7, 1.0))
        nang = float(rng.uniform(0, math.pi))
        max_off = max(rin - an - 1.0, 0.0)
        ecc = rng.random() < c.eccentric_probability
        off = max_off * float(rng.uniform(0.6, 1.0) if ecc else rng.uniform(0.0, 0.3))
        odir = float(rng.uniform(0, 2 * math.pi))
        nx, ny = cx + off * math.cos(odir), cy + off * math.sin(odir)
        nucleolus = None
        if rng.random() < c.nucleolus_probability and bn > 1.5:
            rn = min(float(rng.uniform(0.5, 1.0)), 0.4 * bn)
            o2 = float(rng.uniform(0, 0.5 * (bn - rn)))
            d2 = float(rng.uniform(0, 2 * math.pi))
            nucleolus = (nx + o2 * math.cos(d2), ny + o2 * math.sin(d2), rn)
        lev = 1.0 + c.cell_variation * rng.uniform(-1.0, 1.0, 2)
        # issue 15: cytoplasm lipid log-normal across cells; nucleus DNA from its content
        # (cell cycle, pyknosis) over its volume; nucleus protein relative to the cytoplasm
        lev[1] *= math.exp(c.lipid_log_sd * float(rng.normal()) - 0.5 * c.lipid_log_sd**2)
        lev[1] = min(float(lev[1]), 0.9 / (2 * (1 + c.texture) * max(c.cytoplasm_lipid, 1e-9)))
        u = float(rng.random())
        fs, fg2 = c.cycle_fractions
        content = 1.0 if u >= fs + fg2 else (2.0 if u >= fs else float(rng.uniform(1.0, 2.0)))
        if rng.random() < c.pyknotic_probability:
            k = float(rng.uniform(0.5, 0.7))
            an, bn = an * k, bn * k
            nucleolus = None
        tn = float(rng.uniform(*c.nucleus_thickness_um))
        vol_um3 = 4.0 / 3.0 * math.pi * an * bn * min(tn, site.thickness_um) / 2.0
        dna_frac = min(c.nucleus_dna, c.dna_pg_diploid * content / max(vol_um3, 1e-6))
        nprot = float(rng.uniform(*c.nucleus_protein_ratio))
        # keyword arguments of CellRecord shared by the probe and the result (hence Any)
        base: dict[str, Any] = dict(
            cell_id=site.cell_id, x_um=cx, y_um=cy, radius_um=R, inner_radius_um=rin,
            aspect=aspect, angle_rad=angle, harmonics=harm, scale=scale,
            nucleus_xy_um=(nx, ny), nucleus_ab_um=(an, bn), nucleus_angle_rad=nang,
            nucleolus=nucleolus, protein=c.cytoplasm_protein * float(lev[0]),
            lipid=c.cytoplasm_lipid * float(lev[1]), z_um=site.z_um,
            thickness_um=site.thickness_um, dna=dna_frac,
            nucleus_protein=nprot * c.cytoplasm_protein * float(lev[0]),
            founder_id=site.founder_id)
        empty = np.zeros(0)
        probe = CellRecord(**base, droplet_x_um=empty, droplet_y_um=empty,
                           droplet_radius_um=empty, droplet_z_um=empty, droplet_lipid=empty,
                           granule_x_um=empty, granule_y_um=empty, granule_radius_um=empty)
        # lipid droplets: log-uniform count and size, part of them in 1-3 clusters
        n0, n1 = c.droplets_per_cell
        n = int(round(math.exp(rng.uniform(math.log(n0 + 0.5), math.log(n1 + 0.5))) - 0.5))
        n = min(max(n, n0), n1)
        d0, d1 = c.droplet_diameter_um
        radii = np.exp(rng.uniform(math.log(d0), math.log(d1), n)) / 2.0
        radii = np.sort(radii)[::-1]  # place big ones first
        n_cl = int(round(c.droplet_clustering * n))
        px, py, pr = self._place_droplets(rng, probe, radii, n_cl)
        m = px.size
        dz = np.clip(rng.normal(0, c.droplet_z_sd_um, m), -2.0, 2.0) if c.droplet_z_sd_um \
            else np.zeros(m)
        dl = rng.uniform(*c.droplet_lipid, m)
        # pigment granules (lipofuscin-like), anywhere in the cytoplasm
        ng = int(rng.poisson(c.pigment_granules))
        gr = rng.uniform(0.15, 0.4, ng)
        gx, gy = self._cyto_points(rng, probe, 0.6, 16 * ng + 16)
        k = min(ng, gx.size)
        return CellRecord(**base, droplet_x_um=px, droplet_y_um=py, droplet_radius_um=pr,
                          droplet_z_um=np.asarray(dz, float), droplet_lipid=np.asarray(dl, float),
                          granule_x_um=gx[:k], granule_y_um=gy[:k], granule_radius_um=gr[:k])

    @staticmethod
    def _cyto_points(rng: np.random.Generator, cell: CellRecord, margin: float, k: int
                     ) -> tuple[NDArray, NDArray]:
        """Uniform random points in the cytoplasm, ``margin`` um clear of outline and nucleus
        (rejection from ``k`` draws; returns those accepted, in draw order)."""
        R = cell.radius_um
        x = cell.x_um + rng.uniform(-R, R, k)
        y = cell.y_um + rng.uniform(-R, R, k)
        ok = cell.contains(x, y, margin) & ~cell.in_nucleus(x, y, margin)
        return x[ok], y[ok]

    def _place_droplets(self, rng: np.random.Generator, cell: CellRecord, radii: NDArray,
                        n_clustered: int) -> tuple[NDArray, NDArray, NDArray]:
        """Greedy placement of droplets (radii in decreasing order) in the cytoplasm.

        A droplet keeps 0.3 um from the outline and the nucleus and 0.05 um from other
        droplets. ``n_clustered`` of them (chosen at random) are drawn around 1-3 cluster
        centres (Gaussian, s.d. 1.2 um + mean radius); the rest uniformly. A droplet that
        finds no room in the candidate pool is dropped.
        """
        n = radii.size
        if n == 0:
            e = np.zeros(0)
            return e, e, e
        kpool = 6 * n + 32
        ux, uy = rng.uniform(-1, 1, (2, kpool)) * cell.radius_um
        ux += cell.x_um
        uy += cell.y_um
        cx, cy = self._cyto_points(rng, cell, 1.5, 64)
        ncent = min(int(rng.integers(1, 4)), cx.size)
        clustered = rng.permutation(n) < n_clustered
        if ncent and n_clustered:
            pick = rng.integers(ncent, size=kpool)
            sd = 1.2 + float(radii.mean())
            kx = cx[pick] + rng.normal(0, sd, kpool)
            ky = cy[pick] + rng.normal(0, sd, kpool)
        else:
            kx = ky = np.zeros(0)
            clustered[:] = False
        x = np.concatenate([kx, ux])
        y = np.concatenate([ky, uy])
        in_cluster_pool = np.arange(x.size) < kx.size
        dx, dy = x - cell.x_um, y - cell.y_um
        room = cell.outline_radius(np.arctan2(dy, dx)) - np.hypot(dx, dy) - 0.3
        ca, sa = math.cos(cell.nucleus_angle_rad), math.sin(cell.nucleus_angle_rad)
        u = (x - cell.nucleus_xy_um[0]) * ca + (y - cell.nucleus_xy_um[1]) * sa
        v = -(x - cell.nucleus_xy_um[0]) * sa + (y - cell.nucleus_xy_um[1]) * ca
        a, b = cell.nucleus_ab_um
        clear = np.full(x.size, np.inf)  # distance to the nearest placed droplet's surface
        free = np.ones(x.size, bool)
        out = []
        for k in range(n):
            r = float(radii[k])
            ok = free & (room >= r) & (clear >= r + 0.05)
            ok &= (u / (a + r + 0.3)) ** 2 + (v / (b + r + 0.3)) ** 2 > 1.0
            cand = np.flatnonzero(ok & in_cluster_pool) if clustered[k] else np.zeros(0, int)
            if cand.size == 0:
                cand = np.flatnonzero(ok & ~in_cluster_pool)
            if cand.size == 0:
                continue
            j = int(cand[0])
            free[j] = False
            np.minimum(clear, np.hypot(x - x[j], y - y[j]) - r, out=clear)
            out.append((x[j], y[j], r))
        arr = np.array(out, float).reshape(-1, 3)
        return arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy()

    def _tiles_over(self, x0: float, x1: float, y0: float, y1: float) -> Iterator[tuple[int, int]]:
        t, n = self._tile_um, self._ntiles
        i0, i1 = max(-n, math.floor(x0 / t)), min(n - 1, math.floor(x1 / t))
        j0, j1 = max(-n, math.floor(y0 / t)), min(n - 1, math.floor(y1 / t))
        for j in range(j0, j1 + 1):
            for i in range(i0, i1 + 1):
                yield i, j

    def cells_in(self, x0: float, x1: float, y0: float, y1: float, *,
                 centres_only: bool = False) -> list[CellRecord]:
        """Cells whose bounding circle touches the box ``[x0, x1] x [y0, y1]`` (world um),
        sorted by id. ``centres_only=True``: only cells whose centre lies in the box."""
        if centres_only:
            m = 0.0
        else:
            m = self._reach_um
        out = []
        for i, j in self._tiles_over(x0 - m, x1 + m, y0 - m, y1 + m):
            for s in self._tile_sites(i, j):
                if centres_only:
                    hit = (s.cell_id == s.founder_id and x0 <= s.x_um < x1
                           and y0 <= s.y_um < y1)
                else:
                    dx = max(x0 - s.x_um, 0.0, s.x_um - x1)
                    dy = max(y0 - s.y_um, 0.0, s.y_um - y1)
                    hit = dx * dx + dy * dy < s.radius_um**2
                if hit:
                    out.append(self._record(s))
        out.sort(key=lambda r: r.cell_id)
        return out

    def count_in(self, x0: float, x1: float, y0: float, y1: float) -> int:
        """Number of clump founders (single cells and the first cell of each clump:
        ``density_per_mm2`` counts these) whose centre lies in ``[x0, x1) x [y0, y1)``
        (cheap: no content)."""
        return sum(1 for i, j in self._tiles_over(x0, x1, y0, y1)
                   for s in self._tile_sites(i, j)
                   if s.cell_id == s.founder_id and x0 <= s.x_um < x1 and y0 <= s.y_um < y1)

    def nearest_cell(self, x_um: float = 0.0, y_um: float = 0.0) -> CellRecord:
        """The cell whose centre is nearest to ``(x_um, y_um)``."""
        t = self._tile_um
        ci, cj = math.floor(x_um / t), math.floor(y_um / t)
        best: tuple[float, Site] | None = None
        for ring in range(0, 2 * self._ntiles + 2):
            if best is not None and best[0] < (ring - 1) * t:
                break
            for i in range(ci - ring, ci + ring + 1):
                for j in range(cj - ring, cj + ring + 1):
                    if max(abs(i - ci), abs(j - cj)) != ring:
                        continue
                    n = self._ntiles
                    if not (-n <= i < n and -n <= j < n):
                        continue
                    for s in self._tile_sites(i, j):
                        d = math.hypot(s.x_um - x_um, s.y_um - y_um)
                        if best is None or d < best[0]:
                            best = (d, s)
        if best is None:
            raise SettingsError("this specimen has no cells; raise density_per_mm2")
        return self._record(best[1])

    def in_focus(self, cell: CellRecord) -> bool:
        """Whether ``cell`` fills at least half the axial PSF (it is labelled)."""
        return float(slab_fraction(0.0, cell.z_um - cell.thickness_um / 2,
                                   cell.z_um + cell.thickness_um / 2,
                                   self.config.axial_fwhm_um)) >= 0.5

    def first_cell_center(self) -> tuple[float, float]:
        """World (x, y) um of the in-focus cell (:meth:`in_focus`) nearest the slide centre,
        as an operator picks a field: a field centred here shows at least one whole,
        labelled cell (CLI demos, cohorts). Falls back to the nearest cell."""
        for half in (100.0, 200.0, 400.0, 800.0):
            recs = [r for r in self.cells_in(-half, half, -half, half) if self.in_focus(r)
                    and abs(r.x_um) < half and abs(r.y_um) < half]
            if recs:
                r = min(recs, key=lambda q: (q.x_um**2 + q.y_um**2, q.cell_id))
                return (r.x_um, r.y_um)
        r = self.nearest_cell(0.0, 0.0)
        return (r.x_um, r.y_um)

    def default_center_um(self) -> tuple[float, float]:
        """:meth:`first_cell_center`: a field centred here shows at least one whole cell."""
        return self.first_cell_center()

    # -- rendering --------------------------------------------------------------------
    _FIELDS = ("lipid", "protein", "dna", "water", "pigment")

    def render(self, window: Window) -> Composition:
        """Ground truth of ``window`` (see module docstring for the label rules)."""
        gx, gy, qx, qy = lattice_of(window)
        nx, ny, p = window.nx, window.ny, window.pixel_um
        comp = Composition.empty(window)
        dst: dict[str, NDArray] = {
            "lipid": comp.concentrations["lipid"], "protein": comp.concentrations["protein"],
            "dna": comp.concentrations["dna"], "water": comp.concentrations["water"],
            "pigment": comp.pigment, "labels": comp.labels, "instance": comp.instance}
        B = BLOCK_PX
        for by in range(gy // B, (gy + ny - 1) // B + 1):
            r0, r1 = max(gy, by * B), min(gy + ny, (by + 1) * B)
            for bx in range(gx // B, (gx + nx - 1) // B + 1):
                c0, c1 = max(gx, bx * B), min(gx + nx, (bx + 1) * B)
                blk = self._blocks.get_or((bx, by, p, qx, qy),
                                          lambda: self._render_block(bx, by, p, qx, qy))
                src = (slice(r0 - by * B, r1 - by * B), slice(c0 - bx * B, c1 - bx * B))
                out = (slice(r0 - gy, r1 - gy), slice(c0 - gx, c1 - gx))
                for k, arr in dst.items():
                    arr[out] = blk[k][src]
        return comp

    def _render_block(self, bx: int, by: int, p: float, qx: int, qy: int
                      ) -> dict[str, NDArray]:
        B = BLOCK_PX
        win = lattice_window(bx * B, by * B, qx, qy, B, B, p)
        blk: dict[str, NDArray] = {k: np.zeros((B, B), np.float32) for k in self._FIELDS}
        blk["water"][:] = 1.0
        blk["labels"] = np.zeros((B, B), np.uint8)
        blk["instance"] = np.zeros((B, B), np.int32)
        x0, x1, y0, y1 = win.extent_um
        m = MAX_BLUR_UM * 3.0
        for cell in self.cells_in(x0 - m, x1 + m, y0 - m, y1 + m):
            self._draw_cell(win, cell, blk)
        self._draw_extras(win, blk)
        solids = blk["lipid"] + blk["protein"] + blk["dna"]
        over = solids > 1.0  # stacked layers can never hold more than the PSF volume
        if np.any(over):
            f = np.ones_like(solids)
            f[over] = 1.0 / solids[over]
            for k in ("lipid", "protein", "dna"):
                blk[k] *= f
        blk["water"][:] = np.clip(1.0 - blk["lipid"] - blk["protein"] - blk["dna"], 0.0, 1.0)
        for a in blk.values():
            a.setflags(write=False)
        return blk

    def _tile_extras(self, i: int, j: int) -> dict[str, NDArray]:
        """Bacteria and debris particles whose centre lies in tile ``(i, j)`` (issue 15):
        ellipses ``x, y, a, b, angle`` (um, rad), height ``z`` and thickness ``t`` (um),
        composition ``protein, lipid, dna``. Drawn from ``rng_for(3, i, j)``."""

        def make() -> dict[str, NDArray]:
            c, t = self.config, self._tile_um
            rng = self.rng_for(3, i, j)
            h = c.extent_um / 2.0
            cols: dict[str, list[NDArray]] = {k: [] for k in (
                "x", "y", "a", "b", "angle", "z", "t", "protein", "lipid", "dna")}
            nb = int(rng.poisson(c.bacteria_per_mm2 * 1e-6 * t * t))
            nd = int(rng.poisson(c.debris_per_mm2 * 1e-6 * t * t))
            for n, kind in ((nb, "bacteria"), (nd, "debris")):
                x = (i + rng.random(n)) * t
                y = (j + rng.random(n)) * t
                if kind == "bacteria":
                    # H. pylori-like rods 2.5-4 um x 0.5-1 um; E. coli-like mass fractions
                    a = rng.uniform(1.25, 2.0, n)
                    b = rng.uniform(0.25, 0.5, n)
                    th = 2.0 * b
                    comp = [np.full(n, v) for v in BACTERIA_COMPOSITION]
                else:
                    a = np.exp(rng.uniform(math.log(0.5), math.log(3.0), n))
                    b = a * rng.uniform(0.4, 1.0, n)
                    th = rng.uniform(0.5, 2.0, n)
                    comp = [rng.uniform(0.05, 0.3, n), rng.uniform(0.0, 0.2, n),
                            rng.uniform(0.0, 0.05, n)]
                z = rng.normal(0.0, c.focus_sd_um, n) if c.focus_sd_um else np.zeros(n)
                ok = (np.abs(x) <= h) & (np.abs(y) <= h)
                for k, v in zip(cols, (x, y, a, b, rng.uniform(0, math.pi, n), z, th, *comp)):
                    cols[k].append(np.asarray(v, float)[ok])
            return {k: np.concatenate(v) for k, v in cols.items()}

        return self._extras.get_or((i, j), make)

    def _draw_extras(self, win: Window, blk: dict[str, NDArray]) -> None:
        """Mucus strands, bacteria and debris (BACKGROUND in the labels; module doc)."""
        c = self.config
        x0, x1, y0, y1 = win.extent_um
        if c.mucus_fraction > 0:
            n = value_noise(win, self.seed * 16 + 5, 12.0, octaves=2).astype(np.float64)
            lvl = value_noise(win, self.seed * 16 + 6, 20.0).astype(np.float64)
            hw = c.mucus_fraction / 2.0
            strand = np.clip(1.0 - np.abs(n - 0.5) / hw, 0.0, 1.0) ** 0.5
            m0, m1 = c.mucus_protein
            blk["protein"] += (strand * (m0 + (m1 - m0) * lvl)).astype(np.float32)
        for i, j in self._tiles_over(x0 - 3, x1 + 3, y0 - 3, y1 + 3):
            e = self._tile_extras(i, j)
            near = (e["x"] + e["a"] >= x0) & (e["x"] - e["a"] <= x1) & \
                (e["y"] + e["a"] >= y0) & (e["y"] - e["a"] <= y1)
            for q in np.flatnonzero(near):
                cov = ellipse_coverage(win, e["x"][q], e["y"][q], e["a"][q], e["b"][q],
                                       e["angle"][q])
                if cov is None:
                    continue
                sl, k = cov
                w = float(slab_fraction(0.0, e["z"][q] - e["t"][q] / 2,
                                        e["z"][q] + e["t"][q] / 2, c.axial_fwhm_um))
                for sp in ("protein", "lipid", "dna"):
                    blk[sp][sl] += (k * w * e[sp][q]).astype(np.float32)

    def _draw_cell(self, win: Window, cell: CellRecord, blk: dict[str, NDArray]) -> None:
        """Add one cell's content to the block: concentrations x the fraction of the axial
        PSF inside the cell's slab, blurred by the beam widening out of focus; truth labels
        where the cell covers >= half the pixel and fills >= half the axial PSF (droplets:
        their own partial-volume rule)."""
        c = self.config
        p = win.pixel_um
        w_ax = float(slab_fraction(0.0, cell.z_um - cell.thickness_um / 2,
                                   cell.z_um + cell.thickness_um / 2, c.axial_fwhm_um))
        z_out = max(0.0, abs(cell.z_um) - cell.thickness_um / 2)
        # Gaussian beam: w(z) = w0 sqrt(1 + (z/zR)^2), zR ~ half the axial FWHM; the extra
        # lateral blur is the quadrature difference, sigma0 z / zR (pixels)
        sig_px = min(LATERAL_SIGMA_UM * z_out / (c.axial_fwhm_um / 2.0), MAX_BLUR_UM) / p
        R = cell.radius_um + p + 3.0 * sig_px * p
        sl = win.pixel_slices(cell.x_um - R, cell.x_um + R, cell.y_um - R, cell.y_um + R)
        if sl is None:
            return
        rs, cs = sl
        sub = Window(win.x_um + cs.start * p, win.y_um + rs.start * p,
                     cs.stop - cs.start, rs.stop - rs.start, p)
        dx = sub.xs()[None, :] - cell.x_um
        dy = sub.ys()[:, None] - cell.y_um
        rr = np.hypot(dx, dy)
        cov = np.clip((cell.outline_radius(np.arctan2(dy, dx)) - rr) / p + 0.5, 0.0, 1.0)
        if not np.any(cov > 0):
            return
        tex = c.texture
        seed = self.seed * 16
        n1 = value_noise(sub, seed + 1, c.texture_scale_um, octaves=2).astype(np.float64)
        n2 = value_noise(sub, seed + 2, 0.7 * c.texture_scale_um, octaves=2).astype(np.float64)
        prot = cell.protein * (1.0 + tex * (2.0 * n1 - 1.0))
        lip = cell.lipid * (1.0 + tex * (2.0 * n2 - 1.0))
        dna = np.zeros_like(prot)
        # nucleus: chromatin texture, less lipid, DNA
        cn = np.zeros_like(prot)
        e = ellipse_coverage(sub, *cell.nucleus_xy_um, *cell.nucleus_ab_um,
                             cell.nucleus_angle_rad)
        if e is not None:
            cn[e[0]] = e[1]
            n3 = value_noise(sub, seed + 3, 1.2, octaves=2).astype(np.float64)
            prot += cn * (cell.nucleus_protein * (1.0 + 0.5 * tex * (2 * n3 - 1)) - prot)
            lip += cn * (c.nucleus_lipid - lip)
            dna += cn * (cell.dna * (1.0 + tex * (2 * n3 - 1)))
            if cell.nucleolus is not None:
                xn, yn, rn = cell.nucleolus
                e2 = ellipse_coverage(sub, xn, yn, rn, rn)
                if e2 is not None:
                    s2, k2 = e2
                    prot[s2] += k2 * (min(0.45, 1.6 * cell.nucleus_protein) - prot[s2])
                    dna[s2] += k2 * (0.4 * cell.dna - dna[s2])
        # lipid droplets displace cytoplasm by their axial partial volume (their heights
        # are relative to the cell's mid-plane)
        pv = np.zeros_like(prot)
        if cell.n_droplets:
            args = (sub, cell.droplet_x_um, cell.droplet_y_um, cell.droplet_radius_um)
            zd = cell.droplet_z_um + cell.z_um
            pv = np.minimum(sphere_map(*args, fwhm_z_um=c.axial_fwhm_um,
                                       z_um=zd).astype(np.float64), 1.0)
            dl = sphere_map(*args, fwhm_z_um=c.axial_fwhm_um, z_um=zd,
                            weights=cell.droplet_lipid).astype(np.float64)
            dl = np.minimum(dl, pv)
            keep = np.clip(1.0 - pv / max(w_ax, 1e-6), 0.0, 1.0)
            lip = lip * keep * w_ax + dl
            prot *= keep * w_ax
            dna *= keep * w_ax
        else:
            lip, prot, dna = lip * w_ax, prot * w_ax, dna * w_ax
        pig = np.zeros_like(prot)
        if cell.granule_x_um.size:
            pig = c.pigment_strength * np.minimum(sphere_map(
                sub, cell.granule_x_um, cell.granule_y_um, cell.granule_radius_um,
                fwhm_z_um=c.axial_fwhm_um, z_um=np.full(cell.granule_x_um.size, cell.z_um)
            ).astype(np.float64), 1.0)
        for k, v in (("lipid", lip), ("protein", prot), ("dna", dna), ("pigment", pig)):
            v = cov * v
            if sig_px > 0.05:
                v = ndimage.gaussian_filter(v, sig_px, mode="constant")
            t = blk[k][sl]
            t += v.astype(np.float32)
        lab = np.full(cov.shape, Label.CYTOPLASM, np.uint8)
        lab[cn >= 0.5] = Label.NUCLEUS
        lab[pv >= 0.5] = Label.LIPID_DROPLET
        inside = (cov >= 0.5) & ((w_ax >= 0.5) | (pv >= 0.5))
        blk["labels"][sl][inside] = lab[inside]
        blk["instance"][sl][inside] = cell.cell_id
